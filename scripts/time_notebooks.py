"""Time each chapter notebook: wall seconds and the kernel's CPU seconds, on this machine.

    python scripts/time_notebooks.py                     # notebooks/NN_name.ipynb
    python scripts/time_notebooks.py notebooks/student   # the student notebooks

Runs every notebook of the folder from top to bottom in a fresh kernel (nbclient, the
executor behind the book build) and prints one Markdown table row per notebook, the
figures of book/instructors.md. The CPU seconds are the kernel's own (user + system,
all threads), read in the kernel after the last cell, so they do not count the time
the machine gave to other jobs. Set OMP_NUM_THREADS=1 for single-core figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent

CPU_CELL = (
    "import json as _json, os as _os\n"
    "_t = _os.times()\n"
    "print('AECOURSE_CPU', _json.dumps(_t.user + _t.system))"
)


def run(path: Path, timeout: int) -> tuple[float, float]:
    """Wall and kernel CPU seconds of one notebook, run in its own folder."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CPU_CELL))
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    text = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    cpu = json.loads(text.split("AECOURSE_CPU", 1)[1])
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    paths = sorted(args.folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        print(f"time_notebooks: no NN_name.ipynb in {args.folder}", file=sys.stderr)
        return 1
    print("| notebook | wall s | kernel CPU s |\n| --- | ---: | ---: |")
    for path in paths:
        wall, cpu = run(path, args.timeout)
        print(f"| {path.name} | {wall:.0f} | {cpu:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
