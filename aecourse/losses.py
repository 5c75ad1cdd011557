"""Every objective of the course, with its terms named and its equation cited.

Training objectives share one signature,
``loss_fn(model, batch, generator) -> Loss``, so that `aecourse.train.fit`
runs every model with the same loop. ``batch`` is ``(x, y)`` for images and
``(indices,)`` for the prior; ``generator`` drives any noise the loss draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vjp, vmap

from aecourse.data import binarize
from aecourse.models import DAE, VAE, VQVAE, Classifier, Prior
from aecourse.models.ae import AE
from aecourse.models.vae import VAEOutput

Batch = tuple[Tensor, ...]


@dataclass
class Loss:
    total: Tensor  # scalar to minimise
    terms: dict[str, Tensor]  # named scalar parts, for logging


# --- primitives --------------------------------------------------------------


def mse(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared error over every pixel: the Gaussian reconstruction term up
    to constants."""
    if x_hat.shape != x.shape:
        raise ValueError(
            f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} "
            f"and {tuple(x.shape)}"
        )
    return F.mse_loss(x_hat, x)


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log p(x|z) for a Bernoulli decoder, summed over pixels, in nats: (B,).

    -sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))], computed
    from the logits l for numerical stability (eq. 11 of Kingma & Welling 2013,
    appendix C.1).
    """
    if logits.shape != x.shape:
        raise ValueError(
            "logits and x must have the same shape, got "
            f"{tuple(logits.shape)} and {tuple(x.shape)}"
        )
    nll = F.binary_cross_entropy_with_logits(
        logits.float(), x.float(), reduction="none"
    )
    return nll.flatten(1).sum(1)


def jacobian(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The Jacobian of a map f, batch in, batch out, at each of the B inputs x:
    (B, *out, *in) for x (B, *in) and f(x) (B, *out).

    f must treat the images of a batch independently (no batch norm in
    training mode), so that each image's Jacobian is its own. Computed with
    torch.func: one vector-Jacobian product per output unit, vectorised over
    the units with vmap, each for the whole batch at once. Differentiable:
    a loss built on it trains the parameters of f.
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError(
            "x must be a floating-point batch (B, ...) of inputs, got "
            + (f"shape {tuple(x.shape)}, dtype {x.dtype}"
               if isinstance(x, Tensor) else type(x).__name__)
        )

    out, pullback = vjp(f, x)  # f(x): (B, *out)
    k = out[0].numel()  # outputs per input
    # the k unit cotangents, each for every input at once: (k, B, *out)
    basis = torch.eye(k, dtype=out.dtype, device=out.device)
    basis = basis.reshape(k, 1, *out.shape[1:])
    basis = basis.expand(-1, len(x), *out.shape[1:])
    (rows,) = vmap(pullback)(basis)  # row j of every Jacobian: (k, B, *in)
    return rows.movedim(0, 1).reshape(*out.shape, *x.shape[1:])


def contractive_penalty(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """||J_f(x)||_F^2, the squared Frobenius norm of the Jacobian of f at each
    input: (B,). With f the encoder, the penalty of the contractive
    autoencoder (Rifai et al. 2011); with f = d o e, the
    reconstruction's, which small Gaussian noise adds to a DAE's loss
    (Alain & Bengio 2014)."""
    return jacobian(f, x).flatten(1).pow(2).sum(1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) in closed form, summed over
    dimensions: (B,).

    -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)
    (appendix B of Kingma & Welling 2013)
    """
    if mu.shape != logvar.shape:
        shapes = f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        raise ValueError(
            f"mu and logvar must have the same shape, got {shapes}"
        )
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def elbo(out: VAEOutput, x: Tensor) -> Tensor:
    """The evidence lower bound
    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)), per image, estimated
    with the single sample in `out` (eq. 10 of Kingma & Welling 2013): (B,).
    """
    return -bernoulli_nll(out.logits, x) - gaussian_kl(out.mu, out.logvar)


# --- training objectives -----------------------------------------------------


def ae_loss(
    model: AE, batch: Batch, generator: torch.Generator | None = None
) -> Loss:
    """Reconstruction error of the plain autoencoder: ||x - d(e(x))||^2."""
    x = batch[0]
    recon = mse(model(x).x_hat, x)
    return Loss(recon, {"recon": recon})


def dae_loss(
    model: DAE, batch: Batch, generator: torch.Generator | None = None
) -> Loss:
    """Reconstruct the clean x from a corrupted copy x~ (Vincent et al. 2008):
    ||x - d(e(x~))||^2."""
    x = batch[0]
    # the network never sees the clean image
    x_tilde = model.corrupt(x, generator)
    recon = mse(model(x_tilde).x_hat, x)  # ... but is scored against it
    return Loss(recon, {"recon": recon})


def cae_loss(
    model: AE,
    batch: Batch,
    generator: torch.Generator | None = None,
    lam: float = 1.0,
) -> Loss:
    """The contractive autoencoder (Rifai et al. 2011): the
    reconstruction error plus lam times the squared Frobenius norm of the
    encoder's Jacobian, averaged over the batch:
    ||x - d(e(x))||^2 / P + lam ||J_e(x)||_F^2."""
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    x = batch[0]
    recon = mse(model(x).x_hat, x)
    # (B,) one penalty per image: model.encoder, without encode's checks,
    # which read values (torch.func cannot trace them)
    jac = contractive_penalty(model.encoder, x).mean()
    return Loss(recon + lam * jac, {"recon": recon, "jacobian": jac})


