"""The variational autoencoder (Kingma & Welling 2013; Rezende et al. 2014).

The encoder outputs the mean and the log-variance of a diagonal Gaussian
q(z|x); a sample drawn with the reparameterisation trick is decoded into the
logits of a Bernoulli p(x|z), or, with `sigma_dec` set, into the mean
sigmoid(logits) of a Gaussian p(x|z) = N(mean, sigma_dec^2 I); the prior p(z)
is N(0, I). The objective (the ELBO) lives in `aecourse.losses`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aecourse import sampling
from aecourse.models.conv import (
    ConvDecoder,
    ConvEncoder,
    check_input,
    check_latents,
)


@dataclass
class VAEConfig:
    in_channels: int = 1  # 1 for Fashion-MNIST and MNIST, 3 for CIFAR-10
    image_size: int = 28  # side of the square input image
    latent_dim: int = 16  # size of z
    channels: tuple[int, ...] = (32, 64)  # conv widths (ignored when mlp=True)
    # the classic fully connected VAE (784-400-20 with latent_dim=20)
    mlp: bool = False
    # width of the MLP's hidden layer (only when mlp=True)
    hidden_dim: int = 400
    # None: a Bernoulli decoder, trained on binarised images; a number: the
    # fixed standard deviation of a Gaussian decoder N(x_hat, sigma_dec^2 I),
    # trained on grey images
    sigma_dec: float | None = None


@dataclass
class VAEOutput:
    # (B, C, H, W) Bernoulli logits of p(x|z); for a Gaussian decoder the
    # logits of its mean
    logits: Tensor
    mu: Tensor  # (B, latent_dim) mean of q(z|x)
    logvar: Tensor  # (B, latent_dim) log sigma^2 of q(z|x)
    z: Tensor  # (B, latent_dim) one reparameterised sample

    @property
    def x_hat(self) -> Tensor:
        """The decoder's mean sigmoid(logits): the reconstruction shown as an
        image."""
        return torch.sigmoid(self.logits)


class VAE(nn.Module):
    """A VAE with a Gaussian encoder and a Bernoulli (or, with
    `config.sigma_dec`, a fixed-variance Gaussian) decoder, convolutional or
    MLP."""

    config_class = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        c, s, k = config.in_channels, config.image_size, config.latent_dim
        if k <= 0:
            raise ValueError(f"latent_dim must be positive, got {k}")
        sigma_dec = config.sigma_dec
        if sigma_dec is not None and not (
            isinstance(sigma_dec, (int, float)) and 0 < sigma_dec < math.inf
        ):
            raise ValueError(
                "sigma_dec must be None (Bernoulli decoder) or a positive "
                f"finite number, got {sigma_dec!r}"
            )
        if config.mlp:
            pixels, h = c * s * s, config.hidden_dim
            self.encoder = nn.Sequential(
                nn.Flatten(),
                nn.Linear(pixels, h),
                nn.ReLU(),
            )
            self.to_stats = nn.Linear(h, 2 * k)
            self.decoder = nn.Sequential(
                nn.Linear(k, h),
                nn.ReLU(),
                nn.Linear(h, pixels),
                nn.Unflatten(1, (c, s, s)),
            )
        else:
            self.encoder = ConvEncoder(c, config.channels, s)
            self.to_stats = nn.Linear(self.encoder.out_features, 2 * k)
            self.decoder = ConvDecoder(k, config.channels, c, s)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in [0, 1] -> (mu, logvar), each (B, latent_dim).

        The network outputs log sigma^2 rather than sigma: any real number is a
        valid log-variance, so no positivity constraint is needed, and exp()
        keeps sigma > 0.
        """
        check_input(self, x)
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that is
        a differentiable function of (mu, logvar)."""
        eps = sampling.randn(mu.shape, generator, mu.device, mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor) -> Tensor:
        """Latents z (B, latent_dim) -> logits (B, C, H, W): the Bernoulli
        logits, or the logits of the Gaussian decoder's mean."""
        check_latents(z, self.config.latent_dim, values=not self.training)
        return self.decoder(z)

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> VAEOutput:
        mu, logvar = self.encode(x)  # (B, latent_dim) each
        z = self.reparameterize(mu, logvar, generator)
        return VAEOutput(logits=self.decode(z), mu=mu, logvar=logvar, z=z)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the decoder's means sigmoid(decode(mu)), no
        sampling."""
        mu, _ = self.encode(x)
        return self.decode_images(mu)

    def decode_images(self, z: Tensor) -> Tensor:
        """Latents z (B, latent_dim) -> the decoder's means sigmoid(logits)
        (B, C, H, W)."""
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """n images (n, C, H, W) from the model: z ~ p(z) = N(0, I), shown as
        the decoder's means (no pixel noise)."""
        if n <= 0:
            raise ValueError(
                f"n must be a positive number of samples, got {n}"
            )
        device = next(self.parameters()).device
        z = sampling.randn((n, self.config.latent_dim), generator, device)
        return self.decode_images(z)
