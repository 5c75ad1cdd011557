"""Check that installing aecourse on Colab replaces none of Colab's packages.

On Colab, a notebook's first cell runs `pip install "aecourse @ git+...@REF"`. pip keeps
an installed package whose version satisfies what aecourse asks for, and replaces it
otherwise: a replaced torch would lose Colab's CUDA build, a replaced numpy or matplotlib
breaks the runtime's other packages until a restart. This script asks pip what it would
do, against the versions Colab publishes (scripts/colab_versions.txt):

1. build aecourse's wheel from a copy of this checkout (`pip wheel --no-deps`: the
   same requirements as the git install, taken from pyproject.toml);
2. create a virtual environment with Colab's Python (python3.13 when this machine has
   it, else this Python, which the output says) and write a minimal `.dist-info` (name
   and version) for every package of the list into it, so that pip sees Colab's
   packages as installed;
3. run that environment's `pip install --dry-run --report` of the wheel, with PyPI as
   the only index and no local pip configuration (--isolated, PIP_CONFIG_FILE=/dev/null);
4. fail if the report would install a package the list has (a replacement, with both
   versions), and list the packages it would add.

Usage: python scripts/check_colab.py [--versions FILE]

Exits 0 when nothing would be replaced, 1 otherwise. Without a connection to PyPI it
says so and exits 0 (1 in CI, CI set), as scripts/check_platforms.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "scripts" / "colab_versions.txt"
INDEX = "https://pypi.org/simple"
# the packages that matter most: replacing them breaks the runtime
KEY = ("torch", "torchvision", "numpy", "matplotlib")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_versions(path: Path) -> tuple[dict[str, str], str | None]:
    """The `name==version` lines of a pip freeze (canonical name -> version), and the
    Python version that a `# python: X.Y.Z` comment names (None without one)."""
    versions, python = {}, None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if line.startswith("# python:"):
            python = line.split(":", 1)[1].strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep or not name or not version:
            raise ValueError(f"{path}:{number}: expected name==version, got {line!r}")
        versions[canonical(name)] = version
    if not versions:
        raise ValueError(f"{path} lists no name==version lines")
    return versions, python


def replacements(report: dict, installed: dict[str, str]) -> tuple[list[str], list[str]]:
    """From a `pip install --report` (JSON), the installed packages it would replace
    ("name: installed -> new") and the packages it would add ("name==version")."""
    replaced, added = [], []
    for item in report.get("install", []):
        name = canonical(item["metadata"]["name"])
        version = item["metadata"]["version"]
        if name in installed:
            replaced.append(f"{name}: {installed[name]} -> {version}")
        else:
            added.append(f"{name}=={version}")
    return replaced, added


def fake_environment(folder: Path, installed: dict[str, str], python: str) -> Path:
    """A virtual environment at `folder` (with pip) whose site-packages also holds a
    .dist-info (METADATA with name and version, no requirements) per installed package;
    its Python."""
    subprocess.run([python, "-m", "venv", str(folder)], check=True)
    env_python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run(
        [str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    for name, version in installed.items():
        if name in ("pip", "setuptools"):  # the environment's own
            continue
        info = Path(site) / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        info.joinpath("METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        info.joinpath("INSTALLER").write_text("colab_versions.txt\n")
    return env_python


def pip(python: str | Path, *args: str) -> subprocess.CompletedProcess:
    """A Python's pip, without the machine's pip configuration (indexes, constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    command = [str(python), "-m", "pip", "--isolated", "--disable-pip-version-check", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True)


def colab_python(version: str | None) -> str:
    """The interpreter standing in for Colab's: python3.X of the list's version if this
    machine has it (on the PATH, or installed by pyenv), else this one."""
    if not version:
        return sys.executable
    minor = ".".join(version.split(".")[:2])
    candidates = [shutil.which(f"python{minor}")]
    pyenv = shutil.which("pyenv")
    if pyenv:  # pyenv's shim runs only the versions selected; ask for the others
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
        for installed in listed.stdout.split():
            if installed.startswith(minor + "."):
                prefix = subprocess.run([pyenv, "prefix", installed], capture_output=True,
                                        text=True).stdout.strip()
                candidates.append(str(Path(prefix) / "bin" / f"python{minor}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return candidate
    return sys.executable


def pypi_reachable() -> bool:
    try:
        urllib.request.urlopen(f"{INDEX}/pip/", timeout=15).close()
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=Path, default=VERSIONS,
                        help="a pip freeze of Colab (default: scripts/colab_versions.txt)")
    args = parser.parse_args(argv)
    installed, python_version = read_versions(args.versions)
    if not pypi_reachable():
        print(f"check_colab: {INDEX} is not reachable: the Colab install was not checked")
        return 1 if os.environ.get("CI") else 0
    python = colab_python(python_version)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # built from a copy, so that the checkout gets no build/ folder
        source = tmp / "source"
        shutil.copytree(ROOT / "aecourse", source / "aecourse",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        built = pip(sys.executable, "wheel", "--no-deps", "--wheel-dir",
                    str(tmp / "wheel"), str(source))
        if built.returncode:
            print(built.stdout + built.stderr, file=sys.stderr)
            print("check_colab: could not build aecourse's wheel", file=sys.stderr)
            return 1
        wheel = next((tmp / "wheel").glob("aecourse-*.whl"))
        env_python = fake_environment(tmp / "colab", installed, python)
        report_path = tmp / "report.json"
        done = pip(env_python, "install", "--dry-run", "--quiet", "--index-url", INDEX,
                   "--report", str(report_path), str(wheel))
        if done.returncode:
            print(done.stdout + done.stderr, file=sys.stderr)
            print("check_colab: pip could not resolve aecourse against Colab's versions",
                  file=sys.stderr)
            return 1
        report = json.loads(report_path.read_text())
    version = subprocess.run([python, "--version"], capture_output=True, text=True).stdout
    replaced, added = replacements(report, installed)
    kept = ", ".join(f"{name} {installed[name]}" for name in KEY if name in installed)
    print(f"check_colab: {len(installed)} packages of {args.versions.name} "
          f"({version.strip()} here; Colab: Python {python_version or 'unknown'})")
    print(f"check_colab: pip would add {', '.join(added) or 'nothing'}")
    if replaced:
        print("check_colab: pip would replace Colab's " + "; ".join(replaced), file=sys.stderr)
        return 1
    print(f"check_colab: nothing replaced; kept {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
