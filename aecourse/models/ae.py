"""The autoencoder: z = e(x), x_hat = d(z) = d(e(x)), trained end to end on one
loss."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from aecourse.models.conv import ConvDecoder, ConvEncoder
from aecourse.models.conv import check_input, check_latents


@dataclass
class AEConfig:
    in_channels: int = 1  # 1 for Fashion-MNIST and MNIST, 3 for CIFAR-10
    image_size: int = 28  # side of the square input image
    latent_dim: int = 16  # size of the bottleneck z
    # conv widths; the first two halve the image
    channels: tuple[int, ...] = (32, 64)
    # one linear map each way, no nonlinearity: the PCA comparison
    linear: bool = False
    # > 0: an MLP instead, one hidden layer of this width each way and a
    # sigmoid code in (0, 1) (the contractive AE of chapter 3 and its control)
    hidden_dim: int = 0


@dataclass
class AEOutput:
    x_hat: Tensor  # (B, C, H, W) reconstruction
    z: Tensor  # (B, latent_dim) code


class AE(nn.Module):
    """A deterministic autoencoder: convolutional, (``linear=True``) linear or
    (``hidden_dim > 0``) a one-hidden-layer MLP."""

    config_class = AEConfig

    def __init__(self, config: AEConfig) -> None:
        super().__init__()
        self.config = config
        c, s = config.in_channels, config.image_size
        if config.latent_dim <= 0:
            raise ValueError(
                f"latent_dim must be positive, got {config.latent_dim}"
            )
        if config.linear and config.hidden_dim:
            raise ValueError("choose linear=True or hidden_dim > 0, not both")
        if config.hidden_dim < 0:
            raise ValueError(
                f"hidden_dim must be >= 0, got {config.hidden_dim}"
            )
        if config.hidden_dim:
            pixels, h = c * s * s, config.hidden_dim
            self.encoder = nn.Sequential(
                nn.Flatten(),
                nn.Linear(pixels, h),
                nn.SiLU(),
                nn.Linear(h, config.latent_dim),
                # a bounded code in (0, 1), like Rifai et al.'s (2011) encoder
                nn.Sigmoid(),
            )
            self.decoder = nn.Sequential(
                nn.Linear(config.latent_dim, h),
                nn.SiLU(),
                nn.Linear(h, pixels),
                nn.Sigmoid(),
                nn.Unflatten(1, (c, s, s)),
            )
        elif config.linear:
            pixels = c * s * s
            self.encoder = nn.Sequential(
                nn.Flatten(),
                nn.Linear(pixels, config.latent_dim),
            )
            self.decoder = nn.Sequential(
                nn.Linear(config.latent_dim, pixels),
                nn.Unflatten(1, (c, s, s)),
            )
        else:
            trunk = ConvEncoder(c, config.channels, s)
            self.encoder = nn.Sequential(
                trunk,
                nn.Linear(trunk.out_features, config.latent_dim),
            )
            self.decoder = nn.Sequential(
                ConvDecoder(config.latent_dim, config.channels, c, s),
                nn.Sigmoid(),
            )

    def encode(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] -> codes z (B, latent_dim)."""
        check_input(self, x)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Codes z (B, latent_dim) -> images x_hat (B, C, H, W)."""
        check_latents(z, self.config.latent_dim, values=not self.training)
        return self.decoder(z)

    def forward(self, x: Tensor) -> AEOutput:
        z = self.encode(x)  # (B, latent_dim)
        return AEOutput(x_hat=self.decode(z), z=z)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> x_hat (B, C, H, W), as the model outputs
        it."""
        return self.decode(self.encode(x))

    def decode_images(self, z: Tensor) -> Tensor:
        """Codes z (B, latent_dim) -> images in [0, 1] (the linear AE's
        clamped)."""
        return self.decode(z).clamp(0.0, 1.0)
