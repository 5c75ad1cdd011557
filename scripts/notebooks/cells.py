"""Cell builders shared by the make_*.py scripts that write the chapter notebooks.

The notebooks are written without outputs; after regenerating one, run
``python scripts/store_outputs.py notebooks/<name>.ipynb`` to store nbval's reference outputs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def exercise(label: str, text: str, solution: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """An exercise, then its solution cells between gated solution-start/-end markers."""
    return [
        md(f"```{{exercise}}\n:label: {label}\n\n{text.strip()}\n```"),
        md(f"````{{solution-start}} {label}\n:class: dropdown\n````"),
        *solution,
        md("```{solution-end}\n```"),
    ]


def install_cell() -> nbformat.NotebookNode:
    """Every notebook's first code cell: install the package only where it is missing (Colab)."""
    return code("""
try:
    import aecourse
except ImportError:  # e.g. on Colab: install the course package, keeping Colab's torch
    %pip install -q "aecourse @ git+https://github.com/aecourse/aecourse"
    import aecourse
""")


def write(cells: list[nbformat.NotebookNode], out: Path, id_prefix: str | None = None) -> None:
    """Write the notebook; with id_prefix, stable cell ids make regenerating byte-identical."""
    nb = new_notebook(cells=cells)
    if id_prefix is not None:
        for i, cell in enumerate(nb.cells):
            cell.id = f"{id_prefix}-{i:02d}"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, out)
    print(f"wrote {out}")
