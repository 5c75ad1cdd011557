"""Execute notebooks and store only the outputs that nbval compares.

    python scripts/store_outputs.py                      # every notebook in notebooks/
    python scripts/store_outputs.py notebooks/04_vae.ipynb

nbval runs with --nbval-lax: every cell must run, and a cell's stored output is compared
with the fresh one only when the cell starts with ``# NBVAL_CHECK_OUTPUT``. So those cells
keep their (text) outputs, the regression reference, and every other cell is stored
empty: the notebooks stay small and their diffs readable. Run this after the shipped
weights change, and review the diff of the checked figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# NBVAL_CHECK_OUTPUT"


def store(path: Path, timeout: int = 600) -> float:
    """Execute `path` in place, keep only the checked cells' outputs; return the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.lstrip().startswith(MARKER):  # nbval needs its execution count too
            # text only: images and widget views are not compared and would bloat the file
            cell.outputs = [o for o in cell.outputs if o.output_type == "stream" or "text/plain" in o.get("data", {})]
            for output in cell.outputs:
                if "data" in output:
                    output.data = {"text/plain": output.data["text/plain"]}
                    output.metadata = {}
        else:
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        print(f"{path.name}: executed in {store(path):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
