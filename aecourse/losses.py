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
from aecourse.models import DAE, SAE, VAE, VQVAE, Classifier, Prior, aux_code
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


def gaussian_nll(x_hat: Tensor, x: Tensor, sigma_dec: float) -> Tensor:
    """-log N(x; x_hat, sigma_dec^2 I) for a Gaussian decoder with a fixed
    standard deviation, summed over the P pixels, in nats: (B,).

        ||x - x_hat||^2 / (2 sigma_dec^2) + P/2 log(2 pi sigma_dec^2)

    The constant makes it a normalised density on R^P, so that models with
    different sigma_dec can be compared; it has no gradient. Up to it, this
    is sum-MSE / (2 sigma_dec^2): "sum-MSE + beta KL" is a Gaussian VAE with
    beta = 2 sigma_dec^2 (eq. vae-gauss-beta of chapter 4).
    """
    if x_hat.shape != x.shape:
        raise ValueError(
            f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} "
            f"and {tuple(x.shape)}"
        )
    if not sigma_dec > 0:
        raise ValueError(f"sigma_dec must be positive, got {sigma_dec}")
    squared = (x.float() - x_hat.float()).pow(2).flatten(1)  # (B, P)
    pixels = squared.shape[1]
    constant = 0.5 * pixels * math.log(2 * math.pi * sigma_dec**2)
    return squared.sum(1) / (2 * sigma_dec**2) + constant


def decoder_nll(model: VAE, out: VAEOutput, x: Tensor) -> Tensor:
    """-log p(x|z) of `model`'s decoder for the sample in `out`, in nats:
    (B,). Bernoulli (`bernoulli_nll`) or, when `model.config.sigma_dec` is
    set, Gaussian (`gaussian_nll`)."""
    sigma_dec = model.config.sigma_dec
    if sigma_dec is None:
        return bernoulli_nll(out.logits, x)
    return gaussian_nll(out.x_hat, x, sigma_dec)


