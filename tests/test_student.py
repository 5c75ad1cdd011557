"""The student notebooks notebooks/student/*.ipynb (scripts/make_student.py).

They are what the generator makes of the chapter sources, hold no solution (code or
text), show the skeletons and checks, and their Colab badges open themselves; the
student edition's launch URLs name them. Running them top to bottom is nbval's job
(`make test-student`); the built student edition is checked in tests/site.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from student_sources import PARTS, ROOT, SOURCES, make_student

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


# --- the committed student notebooks -------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_student_notebook_is_what_the_generator_makes(source: Path) -> None:
    path = make_student.student_path(source)
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make student`"
    expected = make_student.render(make_student.student_notebook(source))
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.relative_to(ROOT)} differs from what scripts/make_student.py makes of "
        f"{source.relative_to(ROOT)}: run `make student` (never edit it by hand)"
    )


def _student_cells(source: Path) -> list[dict]:
    return json.loads(make_student.student_path(source).read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_solution_leaks_into_the_student_notebook(source: Path) -> None:
    cells = _student_cells(source)
    text = "\n".join("".join(c["source"]) for c in cells)
    lines = {line.strip() for line in text.splitlines()}
    code, phrases = make_student.solution_fragments(source)
    assert code and phrases, "the source's solutions were not found"
    assert not code & lines, f"solution code in the student notebook: {sorted(code & lines)[:5]}"
    words = make_student.words(text)
    leaked = [phrase for phrase in phrases if phrase in words]
    assert not leaked, f"solution text in the student notebook: {leaked}"
    assert not re.search(r"\{solution(-start|-end)?\}", text)
    # and every exercise is there, with its skeleton and check
    for label in PARTS[source]:
        assert label in text


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_notebook_shows_skeletons_and_checks(source: Path) -> None:
    cells = _student_cells(source)
    tagged = [c for c in cells if {"skeleton", "check"} & set(c["metadata"].get("tags", []))]
    assert tagged and all("remove-cell" not in c["metadata"]["tags"] for c in tagged)
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")
    assert "jupytext" not in json.loads(make_student.student_path(source).read_text())["metadata"]


def colab_url(path: str) -> str:
    repo = CONFIG["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{path}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_colab_badge_opens_the_committed_student_notebook(source: Path) -> None:
    path = make_student.student_path(source)
    text = "\n".join("".join(c["source"]) for c in _student_cells(source))
    links = re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"']+\.ipynb", text)
    assert links == [colab_url(path.relative_to(ROOT).as_posix())], links
    assert path.is_file()


def test_student_launch_urls_name_the_student_notebook() -> None:
    spec = importlib.util.spec_from_file_location("aecourse_book", ROOT / "book" / "_ext" / "aecourse_book.py")
    book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book)
    student = "notebooks/student/03_denoising.ipynb"
    page = "notebooks/03_denoising"
    colab = colab_url(f"{page}.ipynb")
    binder = f"https://mybinder.org/v2/gh/a/b/main?urlpath=lab/tree/{page}.ipynb"
    assert book.student_launch_url(colab, page, student) == colab_url(student)
    assert book.student_launch_url(binder, page, student).endswith(f"lab/tree/{student}")
    with pytest.raises(ValueError, match="does not name the page"):
        book.student_launch_url(colab, "notebooks/04_vae", student)
