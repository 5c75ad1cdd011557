"""Gradient estimators for a discrete choice (chapter 5).

A choice k among K options is drawn from Cat(pi), pi = softmax(logits), and a
loss f is evaluated at its one-hot vector y. Each function below returns n
one-sample estimates of the gradient of E[f(y)] with respect to the logits,
one row per draw, so that their mean and spread can be compared with the
exact gradient (`exact_gradient`).

`f` maps a batch of vectors y, shape (n, K), to losses (n,). The estimators
that differentiate through y (Gumbel-softmax, straight-through) evaluate f on
relaxed vectors inside the simplex too, so f must be differentiable there.

Every draw uses Gumbel noise from `gumbel(...)`: with the same generator
seed, all the estimators see the same choices k (common random numbers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

Loss = Callable[[Tensor], Tensor]


def gumbel(
    n: int, logits: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """(n, K) draws of standard Gumbel noise -log(-log u), u ~ U(0, 1), in the
    dtype of `logits` (K,), drawn on the CPU generator's device."""
    u = torch.rand(
        (n, logits.numel()), generator=generator, dtype=logits.dtype
    ).to(logits.device)
    tiny = torch.finfo(logits.dtype).tiny
    return -torch.log(-torch.log(u.clamp_min(tiny)))


def _check(logits: Tensor, n: int) -> None:
    if logits.dim() != 1 or logits.numel() < 2:
        raise ValueError(
            "logits must have shape (K,) with K >= 2, got "
            f"{tuple(logits.shape)}"
        )
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def _copies(logits: Tensor, n: int) -> Tensor:
    """n leaf copies of the logits (n, K): autograd then returns one gradient
    per draw, row by row."""
    return logits.detach().expand(n, -1).clone().requires_grad_(True)


def _per_draw_gradient(f: Loss, y: Tensor, copies: Tensor) -> Tensor:
    losses = f(y)
    if losses.shape != (len(y),):
        raise ValueError(
            f"f must map (n, K) to (n,) losses, got {tuple(losses.shape)}"
        )
    (grad,) = torch.autograd.grad(losses.sum(), copies)
    return grad  # (n, K)


def exact_gradient(logits: Tensor, f: Loss) -> Tensor:
    """The gradient of E[f(y)] = sum_j pi_j f(onehot_j) with respect to the
    logits (K,), by enumerating the K choices: pi_j (f_j - E[f])."""
    _check(logits, 1)
    eye = torch.eye(logits.numel(), dtype=logits.dtype, device=logits.device)
    with torch.no_grad():
        values = f(eye)  # (K,): f at every one-hot vector
        pi = logits.softmax(-1)
        return pi * (values - (pi * values).sum())


def score_function(
    logits: Tensor,
    f: Loss,
    n: int,
    generator: torch.Generator | None = None,
    baseline: float = 0.0,
) -> Tensor:
    """REINFORCE: (f(y) - baseline) * grad log pi_k, for n draws k ~ Cat(pi).

    Unbiased for any constant baseline. Returns (n, K)."""
    _check(logits, n)
    copies = _copies(logits, n)
    # the Gumbel-max trick: k ~ Cat(softmax(logits))
    k = (logits.detach() + gumbel(n, logits, generator)).argmax(-1)  # (n,)
    y = F.one_hot(k, logits.numel()).to(logits.dtype)  # (n, K)
    with torch.no_grad():
        weight = f(y) - baseline  # (n,): values only, no gradient of f
    log_pi = copies.log_softmax(-1).gather(1, k[:, None]).squeeze(1)
    (grad,) = torch.autograd.grad((weight * log_pi).sum(), copies)
    return grad


def gumbel_softmax(
    logits: Tensor,
    f: Loss,
    n: int,
    tau: float,
    generator: torch.Generator | None = None,
    hard: bool = False,
) -> Tensor:
    """Gradients of f(y_tau), y_tau = softmax((logits + g) / tau), g Gumbel
    (Jang et al. 2017; Maddison et al. 2017). With `hard`, the forward pass
    uses the one-hot vector of argmax(y_tau) and the backward pass y_tau (the
    straight-through Gumbel-softmax). Biased for every tau > 0. (n, K)."""
    _check(logits, n)
    if not tau > 0:
        raise ValueError(f"the temperature tau must be > 0, got {tau}")
    copies = _copies(logits, n)
    soft = ((copies + gumbel(n, logits, generator)) / tau).softmax(-1)
    y = soft
    if hard:
        one_hot = F.one_hot(soft.argmax(-1), logits.numel()).to(soft.dtype)
        y = one_hot + soft - soft.detach()  # forward one_hot, backward soft
    return _per_draw_gradient(f, y, copies)


def straight_through(
    logits: Tensor,
    f: Loss,
    n: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Straight-through (Bengio et al. 2013): the forward pass uses the
    one-hot vector of k ~ Cat(pi), the backward pass pretends y was pi, so
    the estimate is J_pi^T grad f(y). Biased unless f is linear. (n, K)."""
    _check(logits, n)
    copies = _copies(logits, n)
    k = (logits.detach() + gumbel(n, logits, generator)).argmax(-1)  # (n,)
    pi = copies.softmax(-1)  # (n, K)
    one_hot = F.one_hot(k, logits.numel()).to(logits.dtype)
    y = one_hot + pi - pi.detach()  # forward one_hot, backward pi
    return _per_draw_gradient(f, y, copies)