def vae_inputs(
    model: VAE, x: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """What a VAE is trained on: a fresh binary draw of the grey images x
    for a Bernoulli decoder (dynamic binarisation), x itself for a Gaussian
    one."""
    if model.config.sigma_dec is None:
        return binarize(x, generator)
    return x


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
    if out.ndim < 1 or len(out) != len(x):
        raise ValueError(
            f"f must map a batch of {len(x)} inputs to a batch of {len(x)} "
            f"outputs, got shape {tuple(out.shape)}"
        )
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
    with the single sample in `out` (eq. 10 of Kingma & Welling 2013), for a
    Bernoulli decoder (`decoder_nll` covers both decoders): (B,).
    """
    return -bernoulli_nll(out.logits, x) - gaussian_kl(out.mu, out.logvar)


def labels(model: VAE, batch: Batch) -> Tensor | None:
    """The batch's class labels y (B,) when `model` is a conditional VAE
    (``config.num_classes > 0``), else None."""
    if not model.config.num_classes:
        return None
    if len(batch) < 2:
        raise ValueError(
            "a conditional VAE trains on (x, y) batches; got a batch of "
            f"{len(batch)} tensor(s) without labels"
        )
    return batch[1]


def l1_penalty(z: Tensor) -> Tensor:
    """The L1 norm of each code, sum_j |z_j|, for codes z (B, F): (B,). The sparsity
    penalty of a sparse autoencoder (Olshausen & Field 1996; Cunningham et al.
    2023)."""
    if z.ndim != 2:
        raise ValueError(f"expected codes of shape (B, F), got {tuple(z.shape)}")
    return z.abs().sum(dim=1)


def auxk_error(model: SAE, h: Tensor, pre: Tensor, h_hat: Tensor, k_aux: int) -> Tensor:
    """Gao et al.'s (2024, A.2) AuxK term per input, ||e - e_hat||^2 (B,): the
    residual e = h - h_hat (held fixed, no gradient) modelled by the top-k_aux dead
    features alone, e_hat = W_dec aux_code(pre) (no b_dec: e has none). Zero when no
    feature is dead (model.dead_mask()). A plain squared error, as the paper writes
    it and as sae_loss's reconstruction term; their released code divides each of
    the two terms by its target's variance instead."""
    dead = model.dead_mask()
    if not dead.any():
        return h.new_zeros(h.shape[0])
    e = (h - h_hat).detach()  # (B, n): only the dead features learn from it
    e_hat = aux_code(pre, dead, k_aux) @ model.dictionary.T  # (B, n)
    return (e - e_hat).pow(2).sum(dim=1)


# --- training objectives -----------------------------------------------------


def ae_loss(
    model: AE, batch: Batch, generator: torch.Generator | None = None
) -> Loss:
    """Reconstruction error of the plain autoencoder: the mean over the batch
    and the pixels of (x - d(e(x)))^2, i.e. ||x - d(e(x))||^2 / P averaged
    over the images."""
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
    if not lam >= 0:  # also rejects NaN
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
    """Negative ELBO in nats per image: on dynamically binarised x for a
    Bernoulli decoder, on grey x for a Gaussian one (`decoder_nll`); beta != 1
    is the beta-VAE of Higgins et al. 2017 (it weights the KL term). For a
    conditional VAE, the ELBO of log p(x|y) (eq. 4 of Sohn et al. 2015), y
    being the batch's labels."""
    # a fresh binary image each time it is seen (Bernoulli decoder)
    x = vae_inputs(model, batch[0], generator)
    out = model(x, generator, y=labels(model, batch))
    recon = decoder_nll(model, out, x).mean()
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
    x = vae_inputs(model, batch[0], generator)
    out = model(x, generator, y=labels(model, batch))
    recon = decoder_nll(model, out, x).mean()
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
    reconstruction), each term a mean, not a sum:
    mean (x - x_hat)^2 + mean (sg[z_e] - e)^2 + beta mean (z_e - sg[e])^2,
    over the pixels, then over the grid and the D dimensions."""
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


def sae_loss(
    model: SAE,
    batch: Batch,
    generator: torch.Generator | None = None,
    alpha: float = 0.0,
    alpha_aux: float = 0.0,
    k_aux: int | None = None,
) -> Loss:
    """A sparse autoencoder's objective on activations h (B, n), per input:
    ||h - h_hat||^2 + alpha ||z||_1 (Cunningham et al. 2023, with the
    dictionary's columns of unit norm) + alpha_aux ||e - e_hat||^2, the AuxK term
    of Gao et al. 2024 (`auxk_error`; needs SAEConfig.dead_after). alpha = 0 for a
    top-t code, which is sparse by construction; "l0" (features active per input)
    and, with the AuxK term, "aux" and "dead" (the fraction of features counted
    dead) are logged."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if alpha_aux < 0:
        raise ValueError(f"alpha_aux must be >= 0, got {alpha_aux}")
    if alpha_aux > 0 and (k_aux is None or model.config.dead_after is None):
        raise ValueError(
            "the AuxK term (alpha_aux > 0) needs k_aux, the number of dead features "
            "it uses, and an SAE that counts them (SAEConfig.dead_after); got "
            f"k_aux={k_aux!r}, dead_after={model.config.dead_after!r}"
        )
    if model.config.topk is None and alpha == 0:
        raise ValueError(
            "a ReLU code needs alpha > 0 (unpenalised, an overcomplete code can "
            "learn the identity); or give the SAE a top-t code (SAEConfig.topk)"
        )
    h = batch[0]
    out = model(h)
    recon = (out.h_hat - h).pow(2).sum(dim=1).mean()
    l1 = l1_penalty(out.z).mean()
    l0 = (out.z > 0).float().sum(dim=1).mean()
    terms = {"recon": recon, "l1": l1, "l0": l0}
    if alpha_aux == 0:
        return Loss(recon + alpha * l1, terms)
    aux = auxk_error(model, h, out.pre, out.h_hat, k_aux).mean()
    terms |= {"aux": aux, "dead": model.dead_mask().float().mean()}
    return Loss(recon + alpha * l1 + alpha_aux * aux, terms)
