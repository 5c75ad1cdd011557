"""The variational autoencoder (Kingma & Welling 2013; Rezende et al. 2014).

The encoder outputs the mean and the log-variance of a diagonal Gaussian
q(z|x); a sample drawn with the reparameterisation trick is decoded into the
logits of a Bernoulli p(x|z), or, with `sigma_dec` set, into the mean
sigmoid(logits) of a Gaussian p(x|z) = N(mean, sigma_dec^2 I); the prior p(z)
is N(0, I). The objective (the ELBO) lives in `aecourse.losses`.

With ``num_classes > 0`` it is a conditional VAE (Sohn et al. 2015; the M2
model of Kingma et al. 2014 with the label always observed): a class label y
enters as a one-hot vector, concatenated to the encoder's features, q(z|x,y),
and to the latent, p(x|z,y); the prior stays N(0, I).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    # classes of the label y the model is conditioned on; 0: unconditional
    num_classes: int = 0


@dataclass
class VAEOutput:
    # (B, C, H, W) Bernoulli logits of p(x|z) (or p(x|z,y)); for a Gaussian
    # decoder the logits of its mean
    logits: Tensor
    mu: Tensor  # (B, latent_dim) mean of q(z|x) (or q(z|x,y))
    logvar: Tensor  # (B, latent_dim) log sigma^2 of q(z|x) (or q(z|x,y))
    z: Tensor  # (B, latent_dim) one reparameterised sample

    @property
    def x_hat(self) -> Tensor:
        """The decoder's mean sigmoid(logits): the reconstruction shown as an
        image."""
        return torch.sigmoid(self.logits)


class VAE(nn.Module):
    """A VAE with a Gaussian encoder and a Bernoulli (or, with
    `config.sigma_dec`, a fixed-variance Gaussian) decoder, convolutional or
    MLP; conditioned on a class label y when ``config.num_classes > 0``."""

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
        y_dim = config.num_classes  # width of the one-hot label (0: none)
        if y_dim < 0 or y_dim == 1:
            raise ValueError(
                "num_classes must be 0 (unconditional) or at least 2, "
                f"got {y_dim}"
            )
        if config.mlp:
            pixels, h = c * s * s, config.hidden_dim
            self.encoder = nn.Sequential(
                nn.Flatten(),
                nn.Linear(pixels, h),
                nn.ReLU(),
            )
            self.to_stats = nn.Linear(h + y_dim, 2 * k)
            self.decoder = nn.Sequential(
                nn.Linear(k + y_dim, h),
                nn.ReLU(),
                nn.Linear(h, pixels),
                nn.Unflatten(1, (c, s, s)),
            )
        else:
            self.encoder = ConvEncoder(c, config.channels, s)
            features = self.encoder.out_features + y_dim
            self.to_stats = nn.Linear(features, 2 * k)
            self.decoder = ConvDecoder(k + y_dim, config.channels, c, s)

    def condition(self, h: Tensor, y: Tensor | None) -> Tensor:
        """h (B, F) with the one-hot label appended, (B, F + num_classes), for
        a conditional model; h itself for an unconditional one (y None)."""
        n = self.config.num_classes
        if n == 0:
            if y is not None:
                raise ValueError(
                    "this VAE is unconditional (num_classes=0): pass no y"
                )
            return h
        if y is None:
            raise ValueError(
                f"this VAE is conditional: pass y, class labels in [0, {n})"
            )
        if y.shape != h.shape[:1] or not _is_integer(y):
            raise ValueError(
                f"expected y of shape ({len(h)},) with integer class labels, "
                f"got shape {tuple(y.shape)} of dtype {y.dtype}"
            )
        if y.numel() and not (0 <= y.min() and y.max() < n):
            raise ValueError(
                f"expected class labels in [0, {n}), got values in "
                f"[{y.min().item()}, {y.max().item()}]"
            )
        one_hot = F.one_hot(y.to(h.device).long(), n).to(h.dtype)  # (B, n)
        return torch.cat([h, one_hot], dim=1)

    def encode(
        self, x: Tensor, *, y: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in [0, 1] (and labels y (B,) for a conditional
        model) -> (mu, logvar), each (B, latent_dim).

        The network outputs log sigma^2 rather than sigma: any real number is a
        valid log-variance, so no positivity constraint is needed, and exp()
        keeps sigma > 0.
        """
        check_input(self, x)
        h = self.condition(self.encoder(x), y)  # (B, F [+ num_classes])
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) that is
        a differentiable function of (mu, logvar)."""
        eps = sampling.randn(mu.shape, generator, mu.device, mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor, *, y: Tensor | None = None) -> Tensor:
        """Latents z (B, latent_dim) (and labels y (B,) for a conditional
        model) -> logits (B, C, H, W): the Bernoulli logits, or the logits of
        the Gaussian decoder's mean."""
        check_latents(z, self.config.latent_dim, values=not self.training)
        return self.decoder(self.condition(z, y))  # p(x|z) or p(x|z,y)

    def forward(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        *,
        y: Tensor | None = None,
    ) -> VAEOutput:
        mu, logvar = self.encode(x, y=y)  # (B, latent_dim) each
        z = self.reparameterize(mu, logvar, generator)
        logits = self.decode(z, y=y)
        return VAEOutput(logits=logits, mu=mu, logvar=logvar, z=z)

    def reconstruct(self, x: Tensor, *, y: Tensor | None = None) -> Tensor:
        """Images (B, C, H, W) -> the decoder's means sigmoid(decode(mu)), no
        sampling."""
        mu, _ = self.encode(x, y=y)
        return self.decode_images(mu, y=y)

    def decode_images(self, z: Tensor, *, y: Tensor | None = None) -> Tensor:
        """Latents z (B, latent_dim) -> the decoder's means sigmoid(logits)
        (B, C, H, W)."""
        return torch.sigmoid(self.decode(z, y=y))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        y: Tensor | None = None,
    ) -> Tensor:
        """n images (n, C, H, W) from the model: z ~ p(z) = N(0, I), shown as
        the decoder's means (no pixel noise); a conditional model draws from
        p(x|z,y) for the labels y (n,)."""
        if n <= 0:
            raise ValueError(
                f"n must be a positive number of samples, got {n}"
            )
        device = next(self.parameters()).device
        z = sampling.randn((n, self.config.latent_dim), generator, device)
        return self.decode_images(z, y=y)


def _is_integer(y: Tensor) -> bool:
    """Whether y holds integers (not floats, complex numbers or booleans)."""
    return not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
