"""The student edition's solution stripping (scripts/build_student.py), on small sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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
