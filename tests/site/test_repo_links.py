"""The repository is named in one place, _config.yml's `repository.url`; the README's and the
notebooks' Colab links, the install commands and pyproject.toml must name the same one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
REPO = REPO_URL.removeprefix("https://github.com/")
BRANCH = CONFIG["repository"]["branch"]

COLAB = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/([\w./-]+\.ipynb)")
GIT_INSTALL = re.compile(r"git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?=[@#\s\"'`]|$)")
# the chapter notebooks and the student notebooks generated from them (make student)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "student").glob("*.ipynb"))


def _text(path: Path) -> str:
    """A file's text; for a notebook, the sources of its cells."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return raw
    cells = json.loads(raw)["cells"]
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)


SOURCES = [ROOT / "README.md", *NOTEBOOKS, *sorted((ROOT / "book").rglob("*.md"))]


def test_config_names_a_github_repository() -> None:
    assert REPO_URL.startswith("https://github.com/") and REPO.count("/") == 1, REPO_URL


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_name_the_configured_repository(path: Path) -> None:
    text = _text(path)
    for repo, branch, notebook in COLAB.findall(text):
        assert (repo, branch) == (REPO, BRANCH), f"Colab link to {repo}@{branch}/{notebook}, expected {REPO}@{BRANCH}"
    for repo in GIT_INSTALL.findall(text):
        assert repo == REPO, f"install from {repo}, expected {REPO}"


def test_pyproject_names_the_configured_repository() -> None:
    homepage = re.search(r'^Homepage = "(.*)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert homepage and homepage[1] == REPO_URL


@pytest.mark.skipif(not NOTEBOOKS, reason="notebooks/ has no notebooks yet")
def test_readme_links_every_notebook_on_colab() -> None:
    linked = {nb for _, _, nb in COLAB.findall(_text(ROOT / "README.md"))}
    present = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert present <= linked, f"notebooks without a Colab link in the README: {sorted(present - linked)}"
    assert linked <= present, f"README links to missing notebooks: {sorted(linked - present)}"
