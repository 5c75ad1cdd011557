"""Generate the student notebooks from the chapter sources: never edit them by hand.

    python scripts/make_student.py           # writes notebooks/student/NN_name.ipynb
    python scripts/make_student.py --check   # exit status 1 if a committed one differs

A chapter's one source, notebooks/NN_name.md, holds each exercise's solution between
its gated ``solution-start`` and ``solution-end`` markers, and around it two kinds of
code cells that the main edition removes from its pages (tag ``remove-cell``):

- ``skeleton`` (before the solution): the function's signature and docstring with its
  shapes, and ``...`` where the student writes;
- ``check`` (after it): ``name = exercises.check("ex-label", name)``, which says
  whether the answer is right and, if not, what is wrong (aecourse/exercises/).

The student notebook is the source without its solutions (the same stripping as the
student book, scripts/build_student.py) with the skeleton and check cells shown, its
Colab badge pointing at itself, and the exercise directives written as plain Markdown
for Colab. In the main edition the skeleton runs before the solution, which replaces
it, and the check runs after it: the book build checks every reference solution too.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STUDENT_DIR = "notebooks/student"  # relative to the repository root
SKELETON, CHECK, HIDDEN = "skeleton", "check", "remove-cell"

_spec = importlib.util.spec_from_file_location(
    "build_student", Path(__file__).with_name("build_student.py")
)
build_student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_student)

# a Colab link to a chapter notebook: (the part up to the branch, the notebook's name)
COLAB = re.compile(
    r"(https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/)"
    r"notebooks/([\w-]+\.ipynb)"
)
EXERCISE = re.compile(
    r"^(?P<fence>`{3,}):?\{exercise\}[^\n]*\n:label: (?P<label>[\w-]+)\n"
    r"(?P<body>.*?)^(?P=fence)\s*$",
    re.M | re.S,
)
RELATIVE_LINK = re.compile(r"\]\((?!https?:|mailto:|#|/)")

NOTE = """\
**Student edition.** Each exercise below has a skeleton: a function's signature, the
shapes it takes and returns, and `...` where you write. The cell after it checks your
answer on inputs of its own and says whether it is right and, if not, what is wrong.
Until you answer, the check hands the cells below the course's reference function, so
the notebook runs from top to bottom either way."""


def sources() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))


def student_path(source: Path) -> Path:
    return ROOT / STUDENT_DIR / f"{source.stem}.ipynb"


def _text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _cell_id(index: int, cell: dict) -> str:
    """A stable id (the same source gives the same file), unique within the notebook."""
    digest = hashlib.sha1(f"{index}\0{cell['cell_type']}\0{_text(cell)}".encode()).hexdigest()
    return digest[:8]


def plain_exercises(text: str) -> str:
    """``{exercise}`` directives as plain Markdown (Colab does not know MyST directives)."""

    def replace(match: re.Match) -> str:
        body = match["body"].strip("\n")
        return f"**Exercise** `{match['label']}`\n\n{body}\n"

    return EXERCISE.sub(replace, text)


LABEL = re.compile(r"^`{3,}:?\{exercise\}[^\n]*\n:label: ([\w-]+)", re.M)
SOLUTION_START = re.compile(r"\{solution-start\}\s+([\w-]+)")
SOLUTION_END = re.compile(r"\{solution-end\}")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def exercise_parts(nb: nbformat.NotebookNode) -> dict[str, dict[str, list]]:
    """label -> {"skeleton", "solution", "check": cells} of a chapter notebook, in order.
    A cell belongs to the exercise whose statement came last before it."""
    parts: dict[str, dict[str, list]] = {}
    label, inside = None, False
    for cell in nb.cells:
        text = _text(cell)
        if cell.cell_type == "markdown":
            found = LABEL.search(text)
            if found:
                label = found[1]
                parts[label] = {"skeleton": [], "solution": [], "check": []}
            start = SOLUTION_START.search(text)
            if start:
                inside, label = True, start[1]
                continue
            if SOLUTION_END.search(text):
                inside = False
                continue
        tags = cell.get("metadata", {}).get("tags", [])
        if inside:
            parts[label]["solution"].append(cell)
        elif SKELETON in tags or CHECK in tags:
            parts[label][SKELETON if SKELETON in tags else CHECK].append(cell)
    return parts


def solution_fragments(source: Path) -> tuple[set[str], set[str]]:
    """What of a chapter's solutions must not appear in a student edition.

    Returns (code lines, phrases): the solutions' code lines of 16 characters or more
    that no other cell of the source has (the skeleton's signature and docstring are
    meant to be shared), and the first eight words of each solution paragraph of ten
    words or more (compare with `words`).
    """
    nb = jupytext.read(source)
    cells = nb.cells
    solution_ids = {id(c) for part in exercise_parts(nb).values() for c in part["solution"]}
    elsewhere = {
        line.strip() for c in cells if id(c) not in solution_ids for line in _text(c).splitlines()
    }
    code, phrases = set(), set()
    for cell in (c for c in cells if id(c) in solution_ids):
        if cell.cell_type == "code":
            code |= {
                line.strip() for line in _text(cell).splitlines()
                if len(line.strip()) >= 16 and line.strip() not in elsewhere
            }
            continue
        for paragraph in re.split(r"\n\s*\n", _text(cell)):
            tokens = WORD.findall(paragraph)
            if len(tokens) >= 10:
                phrases.add(" ".join(tokens[:8]))
    return code, phrases


def words(text: str) -> str:
    """The words of a text, one space apart (for looking up `solution_fragments` phrases)."""
    return " ".join(WORD.findall(text))


def student_notebook(source: Path, *, for_colab: bool = True) -> nbformat.NotebookNode:
    """The student version of a chapter source notebooks/NN_name.md.

    for_colab=True: the committed file in notebooks/student/ (exercise directives as
    Markdown, relative links one folder deeper); False: the page of the student book,
    built at the source's own path.
    """
    nb = jupytext.read(source)
    stripped = build_student.strip_notebook(nb)
    cells = []
    for cell in stripped["cells"]:
        cell = nbformat.from_dict(dict(cell))
        tags = list(cell.get("metadata", {}).get("tags", []))
        if SKELETON in tags or CHECK in tags:
            cell.metadata["tags"] = [t for t in tags if t != HIDDEN]
        if cell.cell_type == "markdown":
            text = _text(cell)
            text = COLAB.sub(lambda m: f"{m[1]}{STUDENT_DIR}/{m[2]}", text)
            if for_colab:
                text = plain_exercises(text)
                text = RELATIVE_LINK.sub("](../", text)
            cell.source = text
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        cells.append(cell)
    title = next(i for i, c in enumerate(cells) if c.cell_type == "markdown")
    cells.insert(title + 1, nbformat.v4.new_markdown_cell(NOTE))
    for index, cell in enumerate(cells):
        cell.id = _cell_id(index, cell)
    metadata = {"kernelspec": nb.metadata["kernelspec"]}
    if not for_colab:
        metadata["jupytext"] = nb.metadata.get("jupytext", {})
    return nbformat.v4.new_notebook(cells=cells, metadata=metadata)


def render(nb: nbformat.NotebookNode) -> str:
    """The .ipynb text of a notebook, as committed."""
    return jupytext.writes(nb, fmt="ipynb")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    stale = []
    for source in sources():
        path = student_path(source)
        text = render(student_notebook(source))
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if text == old:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"make_student: wrote {path.relative_to(ROOT)}")
    if stale:
        print("make_student: out of date (run `make student`):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
