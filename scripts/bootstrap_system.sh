#!/usr/bin/env bash
# Install the Debian packages the course needs, when they are missing and the machine
# allows it (root, or password-less sudo); otherwise say what is missing and how to fix it.
#
#   dataset-fashion-mnist  Fashion-MNIST IDX files in /usr/share/datasets/fashion-mnist/
#                          (without them aecourse.data downloads the data with torchvision)
#   npm                    to install MathJax for offline maths (only when .mathjax/ is missing)
#   chromium, chromium-driver   the browser check (with --browser); CHROME_BIN and
#                          CHROMEDRIVER point the check at another Chrome and its driver
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

if [[ $(id -u) == 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "bootstrap: missing Debian packages: ${missing[*]}" >&2
  echo "bootstrap: install them with: sudo apt-get install ${missing[*]}" >&2
  echo "bootstrap: (set CHROME_BIN / CHROMEDRIVER to use another Chrome for the browser check)" >&2
  # Only the data has a fallback (torchvision's download); the rest is needed.
  if [[ "${missing[*]}" == dataset-fashion-mnist ]]; then
    echo "bootstrap: without it, aecourse.data downloads Fashion-MNIST with torchvision" >&2
    exit 0
  fi
  exit 1
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
