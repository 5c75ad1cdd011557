"""The chapter notebooks: each MyST source notebooks/NN_name.md and its generated .ipynb agree.

The .md is the source; `make notebooks` writes the .ipynb from it with Jupytext (Colab
opens the .ipynb). The comparison is Jupytext's own (`jupytext.compare`), the one its
round-trip tests use: cell by cell, sources and cell types, outputs ignored.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import NotebookDifference, compare_notebooks

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))
FIX = "run `make notebooks` to regenerate the .ipynb from its .md source"


def paired(source: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """The notebook read from the .md source, and the committed .ipynb beside it."""
    generated = source.with_suffix(".ipynb")
    assert generated.exists(), f"{generated.name} is missing: {FIX}"
    return jupytext.read(source), nbformat.read(generated, as_version=4)


def test_every_chapter_has_a_source():
    names = {path.stem for path in SOURCES}
    assert len(names) >= 6
    assert names == {path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_ipynb_matches_its_source(source: Path):
    from_md, ipynb = paired(source)
    try:
        compare_notebooks(ipynb, from_md, fmt="md:myst")
    except NotebookDifference as difference:
        pytest.fail(f"{source.with_suffix('.ipynb').name} differs from {source.name} ({FIX}):\n{difference}")


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_ipynb_is_stored_without_outputs(source: Path):
    _, ipynb = paired(source)
    with_outputs = [i for i, cell in enumerate(ipynb.cells) if cell.get("outputs")]
    assert not with_outputs, f"{source.with_suffix('.ipynb').name}: cells {with_outputs} have outputs"


def test_an_edit_of_one_side_is_caught():
    """The check fails on a pair out of sync: one word changed in a code cell of the .md."""
    from_md, ipynb = paired(SOURCES[0])
    cell = next(cell for cell in from_md.cells if cell.cell_type == "code")
    cell.source += "\nprint('edited')"
    with pytest.raises(NotebookDifference):
        compare_notebooks(ipynb, from_md, fmt="md:myst")
