"""Prepare a release: one version for the package, the notebooks' install and Colab links.

A notebook's first cell installs the package on Colab from this repository, at a git
ref: `main` until the first release, then the release's tag, so that a notebook opened
on Colab gets the package it was written for and not whatever `main` holds that day. The
Colab links (the badge of each notebook, the table in README.md) open the notebooks at
the same ref. This script sets all of them at once:

    python scripts/release.py 0.2.0     # __version__ = "0.2.0"; install and links at v0.2.0
    python scripts/release.py --check   # the refs agree (what tests/test_install.py runs)

How a release is cut (CONTRIBUTING.md): run the script, `make notebooks` (the .ipynb
files), `make test`, commit, then `git tag -a v0.2.0 -m "aecourse 0.2.0"` and
`git push origin main v0.2.0`. The tag must be pushed with the commit: the notebooks
install it from GitHub.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "github.com/aecourse/aecourse"
VERSION_FILE = Path("aecourse/__init__.py")
# the files that name a ref: the notebook sources (their .ipynb follow with
# `make notebooks`) and the README's table of Colab links
FILES = ("notebooks/[0-9][0-9]_*.md", "README.md")
# `aecourse @ git+https://github.com/aecourse/aecourse@REF` (no @REF: the default branch)
INSTALL = re.compile(r"(git\+https://" + re.escape(REPOSITORY) + r")(?:@([\w.\-/]+))?")
# https://colab.research.google.com/github/aecourse/aecourse/blob/REF/notebooks/...
COLAB = re.compile(r"(colab\.research\.google\.com/github/aecourse/aecourse/blob/)([\w.\-]+)/")
VERSION = re.compile(r'^__version__ = "([^"]+)"$', re.M)
SEMVER = re.compile(r"\d+\.\d+\.\d+")


def files(root: Path = ROOT) -> list[Path]:
    return sorted(path for pattern in FILES for path in root.glob(pattern))


def version(root: Path = ROOT) -> str:
    found = VERSION.search((root / VERSION_FILE).read_text())
    if not found:
        raise ValueError(f"{root / VERSION_FILE} has no line __version__ = \"X.Y.Z\"")
    return found.group(1)


def refs(root: Path = ROOT) -> dict[str, set[str]]:
    """Each file's install and Colab-link refs ("main" for an install without @REF)."""
    found = {}
    for path in files(root):
        text = path.read_text()
        names = {m.group(2) or "main" for m in INSTALL.finditer(text)}
        names |= {m.group(2) for m in COLAB.finditer(text)}
        if names:
            found[str(path.relative_to(root))] = names
    return found


def problems(root: Path = ROOT) -> list[str]:
    """What is inconsistent: refs that differ, or a ref that is neither `main` (no
    release yet) nor the tag of the package's version."""
    found = refs(root)
    if not found:
        return [f"no install or Colab link to {REPOSITORY} in {FILES}"]
    expected = {"main", f"v{version(root)}"}
    every = set().union(*found.values())
    lines = []
    if len(every) > 1:
        lines.append("the files name different refs: " + "; ".join(
            f"{name}: {', '.join(sorted(names))}" for name, names in found.items()))
    if not every <= expected:
        lines.append(f"refs {sorted(every - expected)} are neither main nor "
                     f"v{version(root)}, the tag of the package's version")
    return lines


def release(new: str, root: Path = ROOT) -> list[Path]:
    """Set the package's version to `new` and every ref to its tag; the files changed."""
    if not SEMVER.fullmatch(new):
        raise ValueError(f"expected a version X.Y.Z, got {new!r}")
    old = version(root)
    if tuple(map(int, new.split("."))) <= tuple(map(int, old.split("."))):
        raise ValueError(f"the new version must be above the current {old}, got {new}")
    tag = f"v{new}"
    changed = []
    init = root / VERSION_FILE
    init.write_text(VERSION.sub(f'__version__ = "{new}"', init.read_text()))
    changed.append(init)
    for path in files(root):
        text = path.read_text()
        updated = INSTALL.sub(lambda m: f"{m.group(1)}@{tag}", text)
        updated = COLAB.sub(lambda m: f"{m.group(1)}{tag}/", updated)
        if updated != text:
            path.write_text(updated)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", nargs="?", help="the new version, X.Y.Z")
    parser.add_argument("--check", action="store_true", help="only check that the refs agree")
    args = parser.parse_args(argv)
    if args.check == bool(args.version):
        parser.error("give either a version or --check")
    if args.check:
        lines = problems()
        for line in lines:
            print(f"release: {line}", file=sys.stderr)
        if not lines:
            ref = next(iter(set().union(*refs().values())))
            print(f"release: every install and Colab link uses {ref}")
        return 1 if lines else 0
    for path in release(args.version):
        print(f"release: updated {path.relative_to(ROOT)}")
    print(f"next: make notebooks && make test, commit, then\n"
          f"  git tag -a v{args.version} -m 'aecourse {args.version}'\n"
          f"  git push origin main v{args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
