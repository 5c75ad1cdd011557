"""scripts/make_student.py loaded as a module, and the exercise parts of every chapter
source: shared by the tests of the exercise checks and of the student notebooks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_student", ROOT / "scripts" / "make_student.py")
make_student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_student)

SOURCES = make_student.sources()
PARTS = {source: make_student.exercise_parts(jupytext.read(source)) for source in SOURCES}
