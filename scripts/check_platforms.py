"""Check that every pin of the lock has a wheel on the platforms we claim besides Linux.

requirements.txt is one universal lock (`uv pip compile --universal`, see its header):
pins that only some platforms need carry environment markers (the CUDA wheels on
Linux, appnope on macOS, colorama on Windows). Linux x86_64 is checked by installing
the lock (`make bootstrap`); this script checks macOS arm64 and Windows x86_64 on
Python 3.11 and 3.12 (Colab's), where nothing is installed:

1. keep the pins whose markers hold on the *target*: pip would evaluate them against
   this machine even with --platform, so `packaging.markers` does it here;
2. ask pip for a wheel of each kept pin on the target, in a dry run against PyPI alone.
   pip runs with no configuration (--isolated, PIP_CONFIG_FILE=/dev/null), so that a
   machine's local wheel directories, extra indexes or constraint files cannot make a
   pin look available when PyPI has no wheel of it.

Usage: python scripts/check_platforms.py [LOCK]   (LOCK defaults to requirements.txt)

Prints one line per platform and Python; exits 1 naming, for each platform and Python,
the first pin without a wheel there. pip downloads torch's wheel for each target
(~125 MB each; pip's cache keeps them). Without a connection to PyPI it says so and
exits 0, since the rest of `make test` runs offline; in CI (CI set) that is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple"

# pip's platform tag -> the PEP 508 marker values on that platform.
PLATFORMS = {
    "macosx_14_0_arm64": dict(
        sys_platform="darwin", platform_system="Darwin", os_name="posix", platform_machine="arm64"
    ),
    "win_amd64": dict(
        sys_platform="win32", platform_system="Windows", os_name="nt", platform_machine="AMD64"
    ),
}
# A patch release of each Python we test (the lock forks on python_full_version).
PYTHONS = ("3.11.9", "3.12.9")


def target_environment(platform: str, python: str) -> dict[str, str]:
    """The marker environment of CPython `python` (e.g. "3.12.9") on pip's `platform` tag."""
    return {
        **PLATFORMS[platform],
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": python,
        "python_full_version": python,
        "python_version": ".".join(python.split(".")[:2]),
        "platform_release": "",
        "platform_version": "",
    }


def read_pins(lock: Path) -> list[Requirement]:
    """The requirement lines of a pip requirements file (comments and blank lines skipped)."""
    pins = []
    for line in lock.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(f"{lock}: pip options are not expected in the lock: {line!r}")
        pins.append(Requirement(line))
    return pins


def check(pins: list[Requirement], platform: str, python: str, tmp: Path) -> str | None:
    """Dry-run pip for the pins that apply on (platform, python): a line saying how many
    were checked, or None after printing the pin that has no wheel there."""
    env = target_environment(platform, python)
    kept = [pin for pin in pins if pin.marker is None or pin.marker.evaluate(env)]
    filtered = tmp / f"{platform}-{python}.txt"
    filtered.write_text("".join(f"{pin.name}{pin.specifier}\n" for pin in kept))
    command = [
        sys.executable, "-m", "pip", "install", "--isolated", "--disable-pip-version-check",
        "--index-url", INDEX, "--dry-run", "--ignore-installed", "--only-binary=:all:",
        "--no-deps", "--platform", platform, "--python-version", python,
        "--implementation", "cp", "--target", str(tmp / f"{platform}-{python}"),
        "--quiet", "-r", str(filtered),
    ]  # fmt: skip
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    done = subprocess.run(
        command, env={**pip_env, "PIP_CONFIG_FILE": os.devnull}, capture_output=True, text=True
    )
    if done.returncode == 0:
        return f"check_platforms: {platform}, Python {python}: {len(kept)} pins have wheels"
    missing = re.search(r"No matching distribution found for (\S+)", done.stderr)
    what = missing.group(1) if missing else "a pin (pip's message above)"
    print(done.stderr, end="", file=sys.stderr)
    print(f"check_platforms: no wheel of {what} for {platform}, Python {python}", file=sys.stderr)
    return None


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen(f"{INDEX}/pip/", timeout=15).close()
    except OSError:
        return False
    return True


def main() -> int:
    lock = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "requirements.txt"
    pins = read_pins(lock)
    if not pypi_reachable():
        print(f"check_platforms: {INDEX} is not reachable: the lock was not checked")
        return 1 if os.environ.get("CI") else 0
    targets = [(platform, python) for platform in PLATFORMS for python in PYTHONS]
    # The four dry runs download torch's wheels; run them side by side.
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(len(targets)) as pool:
        lines = list(pool.map(lambda target: check(pins, *target, Path(tmp)), targets))
    for line in filter(None, lines):
        print(line)
    return 0 if all(lines) else 1


if __name__ == "__main__":
    sys.exit(main())
