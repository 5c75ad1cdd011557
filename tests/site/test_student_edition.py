"""The student edition's solution stripping (scripts/build_student.py), on small sources."""

from __future__ import annotations

import html
import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_student.py"
spec = importlib.util.spec_from_file_location("build_student", SCRIPT)
build_student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_student)

PAGE = """\
# Chapter

Text before.

```{exercise} Sum
:label: ex-sum

What is $1 + 1$?
```

````{solution} ex-sum
:class: dropdown

Two, as this block shows:

```python
1 + 1
```
````

:::{solution} ex-sum
A colon-fenced solution.
:::

```{solution-start} ex-sum
:class: dropdown
```

A gated solution in a page.

```{solution-end}
```

Text after.
"""


def md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text: str, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": text, "outputs": []}


def test_markdown_solutions_are_removed_and_the_rest_kept() -> None:
    text, inside = build_student.strip_markdown(PAGE)
    assert not inside
    assert "solution" not in text and "Two, as" not in text and "gated solution" not in text
    for kept in ("Text before.", "```{exercise} Sum", "What is $1 + 1$?", "Text after."):
        assert kept in text


def test_gated_notebook_solution_drops_every_cell_in_between() -> None:
    nb = {
        "cells": [
            md("```{exercise} Train longer\n:label: ex-train\nTrain for 5 epochs.\n```"),
            code("x = 1"),
            md("```{solution-start} ex-train\n:class: dropdown\n```"),
            code("history = fit(model)"),
            md("The loss keeps falling."),
            md("```{solution-end}\n```"),
            code("y = 2"),
            code("secret = 3", tags=("solution",)),
            md(["Plain text with a\n", "```{solution} ex-train\nInline answer.\n```\n", "and more.\n"]),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    cells = build_student.strip_notebook(nb)["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    assert sources[:3] == [nb["cells"][0]["source"], "x = 1", "y = 2"]
    assert sources[3] == "Plain text with a\nand more.\n"
    assert len(cells) == 4


@pytest.mark.parametrize("html", ['<div class="solution dropdown admonition">', '<section id="solution-content">'])
def test_leftover_solutions_are_found(tmp_path: Path, html: str) -> None:
    (tmp_path / "page.html").write_text(f"<html><body>{html}</body></html>")
    (tmp_path / "clean.html").write_text('<html><body><div class="exercise">x</div></body></html>')
    assert build_student.leftovers(tmp_path) == ["page.html"]


# --- the built student edition (make test builds it into _build/student/html) ----------

STUDENT_SITE_ENV = "AECOURSE_STUDENT_SITE_DIR"
ROOT = SCRIPT.parents[1]
_make = importlib.util.spec_from_file_location("make_student", ROOT / "scripts" / "make_student.py")
make_student = importlib.util.module_from_spec(_make)
_make.loader.exec_module(make_student)
LAUNCH = re.compile(
    r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)/[^"]+)"'
)


@pytest.fixture(scope="module")
def student_site() -> Path:
    value = os.environ.get(STUDENT_SITE_ENV)
    if not value:
        pytest.skip(f"the student edition is checked with {STUDENT_SITE_ENV} set (make test)")
    site = Path(value).resolve()
    if not site.exists():  # `make test-site` after `make book` alone
        pytest.skip(f"{site} is not built: run `make book-student` (make test does)")
    if not (site / "index.html").is_file():
        pytest.fail(f"{STUDENT_SITE_ENV}={site} has no index.html: run `make book-student`")
    return site


def _repo() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/").removeprefix("https://github.com/")
    return url, config["repository"]["branch"]


def _launched_path(url: str) -> str:
    """The repository path a Colab or Binder link opens."""
    repo, branch = _repo()
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/"
    if url.startswith(colab):
        return url.removeprefix(colab)
    binder = re.fullmatch(rf"https://mybinder\.org/v2/gh/{repo}/{branch}\?urlpath=lab/tree/(.+)", url)
    assert binder, f"a launch link to another repository or branch: {url}"
    return binder[1]


def _text(html_text: str, sep: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", sep, html_text))


def test_student_pages_launch_the_committed_student_notebooks(student_site: Path) -> None:
    for source in make_student.sources():
        page = student_site / "notebooks" / f"{source.stem}.html"
        links = LAUNCH.findall(page.read_text(encoding="utf-8"))
        student = make_student.student_path(source).relative_to(ROOT).as_posix()
        opened = {_launched_path(html.unescape(link)) for link in links}
        # the Colab badge, the Colab and the Binder launch buttons
        assert len(links) >= 3, f"{page.name}: launch links {links}"
        assert opened == {student}, f"{page.name} opens {opened}, expected {student}"
        assert (ROOT / student).is_file()


def test_no_page_of_the_student_edition_launches_a_notebook_with_solutions(student_site: Path) -> None:
    for page in sorted(student_site.rglob("*.html")):
        for link in LAUNCH.findall(page.read_text(encoding="utf-8")):
            path = _launched_path(html.unescape(link))
            assert path.startswith("notebooks/student/"), f"{page.relative_to(student_site)} opens {path}"


def _book_fragments(path: Path) -> tuple[set[str], set[str]]:
    """Code lines and phrases of a text page's solutions (what stripping removes)."""
    original = path.read_text(encoding="utf-8")
    kept = set(build_student.strip_markdown(original)[0].splitlines())
    directive = ("```", ":::", ":class:", ":label:", "+++")
    removed = "\n".join(
        line for line in original.splitlines()
        if line not in kept and not line.strip().startswith(directive)
    )
    code = {line.strip() for line in removed.splitlines() if len(line.strip()) >= 16}
    phrases = set()
    for paragraph in re.split(r"\n\s*\n", removed):
        tokens = make_student.WORD.findall(paragraph)
        if len(tokens) >= 10:
            phrases.add(" ".join(tokens[:8]))
    return code, phrases


def test_no_solution_text_or_code_in_the_student_pages(student_site: Path) -> None:
    pages = {}
    for source in make_student.sources():
        pages[student_site / "notebooks" / f"{source.stem}.html"] = make_student.solution_fragments(source)
    for source in sorted((ROOT / "book").glob("[0-9][0-9]_*.md")):
        pages[student_site / "book" / f"{source.stem}.html"] = _book_fragments(source)
    checked = 0
    for page, (code, phrases) in pages.items():
        raw = page.read_text(encoding="utf-8")
        lines = {line.strip() for line in _text(raw, "").splitlines()}
        words = make_student.words(_text(raw, " "))
        assert not code & lines, f"{page.name}: solution code {sorted(code & lines)[:3]}"
        leaked = [phrase for phrase in phrases if phrase in words]
        assert not leaked, f"{page.name}: solution text {leaked[:3]}"
        checked += len(code) + len(phrases)
    assert checked > 100  # the fragments were found


def test_main_edition_pages_launch_the_notebooks_with_solutions() -> None:
    value = os.environ.get("AECOURSE_SITE_DIR")
    if not value or not (Path(value) / "index.html").is_file():
        pytest.skip("the main edition is checked with AECOURSE_SITE_DIR set (make test-site)")
    for source in make_student.sources():
        page = Path(value) / "notebooks" / f"{source.stem}.html"
        links = LAUNCH.findall(page.read_text(encoding="utf-8"))
        opened = {_launched_path(html.unescape(link)) for link in links}
        assert opened == {f"notebooks/{source.stem}.ipynb"}, f"{page.name} opens {opened}"
