"""Convolutional building blocks shared by the AE, VAE and classifier, and the
input checks.

The encoder halves the image twice with strided 4x4 convolutions
(28 -> 14 -> 7) and then adds 3x3 convolutions at that resolution; the decoder
mirrors it. Keeping one copy here means the AE and the VAE differ only in what
sits at the bottleneck.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aecourse.data import check_images

# strided convolutions: 28x28 -> 7x7 (a 4x reduction per side)
NUM_DOWNSAMPLES = 2


def feature_grid(image_size: int) -> int:
    """Side of the feature map after the encoder's strided convolutions."""
    factor = 2**NUM_DOWNSAMPLES
    if image_size % factor:
        raise ValueError(
            f"image_size must be divisible by {factor}, got {image_size}"
        )
    return image_size // factor


def _check_channels(channels: tuple[int, ...]) -> None:
    if len(channels) < NUM_DOWNSAMPLES or any(c <= 0 for c in channels):
        raise ValueError(
            f"channels must list at least {NUM_DOWNSAMPLES} positive widths, "
            f"got {channels}"
        )


class ConvEncoder(nn.Module):
    """Images (B, C, H, W) -> flat features
    (B, channels[-1] * (H/4) * (W/4))."""

    def __init__(
        self, in_channels: int, channels: tuple[int, ...], image_size: int
    ) -> None:
        super().__init__()
        _check_channels(channels)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(channels):
            if i < NUM_DOWNSAMPLES:  # halve the resolution
                layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
            else:  # refine at the bottom resolution
                layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            layers.append(nn.SiLU())
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_features = channels[-1] * feature_grid(image_size) ** 2

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, channels[-1] * 7 * 7)


class ConvDecoder(nn.Module):
    """Latents (B, latent_dim) -> logits (B, C, H, W): the encoder run
    backwards."""

    def __init__(
        self,
        latent_dim: int,
        channels: tuple[int, ...],
        out_channels: int,
        image_size: int,
    ) -> None:
        super().__init__()
        _check_channels(channels)
        grid = feature_grid(image_size)
        widths = channels[::-1]  # e.g. (128, 64, 32)
        features = widths[0] * grid * grid
        self.project = nn.Sequential(
            nn.Linear(latent_dim, features),
            nn.SiLU(),
        )
        self.unflatten = nn.Unflatten(1, (widths[0], grid, grid))
        layers: list[nn.Module] = []
        num_refine = len(widths) - NUM_DOWNSAMPLES
        for i in range(len(widths)):
            c_in = widths[i]
            c_out = widths[i + 1] if i + 1 < len(widths) else out_channels
            last = i + 1 == len(widths)
            if i < num_refine:
                layer = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
            else:  # double the resolution
                layer = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
            layers.append(layer)
            if not last:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.unflatten(self.project(z))  # (B, channels[-1], 7, 7)
        return self.net(h)  # (B, C, 28, 28) logits


def check_latents(z: Tensor, latent_dim: int, *, values: bool = True) -> None:
    """Raise ValueError unless z is a finite float tensor of shape
    (B, latent_dim)."""
    if not isinstance(z, Tensor):
        raise ValueError(
            f"z must be a torch.Tensor of shape (B, {latent_dim}), "
            f"got {type(z).__name__}"
        )
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise ValueError(
            f"z must have shape (B, {latent_dim}), got {tuple(z.shape)}"
        )
    if not z.is_floating_point():
        raise ValueError(
            f"z must be a floating-point tensor, got dtype {z.dtype}"
        )
    if values and not torch.isfinite(z).all():
        raise ValueError("z contains NaN or infinite values")


def check_input(model: nn.Module, x: Tensor) -> None:
    """Raise ValueError unless x is images (B, C, H, W) in [0, 1] for
    model.config.

    In training mode the values are not read (a device sync per batch):
    `data.load` checked the training images once, when it loaded them.
    """
    config = model.config
    size, channels = config.image_size, config.in_channels
    check_images(x, channels=channels, size=size, values=not model.training)
