"""Instant feedback for the notebooks' code exercises.

In a student notebook each code exercise has a skeleton (a function's signature, its
shapes, and `...` where the student writes) followed by a check cell:

    build_up = exercises.check("ex-manifold-eigenimages", build_up)

`check` calls the student's function on inputs of its own, compares what it returns with
a reference computed with the package, and prints one line per answer: right, not
answered yet, or what is wrong (a shape, a sign, a factor, a value out of range). It
returns the student's functions that are right and the package's reference for the
rest, so the cells after an exercise run either way. One module per chapter registers
its exercises; `diagnose` is the same test without printing or falling back (the unit
tests use it).
"""

from __future__ import annotations

from typing import Any

from aecourse.exercises import (  # noqa: F401  (each registers its chapter's exercises)
    autoencoder,
    comparison,
    denoising,
    manifold,
    vae,
    vqvae,
)
from aecourse.exercises.core import EXERCISES, Exercise, Unanswered, Wrong

__all__ = ["EXERCISES", "check", "diagnose", "reference"]


def _exercise(label: str, answers: tuple[Any, ...]) -> Exercise:
    if label not in EXERCISES:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise labelled {label!r}; the course has: {known}")
    exercise = EXERCISES[label]
    if len(answers) != len(exercise.answers):
        names = ", ".join(a.name for a in exercise.answers)
        raise TypeError(
            f"{label} checks {len(exercise.answers)} answer(s) ({names}), "
            f"got {len(answers)}"
        )
    return exercise


def diagnose(label: str, *answers: Any) -> list[str | None]:
    """For each answer: None when it is right, otherwise what is wrong.

    An answer that is not written yet gives a message starting "not answered".
    """
    exercise = _exercise(label, answers)
    found: list[str | None] = []
    for spec, answer in zip(exercise.answers, answers):
        try:
            spec.test(answer)
        except Unanswered as missing:
            found.append(f"not answered yet: {missing}")
        except Wrong as wrong:
            found.append(str(wrong))
        else:
            found.append(None)
    return found


def reference(label: str) -> tuple[Any, ...]:
    """The package's reference answers of an exercise (what `check` falls back to)."""
    return tuple(a.reference for a in EXERCISES[label].answers)


def check(label: str, *answers: Any) -> Any:
    """Check a student's answers to an exercise and say what is wrong, if anything.

    Returns the answers, each replaced by the package's reference when it is missing
    or wrong (one value for one answer, else a tuple in the order given), so the
    cells below run in any case.
    """
    exercise = _exercise(label, answers)
    results = []
    for spec, answer, problem in zip(exercise.answers, answers, diagnose(label, *answers)):
        if problem is None:
            print(f"✓ {label}: {spec.name} is right.")
            results.append(answer)
            continue
        if problem.startswith("not answered"):
            print(f"… {label}: {problem}.")
        else:
            print(f"✗ {label}: {problem}.")
        print(f"  The cells below use the course's reference {spec.name}.")
        results.append(spec.reference)
    return results[0] if len(results) == 1 else tuple(results)
