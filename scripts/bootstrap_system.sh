#!/usr/bin/env bash
# Install the system packages the course needs, when they are missing and the machine
# allows it (Debian's apt-get, as root or with password-less sudo); otherwise say what
# is missing and how to get it (on macOS, with Homebrew).
#
#   dataset-fashion-mnist  Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist/
#                          (without them aecourse.data downloads the data with torchvision)
#   npm                    to install MathJax for offline maths (only when .mathjax/ is missing)
#   chromium, chromium-driver   the browser check (with --browser); CHROME_BIN and
#                          CHROMEDRIVER point the check at another Chrome and its driver
#
# Without apt-get (macOS) nothing is installed, and only what has no fallback fails: npm
# (when MathJax is not installed yet) and, with --browser, Chromium and its driver.
#
# Usage: scripts/bootstrap_system.sh [--browser]
set -euo pipefail

browser=0
[[ "${1:-}" == "--browser" ]] && browser=1

data_dir=${AECOURSE_DATA_DIR:-/usr/share/datasets/fashion-mnist}
chrome=${CHROME_BIN:-/usr/bin/chromium}
driver=${CHROMEDRIVER:-/usr/bin/chromedriver}

missing=()
[[ -f "$data_dir/train-images-idx3-ubyte.gz" && -f "$data_dir/t10k-images-idx3-ubyte.gz" ]] \
  || missing+=(dataset-fashion-mnist)
[[ -f .mathjax/static/mathjax/tex-mml-chtml.js ]] || command -v npm >/dev/null || missing+=(npm)
if ((browser)); then
  [[ -x "$chrome" ]] || missing+=(chromium)
  [[ -x "$driver" ]] || missing+=(chromium-driver)
fi
((${#missing[@]})) || exit 0

# Say how to get each missing package by hand, then exit: 0 when only the data is
# missing (torchvision downloads it), 1 otherwise.
report_and_exit() {
  local pkg how status=0
  for pkg in "${missing[@]}"; do
    if [[ $pkg == dataset-fashion-mnist ]]; then
      echo "bootstrap: no Fashion-MNIST files in $data_dir; aecourse.data downloads them" \
        "with torchvision instead (Debian: sudo apt-get install $pkg)" >&2
      continue
    fi
    status=1
    if command -v apt-get >/dev/null; then
      echo "bootstrap: missing $pkg; install it with: sudo apt-get install $pkg" >&2
    else
      case $pkg in
        npm) how="npm (for MathJax); macOS: brew install node" ;;
        chromium) how="Chromium ($chrome); macOS: brew install --cask chromium" ;;
        chromium-driver) how="chromedriver ($driver); macOS: brew install --cask chromedriver" ;;
      esac
      echo "bootstrap: missing $how" >&2
    fi
  done
  if [[ " ${missing[*]} " == *" chromium"* ]]; then
    echo "bootstrap: or set CHROME_BIN and CHROMEDRIVER to a Chrome and its matching driver" >&2
    command -v apt-get >/dev/null || echo "bootstrap: (macOS, after brew:" \
      "CHROME_BIN=/Applications/Chromium.app/Contents/MacOS/Chromium" \
      "CHROMEDRIVER=\$(brew --prefix)/bin/chromedriver make test)" >&2
  fi
  exit $status
}

if ! command -v apt-get >/dev/null; then
  report_and_exit
elif [[ $(id -u) == 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  report_and_exit
fi

echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
for pkg in "${missing[@]}"; do
  # A package that this distribution lacks is reported, not fatal, for the data only.
  if ! "${sudo[@]}" apt-get install -y -qq "$pkg" >/dev/null; then
    if [[ $pkg == dataset-fashion-mnist ]]; then
      echo "bootstrap: $pkg is not available here; aecourse.data will download Fashion-MNIST" >&2
    else
      echo "bootstrap: could not install $pkg" >&2
      exit 1
    fi
  fi
done
