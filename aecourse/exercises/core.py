"""What every exercise check shares: the registry, calling a student's answer, and
comparing what it returns with a reference computed with the package.

A check tests behaviour, never source text: it calls the student's function on inputs
of its own (seeded, so every run sees the same ones), compares the result with the
package's reference, and when they differ says *what* differs (a shape, a sign, a
factor, a constant offset, values out of range, or a mistake it knows by name) without
printing the expected values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


class Wrong(Exception):
    """The answer runs but is not right; the message says what is wrong."""


class Unanswered(Exception):
    """The answer is still the skeleton (`...`, or a function that returns None)."""


@dataclass(frozen=True)
class Answer:
    """One thing a student writes for an exercise (a function, in this course).

    name: the name the skeleton defines, e.g. "build_up".
    reference: the package's own answer, used when the student's is missing or wrong.
    test: calls the student's answer and raises Wrong or Unanswered.
    """

    name: str
    reference: Callable[..., Any]
    test: Callable[[Callable[..., Any]], None]


@dataclass(frozen=True)
class Exercise:
    label: str  # the sphinx-exercise label, e.g. "ex-manifold-noise"
    answers: tuple[Answer, ...]


EXERCISES: dict[str, Exercise] = {}


def register(label: str, *answers: Answer) -> None:
    """Add an exercise's answers to the registry (at import of its chapter module)."""
    if label in EXERCISES:
        raise ValueError(f"exercise {label!r} is registered twice")
    EXERCISES[label] = Exercise(label, answers)


def generator(seed: int = 0) -> torch.Generator:
    """A CPU generator: every check draws the same inputs on every run."""
    return torch.Generator().manual_seed(seed)


def unanswered(value: object) -> bool:
    return value is None or value is Ellipsis


def call(name: str, function: object, *args: Any, shown: str = "", **kwargs: Any) -> Any:
    """Call a student's function; its errors and missing answers become Wrong/Unanswered.

    `shown` is how the call is written in messages, e.g. "k=2" for build_up(..., k=2).
    """
    if unanswered(function):
        raise Unanswered(f"{name} is not defined yet")
    if not callable(function):
        raise Wrong(f"{name} is a {type(function).__name__}, expected a function")
    where = f"{name}({shown})" if shown else name
    try:
        result = function(*args, **kwargs)
    except NotImplementedError as error:
        raise Unanswered(f"{where} is not written yet") from error
    except Exception as error:  # the student's code: report any error it raises
        hint = ""
        if "same device" in str(error):
            # e.g. torch.linspace(..., device=device) with the notebook's GPU
            hint = " (the check passes CPU tensors: create new ones on the inputs' device)"
        raise Wrong(f"{where} raised {type(error).__name__}: {error}{hint}") from error
    if unanswered(result):
        raise Unanswered(
            f"{where} returns {result!r} (its body is still `...`, or it has no return)"
        )
    return result


def as_tensor(what: str, value: object) -> Tensor:
    """A tensor from a tensor, a number, a list or an array; Wrong for anything else."""
    if isinstance(value, Tensor):
        if value.is_complex():
            raise Wrong(f"{what} is complex, expected real numbers")
        return value.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Wrong(
            f"{what} is a {type(value).__name__}, expected a tensor or a number"
        ) from None


def _shape(t: Tensor) -> str:
    return "a single number" if t.dim() == 0 else f"shape {tuple(t.shape)}"


def expect_close(
    what: str,
    got: object,
    expected: object,
    *,
    mistakes: Mapping[str, object] | None = None,
    within: tuple[float, float] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Raise Wrong with a specific message unless `got` matches `expected`.

    mistakes: message -> the value a known mistake gives; a match names the mistake.
    within: the range every value must lie in (e.g. (0, 1) for images).
    The messages name shapes, signs, factors and offsets, never the expected values.
    """
    got_t, want = as_tensor(what, got), as_tensor(what, expected)
    if got_t.numel() == 1 and want.numel() == 1:
        got_t, want = got_t.reshape(()), want.reshape(())
    if got_t.shape != want.shape:
        raise Wrong(f"{what} has {_shape(got_t)}, expected {_shape(want)}")
    if not torch.isfinite(got_t).all():
        raise Wrong(f"{what} has NaN or infinite values")

    def close(a: Tensor, b: Tensor) -> bool:
        return bool(torch.allclose(a, b, rtol=rtol, atol=atol))

    if close(got_t, want):
        return
    for message, value in (mistakes or {}).items():
        wrong = as_tensor(what, value)
        if wrong.numel() == got_t.numel() and close(got_t, wrong.reshape(got_t.shape)):
            raise Wrong(f"{what}: {message}")
    if within is not None:
        low, high = within
        if got_t.min() < low - atol or got_t.max() > high + atol:
            span = f"[{got_t.min().item():.3g}, {got_t.max().item():.3g}]"
            raise Wrong(f"{what} has values in {span}, outside [{low:g}, {high:g}]")
    if close(got_t, -want) and want.abs().max() > atol:
        raise Wrong(f"{what} has the wrong sign")
    if got_t.dim() == 0:
        word = "too high" if got_t > want else "too low"
        raise Wrong(f"{what} = {got_t.item():.4g} is {word}")
    norm = (want * want).sum()
    if norm > 0:
        factor = ((got_t * want).sum() / norm).item()
        if abs(factor - 1) > 1e-3 and close(got_t, factor * want):
            raise Wrong(f"{what} is {factor:.4g} times what it should be: a factor is wrong")
    offset = (got_t - want).mean()
    if close(got_t - offset, want):
        raise Wrong(f"{what} is off by a constant {offset.item():+.4g}")
    gap = (got_t - want).abs()
    index = tuple(int(i) for i in torch.unravel_index(gap.argmax(), gap.shape))
    share = (~torch.isclose(got_t, want, rtol=rtol, atol=atol)).double().mean().item()
    raise Wrong(
        f"{what} is wrong in {share:.0%} of its values "
        f"(largest difference {gap.max().item():.3g}, at index {index})"
    )


def expect(condition: bool, message: str) -> None:
    """Raise Wrong(message) unless the condition holds."""
    if not condition:
        raise Wrong(message)


LN2 = math.log(2)
