"""The notebooks' install on Colab: one install cell, at one ref that a release sets
(scripts/release.py), and the check that the install replaces none of Colab's packages
(scripts/check_colab.py; its dry run against PyPI runs in `make test`, these are its
parts that need no network)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import jupytext
import pytest

import aecourse

ROOT = Path(__file__).resolve().parent.parent


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = script("release")
check_colab = script("check_colab")
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md"))


def install_cell(source: Path) -> str:
    return next(c.source for c in jupytext.read(source).cells if c.cell_type == "code")


def test_every_notebook_starts_with_the_same_install_cell():
    cells = {source.name: install_cell(source) for source in SOURCES}
    assert len(set(cells.values())) == 1, cells
    cell = cells[SOURCES[0].name]
    # installed only when missing, from this repository, without extras: an extra such
    # as [widgets] would pull a newer ipywidgets over Colab's own
    assert cell.startswith("try:\n    import aecourse\nexcept ImportError:")
    requirement = release.INSTALL.search(cell)
    assert requirement and '"aecourse @ git+https://' in cell and "[" not in cell


def test_the_refs_agree_with_the_version():
    assert release.problems() == []
    refs = set().union(*release.refs().values())
    assert refs <= {"main", f"v{aecourse.__version__}"}
    assert release.version() == aecourse.__version__


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the files that name a ref, and of the version's file."""
    for path in [*release.files(), ROOT / release.VERSION_FILE]:
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return tmp_path


def test_release_moves_every_ref_to_the_tag(checkout: Path):
    old = release.version(checkout)
    major, minor, patch = map(int, old.split("."))
    new = f"{major}.{minor + 1}.0"
    changed = release.release(new, checkout)
    assert release.version(checkout) == new
    assert {path.name for path in changed} >= {"__init__.py", "README.md", SOURCES[0].name}
    assert set().union(*release.refs(checkout).values()) == {f"v{new}"}
    assert release.problems(checkout) == []
    cell = install_cell(checkout / "notebooks" / SOURCES[0].name)
    assert f'git+https://github.com/aecourse/aecourse@v{new}"' in cell
    with pytest.raises(ValueError, match="above the current"):
        release.release(old, checkout)
    with pytest.raises(ValueError, match="X.Y.Z"):
        release.release("2.0", checkout)


def test_release_check_catches_a_stray_ref(checkout: Path):
    source = checkout / "notebooks" / SOURCES[-1].name
    text = source.read_text()
    source.write_text(release.INSTALL.sub(lambda m: f"{m.group(1)}@v0.0.1", text))
    lines = release.problems(checkout)
    assert any("different refs" in line for line in lines)
    assert any("v0.0.1" in line and "neither main" in line for line in lines)


def test_colab_versions_list_the_key_packages():
    versions, python = check_colab.read_versions(check_colab.VERSIONS)
    assert set(check_colab.KEY) <= set(versions)
    assert python and python.startswith("3.")


def test_colab_versions_reject_a_bad_line(tmp_path: Path):
    bad = tmp_path / "versions.txt"
    bad.write_text("numpy==2.1.3\ntorch>=2\n")
    with pytest.raises(ValueError, match="versions.txt:2: expected name==version"):
        check_colab.read_versions(bad)


def test_replacements_from_a_pip_report():
    report = json.loads("""{"install": [
        {"metadata": {"name": "aecourse", "version": "0.1.0"}},
        {"metadata": {"name": "NumPy", "version": "2.3.0"}},
        {"metadata": {"name": "typing_extensions", "version": "4.15.0"}}]}""")
    installed = {"numpy": "2.1.3", "torch": "2.11.0+cu128"}
    replaced, added = check_colab.replacements(report, installed)
    assert replaced == ["numpy: 2.1.3 -> 2.3.0"]
    assert added == ["aecourse==0.1.0", "typing-extensions==4.15.0"]
    assert check_colab.replacements({"install": []}, installed) == ([], [])
