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


def categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One index per row of `probs` (B, K), drawn with probability probs[b, k].

    Inverse CDF: with u ~ U[0, 1) and c the cumulative sums of the row, the
    index is the first k with c_k > u * c_K (rows need not sum to exactly 1).
    Categories of probability 0 are never drawn. Returns (B,) int64.
    """
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError(f"expected probabilities of shape (B, K), got {tuple(probs.shape)}")
    cdf = probs.double().cumsum(dim=1)  # (B, K)
    u = rand((len(probs), 1), generator, probs.device, dtype=torch.float64)
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)  # (B, 1)
    return index.clamp_(max=probs.shape[1] - 1).squeeze(1)
