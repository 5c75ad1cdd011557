"""Random draws that come out the same on every device and torch version.

- A generator may live on the CPU while the tensors live on a GPU: each draw
  is made on the generator's device and then moved. The evaluation protocol
  seeds CPU generators, so its noise, samples and figures do not depend on the
  device that computes them.
- ``categorical`` inverts the cumulative distribution at one uniform draw per
  row. Its stream is that of ``torch.rand``, which torch keeps stable;
  ``torch.multinomial`` draws differently from torch 2.7 on.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _draw(
    sample: Callable[..., Tensor],
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """`sample(shape)` made on the generator's device (else `device`), then moved."""
    device = torch.device(device)
    where = generator.device if generator is not None else device
    return sample(shape, generator=generator, device=where, dtype=dtype).to(device)


def randn(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal draws of `shape` on `device`, drawn on the generator's."""
    return _draw(torch.randn, shape, generator, device, dtype)


def rand(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniform draws in [0, 1) of `shape` on `device`, drawn on the generator's."""
    return _draw(torch.rand, shape, generator, device, dtype)


def categorical(
    probs: Tensor, generator: torch.Generator | None = None, n: int | None = None
) -> Tensor:
    """Indices drawn from each row of `probs` (B, K) with probability probs[b, k].

    Inverse CDF: with u ~ U[0, 1) and c the cumulative sums of the row, the
    index is the first k with c_k > u * c_K (rows need not sum to exactly 1).
    Categories of probability 0 are never drawn. Returns (B,) int64, one draw
    per row, or (B, n) with `n` independent draws per row.
    """
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError(f"expected probabilities of shape (B, K), got {tuple(probs.shape)}")
    if n is not None and n < 1:
        raise ValueError(f"expected n >= 1 draws per row, got {n}")
    cdf = probs.double().cumsum(dim=1)  # (B, K)
    total = cdf[:, -1:]  # (B, 1)
    if (probs < 0).any() or not (total > 0).all():
        raise ValueError("expected non-negative probabilities with a positive sum in every row")
    u = rand((len(probs), 1 if n is None else n), generator, probs.device, dtype=torch.float64)
    index = torch.searchsorted(cdf, u * total, right=True)  # (B, 1) or (B, n)
    index.clamp_(max=probs.shape[1] - 1)
    return index.squeeze(1) if n is None else index
