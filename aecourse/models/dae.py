"""The denoising autoencoder (Vincent et al. 2008): corrupt the input,
reconstruct the clean one.

The model is the AE unchanged; what differs is the training pair. The
corruption functions below are the two of the course: zeroing a random fraction
of the pixels (the masking noise of Vincent et al. 2008) and additive Gaussian
noise clipped back to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from aecourse import sampling
from aecourse.data import check_images
from aecourse.models.ae import AE, AEConfig


def _check_level(name: str, value: float | Tensor, high: float) -> None:
    v = torch.as_tensor(value)
    if not torch.isfinite(v).all() or (v < 0).any() or (v > high).any():
        raise ValueError(f"{name} must lie in [0, {high}], got {value}")


def gaussian_noise(
    x: Tensor, sigma: float | Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """x + sigma * eps with eps ~ N(0, I), clipped to [0, 1]; sigma is a scalar
    or one level per image, (B, 1, 1, 1)."""
    check_images(x)
    _check_level("sigma", sigma, float("inf"))
    return _add_noise(x, sigma, generator)


def mask_pixels(
    x: Tensor, p: float | Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Zero each pixel with probability p (scalar or (B, 1, 1, 1)),
    independently."""
    check_images(x)
    _check_level("p", p, 1.0)
    return _mask(x, p, generator)


# Unchecked versions for the training loop, whose images `data.load` checked
# once (a value check reads the tensor back to the host, a sync per batch on a
# GPU).
def _add_noise(
    x: Tensor, sigma: float | Tensor, generator: torch.Generator | None
) -> Tensor:
    eps = sampling.randn(x.shape, generator, x.device, x.dtype)
    return (x + sigma * eps).clamp(0.0, 1.0)


def _mask(
    x: Tensor, p: float | Tensor, generator: torch.Generator | None
) -> Tensor:
    keep = sampling.rand(x.shape, generator, x.device) >= p
    return x * keep


@dataclass
class DAEConfig(AEConfig):
    # Gaussian noise levels drawn uniformly from [0, sigma_max]
    sigma_max: float = 0.6
    # masking fractions drawn uniformly from [0, mask_max]
    mask_max: float = 0.7


class DAE(AE):
    """An AE trained to undo `corrupt`: at test time it denoises whatever it
    is given."""

    config_class = DAEConfig

    def corrupt(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The training corruption: half the images get Gaussian noise, half
        masking, each at a level drawn per image: one model serves every level
        of the chapter."""
        b = len(x)
        shape = (b, 1, 1, 1)
        u = sampling.rand((3, *shape), generator, x.device)
        sigma = u[0] * self.config.sigma_max  # (B, 1, 1, 1)
        p = u[1] * self.config.mask_max  # (B, 1, 1, 1)
        use_noise = u[2] < 0.5
        noisy = _add_noise(x, sigma, generator)
        masked = _mask(x, p, generator)
        return torch.where(use_noise, noisy, masked)
