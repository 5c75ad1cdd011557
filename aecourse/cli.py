"""Argument types shared by the command lines: a bad value is an error, never a default."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse `type=` that accepts numbers of `kind` above 0 and rejects the rest."""
    what = "integer" if kind is int else "number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {what}, got {text!r}")
        return value

    return parse


def directory(text: str) -> Path:
    """An argparse `type=` for a directory that exists."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected an existing directory, got {text!r}")
    return path