def vae_loss(
    model: VAE,
    batch: Batch,
    generator: torch.Generator | None = None,
    beta: float = 1.0,
) -> Loss:
    """Negative ELBO in nats per image on dynamically binarised x; beta != 1 is
    the beta-VAE of Higgins et al. 2017 (it weights the KL term)."""
    # a fresh binary image each time it is seen
    x = binarize(batch[0], generator)
    out = model(x, generator)
    recon = bernoulli_nll(out.logits, x).mean()
    kl = gaussian_kl(out.mu, out.logvar).mean()
    return Loss(recon + beta * kl, {"recon": recon, "kl": kl})


def free_bits_kl(mu: Tensor, logvar: Tensor, floor: float) -> Tensor:
    """The KL term with "free bits" (Kingma et al. 2016, eq. 15): the KL of
    each latent dimension, averaged over the batch, counts as at least
    `floor` nats, so a dimension below the floor gets no KL gradient.

        sum_j max(floor, mean_b KL_j(b)),   mu, logvar: (B, latent_dim)

    Returns a scalar, comparable with ``gaussian_kl(mu, logvar).mean()``
    (which it equals when every dimension is above the floor).
    """
    if floor < 0:
        raise ValueError(f"floor must be >= 0 nats, got {floor}")
    if mu.shape != logvar.shape or mu.ndim != 2:
        shapes = f"{tuple(mu.shape)} and {tuple(logvar.shape)}"
        raise ValueError(
            f"expected mu and logvar of the same shape (B, m), got {shapes}"
        )
    mu, logvar = mu.float(), logvar.float()
    # (m,) KL of each dimension, averaged over the batch
    kl_dims = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean(dim=0)
    return kl_dims.clamp(min=floor).sum()


def free_bits_vae_loss(
    model: VAE,
    batch: Batch,
    generator: torch.Generator | None = None,
    beta: float = 1.0,
    floor: float = 0.5,
) -> Loss:
    """`vae_loss` with the KL term replaced by `free_bits_kl` (a floor of
    `floor` nats on each dimension). The logged "kl" is the plain KL."""
    x = binarize(batch[0], generator)
    out = model(x, generator)
    recon = bernoulli_nll(out.logits, x).mean()
    kl = gaussian_kl(out.mu, out.logvar).mean()
    kl_floored = free_bits_kl(out.mu, out.logvar, floor)
    return Loss(recon + beta * kl_floored, {"recon": recon, "kl": kl})


@dataclass
class KLWarmup:
    """`vae_loss` whose beta rises linearly from 0 to `beta` over the first
    `fraction` of the training steps, then stays (KL warm-up or annealing:
    Bowman et al. 2016, Sonderby et al. 2016).

    `aecourse.train.fit` sets `progress` (the fraction of steps done) before
    each step, so the schedule is a function of the step alone.
    """

    beta: float = 1.0  # the KL weight at the end of the warm-up
    fraction: float = 0.5  # of the training steps spent warming up
    progress: float = field(default=0.0, compare=False)  # set by fit

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(
                f"fraction must be in (0, 1], got {self.fraction}"
            )

    def beta_now(self) -> float:
        """The KL weight at the current `progress`."""
        return self.beta * min(1.0, self.progress / self.fraction)

    def __call__(
        self,
        model: VAE,
        batch: Batch,
        generator: torch.Generator | None = None,
    ) -> Loss:
        beta = self.beta_now()
        loss = vae_loss(model, batch, generator, beta=beta)
        loss.terms["beta"] = torch.tensor(beta, device=loss.total.device)
        return loss


def vqvae_loss(
    model: VQVAE, batch: Batch, generator: torch.Generator | None = None
) -> Loss:
    """eq. 3 of van den Oord et al. 2017 with a Gaussian decoder (MSE
    reconstruction):
    ||x - x_hat||^2 + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2."""
    x = batch[0]
    out = model(x)
    recon = mse(out.x_hat, x)
    total = recon + out.codebook_loss + model.config.beta * out.commitment_loss
    return Loss(
        total,
        {
            "recon": recon,
            "codebook": out.codebook_loss,
            "commitment": out.commitment_loss,
            "perplexity": out.perplexity,
        },
    )


def prior_loss(
    model: Prior, batch: Batch, generator: torch.Generator | None = None
) -> Loss:
    """Negative log-likelihood of the code grids, in nats per code (and bits
    per code)."""
    indices = batch[0]
    nll = F.cross_entropy(model(indices), indices)  # mean over cells and grids
    return Loss(nll, {"nll": nll, "bits": nll / math.log(2)})


def classifier_loss(
    model: Classifier, batch: Batch, generator: torch.Generator | None = None
) -> Loss:
    """Cross-entropy of the class labels, with accuracy for the log."""
    x, y = batch[0], batch[1]
    logits = model(x)
    ce = F.cross_entropy(logits, y)
    accuracy = (logits.argmax(1) == y).float().mean()
    return Loss(ce, {"ce": ce, "accuracy": accuracy})
