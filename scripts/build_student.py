"""Build the student edition of the book: the same pages without exercise solutions.

    python scripts/build_student.py            # what `make book-student` runs

Copies the book's sources to _build/student/src, removes every sphinx-exercise solution
from the copy (``{solution}`` blocks, gated ``{solution-start}`` ... ``{solution-end}``
blocks, and in notebooks every cell from a ``solution-start`` cell to its ``solution-end``
cell), builds it with warnings as errors into _build/student/html, and fails if a solution
is left in the pages or in the downloadable sources. Each chapter notebook's page is its
student notebook (scripts/make_student.py: skeletons and feedback checks in place of the
solutions), and its launch buttons open the committed student notebook
notebooks/student/NN_name.ipynb (book/_ext/aecourse_book.py); the repository and issue
buttons stay off. The execution cache is the main build's (_build/.jupyter_cache).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parent.parent
STUDENT_NOTEBOOKS = "notebooks/student"  # the committed student notebooks (make student)
# Not copied: build outputs and environments. The folders that the book serves from
# _static (MathJax, onnxruntime-web, the exported explorers) are linked, not copied.
LINKED = (".mathjax", ".onnxruntime", ".explorers")
SKIP = {".git", ".venv", "_build", *LINKED, "node_modules", ".pytest_cache", "__pycache__"}

# An opening fence of a solution directive: ```{solution} label, ::::{solution-start} label
SOLUTION_OPEN = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{solution(?P<gated>-start)?\}")
GATED_END = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{solution-end\}")
LEFT_IN_HTML = re.compile(r'class="[^"]*\bsolution\b|id="solution-content"')
LEFT_IN_SOURCE = re.compile(r"\{solution(-start|-end)?\}")


def _closes(line: str, fence: str) -> bool:
    """Whether `line` closes a block opened with `fence` (same character, at least as long)."""
    stripped = line.strip()
    return bool(stripped) and set(stripped) == {fence[0]} and len(stripped) >= len(fence)


def strip_markdown(text: str, inside: bool = False) -> tuple[str, bool]:
    """Remove solution directives (plain and gated) from MyST markdown text.

    `inside` says whether the text starts inside a gated solution (a notebook's gated
    solution spans cells); the second value returned says whether it ends inside one.
    """
    out: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0

    def skip_block(i: int, fence: str) -> int:  # index after the block's closing fence
        while i < len(lines) and not _closes(lines[i], fence):
            i += 1
        return i + 1

    while i < len(lines):
        if inside:
            end = GATED_END.match(lines[i])
            i = skip_block(i + 1, end["fence"]) if end else i + 1
            inside = not end
            continue
        start = SOLUTION_OPEN.match(lines[i])
        if start:
            i = skip_block(i + 1, start["fence"])
            inside = bool(start["gated"])
            continue
        out.append(lines[i])
        i += 1
    return "".join(out), inside


def strip_notebook(nb: dict) -> dict:
    """Remove solutions from a notebook (as parsed JSON): solution blocks in markdown cells,
    every cell of a gated solution, and cells tagged `solution`. Returns a new notebook."""
    cells, inside = [], False
    for cell in nb.get("cells", []):
        if "solution" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.get("cell_type") != "markdown":
            if not inside:
                cells.append(cell)
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        text, inside = strip_markdown(source, inside)
        if text == source:
            cells.append(cell)
        elif text.strip():
            cells.append({**cell, "source": text})
    return {**nb, "cells": cells}


def copy_sources(dest: Path) -> None:
    """Copy the repository's files (as a clone would have them) to `dest`."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.split("\0")
        files = [ROOT / f for f in listed if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        files = [p for p in ROOT.rglob("*") if p.is_file()]
    for src in files:
        rel = src.relative_to(ROOT)
        if rel.parts[0] in SKIP or "__pycache__" in rel.parts or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for folder in LINKED:
        (dest / folder).symlink_to(ROOT / folder)


def strip_tree(src: Path) -> list[Path]:
    """Strip solutions from every markdown page and notebook under `src`; returns changed files."""
    changed = []
    for path in sorted(src.rglob("*.md")) + sorted(src.rglob("*.ipynb")):
        if path.suffix == ".md":
            old = path.read_text(encoding="utf-8")
            new = strip_markdown(old)[0]
        else:
            nb = json.loads(path.read_text(encoding="utf-8"))
            old = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
            new = json.dumps(strip_notebook(nb), indent=1, ensure_ascii=False) + "\n"
        if new != old:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def student_notebooks(src: Path) -> list[Path]:
    """Replace each chapter source notebooks/NN_name.md of the copy by its student version
    (the committed student notebook's cells, MyST directives kept for the book)."""
    script = ROOT / "scripts" / "make_student.py"
    spec = importlib.util.spec_from_file_location("make_student", script)
    make_student = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_student)
    replaced = []
    for source in make_student.sources():
        copy = src / source.relative_to(ROOT)
        jupytext.write(make_student.student_notebook(source, for_colab=False), copy, fmt="md:myst")
        replaced.append(copy)
    return replaced


def student_config(src: Path) -> None:
    """Rewrite the copy's _config.yml for the student edition."""
    path = src / "_config.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["title"] = f"{config['title']} (student edition)"
    config.setdefault("execute", {})["cache"] = str(ROOT / "_build" / ".jupyter_cache")
    config.setdefault("html", {}).update(use_repository_button=False, use_issues_button=False)
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx["hide_solutions"] = True
    # launch buttons open notebooks/student/NN_name.ipynb (book/_ext/aecourse_book.py)
    sphinx["aecourse_student_notebooks"] = STUDENT_NOTEBOOKS
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def leftovers(html: Path) -> list[str]:
    """Solutions still present in the built pages or their downloadable sources."""
    found = []
    for path in sorted(html.rglob("*")):
        if path.suffix == ".html" and LEFT_IN_HTML.search(path.read_text(encoding="utf-8")):
            found.append(str(path.relative_to(html)))
        elif path.suffix in {".md", ".ipynb"} and LEFT_IN_SOURCE.search(
            path.read_text(encoding="utf-8")
        ):
            found.append(str(path.relative_to(html)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args()
    out = args.out.resolve()
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)

    copy_sources(src)
    student_notebooks(src)
    changed = strip_tree(src)
    student_config(src)
    print(f"build_student: removed solutions from {len(changed)} file(s)")
    for path in changed:
        print(f"  {path.relative_to(src)}")

    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(src), "--path-output", str(src), "-W", "-n", "--keep-going"]
    if subprocess.run(cmd).returncode != 0:
        return 1
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.move(src / "_build" / "html", html)

    left = leftovers(html)
    if left:
        print("build_student: solutions left in the student edition:", *left, sep="\n  ")
        return 1
    print(f"build_student: student edition in {html.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
