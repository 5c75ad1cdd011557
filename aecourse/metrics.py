"""Evaluation metrics, one function per concept (the course's evaluation protocol).

- ``psnr``: reconstruction quality in dB.
- ``iw_nll``: importance-weighted bound on a VAE's negative log-likelihood, in nats.
- ``elbo_of`` + ``fit_posterior``: the ELBO of any diagonal Gaussian q(z|x), and the
  best one for each image (the amortisation gap of Cremer et al. 2018).
- ``codebook_usage``: fraction of VQ codes in use and the perplexity of their histogram.
- ``frechet_distance`` + ``classifier_features``: distance between two feature distributions,
  for samples against test images in a classifier's feature space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecourse import sampling

_LOG_2PI = math.log(2 * math.pi)


def psnr(x_hat: Tensor, x: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]:

        PSNR = 10 log10(1 / MSE),   MSE = mean over all pixels of (x_hat - x)^2.

    Args:
        x_hat: reconstruction, any shape, e.g. (B, C, H, W).
        x: target of the same shape.

    Returns ``inf`` when the two are identical. Values are not clipped.
    """
    if x_hat.shape != x.shape:
        raise ValueError(
            f"expected x_hat and x of the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError("expected non-empty tensors, got 0 elements")
    mse = torch.mean((x_hat.double() - x.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@torch.no_grad()
def iw_nll(
    model: nn.Module,
    x: Tensor,
    *,
    k: int = 1000,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    posterior: tuple[Tensor, Tensor] | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """Importance-weighted upper bound on -log p(x), in nats per image (eq. 8 of Burda et al. 2015).

        -log p(x) <= -log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),
        z_i ~ q(z | x) = N(mu, diag exp logvar)

    with a Bernoulli likelihood p(x | z) = Bernoulli(sigmoid(model.decode(z))) over the pixels
    and the prior p(z) = N(0, I). k = 1 is a one-sample estimate of the negative ELBO; the bound
    tightens as k grows. The model needs ``encode(x) -> (mu, logvar)`` and ``decode(z) -> logits``
    (the VAE API); it is put in eval mode for the call and restored afterwards.

    Args:
        model: the VAE.
        x: binary images (B, C, H, W) with values in {0, 1} (binarise first, e.g. ``data.binarize``).
        k: importance samples per image.
        batch_size: at most this many (sample, image) pairs go through the decoder at once
            (memory against speed: on a GPU, several thousand is faster).
        generator: for reproducible samples (may live on the CPU when x is on a GPU).
        posterior: (mu, logvar), each (B, latent_dim): the proposal q(z | x) to draw from
            instead of the encoder's (e.g. from ``fit_posterior``); the bound holds for any q.
        y: class labels (B,) of a conditional VAE: the bound is then on -log p(x | y), with
            q(z | x, y) and p(x | z, y) (the prior stays N(0, I)).

    Returns:
        (B,) float64 tensor of bounds on -log p(x), on x's device.
    """
    if k < 1 or batch_size < 1:
        raise ValueError(f"expected k >= 1 and batch_size >= 1, got k={k} and {batch_size}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch of images (B, C, H, W), got {tuple(x.shape)}")
    if not torch.is_floating_point(x) or not torch.all((x == 0) | (x == 1)):
        raise ValueError("expected binary x with values in {0, 1} (Bernoulli likelihood); binarise it")
    _check_bernoulli(model, "iw_nll")
    was_training = model.training
    model.eval()
    if y is not None and y.shape != x.shape[:1]:
        raise ValueError(f"expected labels y of shape ({len(x)},), one per image, got {tuple(y.shape)}")
    try:
        xs, ys = zip(*split_labelled(x, y, batch_size))
        if posterior is None:
            chunks = [_iw_nll_chunk(model, xc, k, batch_size, generator, y=yc) for xc, yc in zip(xs, ys)]
        else:
            stats = zip(xs, ys, *(t.split(batch_size) for t in posterior))
            chunks = [_iw_nll_chunk(model, xc, k, batch_size, generator, (m, lv), y=yc)
                      for xc, yc, m, lv in stats]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def split_labelled(
    x: Tensor, y: Tensor | None, batch_size: int
) -> list[tuple[Tensor, Tensor | None]]:
    """Images x (N, ...) in batches, each with its labels from y (N,), or
    with None when there are no labels (an unconditional model)."""
    xs = x.split(batch_size)
    return list(zip(xs, [None] * len(xs) if y is None else y.split(batch_size)))


def _check_bernoulli(model: nn.Module, what: str) -> None:
    """A clear error for a VAE whose decoder is Gaussian (``config.sigma_dec`` set)."""
    if getattr(getattr(model, "config", None), "sigma_dec", None) is not None:
        raise ValueError(f"{what} is for a Bernoulli decoder; this VAE has a Gaussian one (sigma_dec)")


def _iw_nll_chunk(
    model: nn.Module,
    x: Tensor,
    k: int,
    batch_size: int,
    generator: torch.Generator | None,
    posterior: tuple[Tensor, Tensor] | None = None,
    y: Tensor | None = None,
) -> Tensor:
    """``iw_nll`` for one chunk of at most batch_size images; samples go in chunks of s per image."""
    B = x.shape[0]
    given = {} if y is None else {"y": y}  # the labels of a conditional VAE
    mu, logvar = model.encode(x, **given) if posterior is None else posterior  # (B, D) each
    std = torch.exp(0.5 * logvar)
    latent_dims = tuple(range(2, mu.ndim + 1))  # dims of one latent, after (s, B)
    s = max(1, batch_size // B)  # samples per decoder pass
    log_sum = torch.full((B,), -math.inf, dtype=torch.float64, device=x.device)  # running log sum_i w_i
    for start in range(0, k, s):
        n = min(s, k - start)
        eps = sampling.randn((n, *mu.shape), generator, mu.device, mu.dtype)  # (n, B, D)
        z = mu + std * eps  # (n, B, D)
        # (n*B, C, H, W); row i*B + b is image b's i-th sample, so y repeats n times
        given = {} if y is None else {"y": y.repeat(n)}
        logits = model.decode(z.reshape(n * B, *mu.shape[1:]), **given)
        if logits.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"expected decode(z) logits of shape (N, *{tuple(x.shape[1:])}), got {tuple(logits.shape)}"
            )
        logits = logits.reshape(n, *x.shape)  # (n, B, C, H, W)
        log_px_z = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        log_px_z = log_px_z.flatten(2).sum(-1)  # (n, B) log p(x | z)
        log_pz = -0.5 * (z**2 + _LOG_2PI).sum(latent_dims)  # (n, B) log N(z; 0, I)
        log_qz = -0.5 * (eps**2 + logvar + _LOG_2PI).sum(latent_dims)  # (n, B) log N(z; mu, exp logvar)
        log_w = (log_px_z + log_pz - log_qz).double()  # (n, B) log importance weights
        log_sum = torch.logsumexp(torch.cat([log_sum[None], log_w]), dim=0)  # (B,)
    return -(log_sum - math.log(k))  # -log (1/k) sum_i w_i


def elbo_of(
    model: nn.Module,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The ELBO of binary images x under q(z | x) = N(mu, diag exp logvar):

        E_q[log p(x | z)] - KL(q(z | x) || p(z)),   in nats,

    the expectation estimated with `samples` reparameterised draws per image,
    the KL in closed form. Differentiable in mu and logvar.

    Args:
        model: a VAE (``decode(z) -> logits`` of a Bernoulli p(x | z)).
        x: binary images (B, C, H, W).
        mu, logvar: (B, latent_dim) each: any q, the encoder's or one
            fitted per image.
        samples: draws of z per image.
        generator: for reproducible draws (may live on the CPU when x is on
            a GPU).

    Returns:
        (B,) the ELBO of each image.
    """
    if mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
        raise ValueError(
            "expected mu and logvar of shape (B, latent_dim) with "
            f"B = {x.shape[0]} images, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    _check_bernoulli(model, "elbo_of")
    shape = (samples, *mu.shape)
    eps = sampling.randn(shape, generator, mu.device, mu.dtype)  # (S, B, m)
    z = mu + torch.exp(0.5 * logvar) * eps  # (S, B, m)
    logits = model.decode(z.flatten(0, 1))  # (S * B, C, H, W)
    logits = logits.unflatten(0, (samples, len(x)))  # (S, B, C, H, W)
    log_px_z = -F.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none"
    )
    log_px_z = log_px_z.flatten(2).sum(-1).mean(0)  # (B,) E_q[log p(x|z)]
    # (B,) appendix B of Kingma & Welling 2013
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return log_px_z - kl


def fit_posterior(
    model: nn.Module,
    x: Tensor,
    *,
    steps: int = 300,
    lr: float = 0.05,
    samples: int = 8,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The best diagonal Gaussian q(z | x) for each image on its own:
    (mu, logvar) that maximise ``elbo_of`` by Adam, with the decoder fixed,
    starting from the encoder's output.

    Its ELBO is that of the best q of the family (up to the optimiser's
    convergence); the encoder's ELBO falls short of it by the amortisation
    gap (Cremer et al. 2018, section 3).

    Args:
        model: a VAE (``encode``, ``decode``); its parameters do not change.
        x: binary images (B, C, H, W).
        steps, lr: Adam steps and learning rate.
        samples: draws of z per image and step (a Monte Carlo gradient).
        generator: for reproducible draws.

    Returns:
        (mu, logvar), each (B, latent_dim), detached.
    """
    if steps < 0 or samples < 1:
        raise ValueError(
            f"expected steps >= 0 and samples >= 1, got {steps} and {samples}"
        )
    with torch.no_grad():
        mu, logvar = (t.detach().clone() for t in model.encode(x))
    params = [mu.requires_grad_(), logvar.requires_grad_()]
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        elbo = elbo_of(
            model, x, mu, logvar, samples=samples, generator=generator
        )
        # the images are independent: the sum's gradient is each one's own
        loss = -elbo.sum()
        # gradients for q alone: the decoder stays as trained
        mu.grad, logvar.grad = torch.autograd.grad(loss, params)
        optimizer.step()
    return mu.detach(), logvar.detach()


def codebook_usage(indices: Tensor, codebook_size: int) -> tuple[float, float]:
    """How much of a VQ codebook is in use.

    Args:
        indices: integer code indices of any shape, e.g. (B, h, w), values in [0, codebook_size).
        codebook_size: K, the number of codes.

    Returns:
        (usage, perplexity): the fraction of the K codes used at least once, and
        exp(H(p)) with p the code histogram and H(p) = -sum_k p_k log p_k (m codes used
        equally often give perplexity m; its range is [1, K]).
    """
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise ValueError(f"expected integer indices, got dtype {indices.dtype}")
    if indices.numel() == 0:
        raise ValueError("expected at least one index, got an empty tensor")
    if codebook_size < 1:
        raise ValueError(f"expected codebook_size >= 1, got {codebook_size}")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= codebook_size:
        raise ValueError(f"expected indices in [0, {codebook_size}), got values in [{low}, {high}]")
    counts = torch.bincount(indices.flatten().long(), minlength=codebook_size).double()  # (K,)
    usage = (counts > 0).double().mean().item()
    p = counts[counts > 0] / counts.sum()
    entropy = -(p * p.log()).sum().item()  # nats
    return usage, math.exp(entropy)


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula, Heusel et al. 2017):

        d^2 = ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})

    with means mu and unbiased covariances S. tr (S_a S_b)^{1/2} is the sum of the square roots of
    the eigenvalues of the symmetric PSD matrix S_a^{1/2} S_b S_a^{1/2}, which has the same
    eigenvalues as S_a S_b; everything is in float64 with torch.linalg.eigh.

    Args:
        features_a: (N_a, F) features, N_a >= 2.
        features_b: (N_b, F) features, N_b >= 2.

    Returns:
        The squared distance as a float (>= 0; symmetric in a and b).
    """
    for label, f in (("features_a", features_a), ("features_b", features_b)):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"expected {label} of shape (N, F), N >= 2, got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise ValueError(f"expected finite {label}, got NaN or inf")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"expected the same feature size F, got {features_a.shape[1]} and {features_b.shape[1]}"
        )
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)  # (F,)
    cov_a, cov_b = _covariance(a, mu_a), _covariance(b, mu_b)  # (F, F) each
    sqrt_a = _sqrtm_psd(cov_a)  # (F, F)
    middle = sqrt_a @ cov_b @ sqrt_a  # (F, F), similar to cov_a @ cov_b
    eigvals = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0)
    trace_sqrt = eigvals.sqrt().sum()  # tr (S_a S_b)^{1/2}
    distance = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(distance.item(), 0.0)  # rounding can leave -1e-12 for identical sets


def _covariance(f: Tensor, mu: Tensor) -> Tensor:
    """Unbiased covariance (F, F) of features f (N, F) with mean mu (F,)."""
    centred = f - mu  # (N, F)
    return centred.T @ centred / (f.shape[0] - 1)


def _sqrtm_psd(S: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (F, F)."""
    eigvals, eigvecs = torch.linalg.eigh((S + S.T) / 2)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def variance_explained(h_hat: Tensor, h: Tensor) -> float:
    """Fraction of the variance of vectors h (N, n) that their reconstructions h_hat explain:
    1 - sum ||h - h_hat||^2 / sum ||h - mean(h)||^2 (1 is perfect; 0 is no better than
    the mean vector; negative is worse)."""
    if h_hat.shape != h.shape or h.ndim != 2 or len(h) < 2:
        raise ValueError(f"expected h_hat and h of the same shape (N, n) with N >= 2, got "
                         f"{tuple(h_hat.shape)} and {tuple(h.shape)}")
    h, h_hat = h.double(), h_hat.double()
    residual = (h - h_hat).pow(2).sum()
    total = (h - h.mean(dim=0)).pow(2).sum()
    if total == 0:
        raise ValueError("h has no variance: every row is the same")
    return 1.0 - (residual / total).item()


def top_class_purity(activations: Tensor, y: Tensor, top: int) -> Tensor:
    """How much one class dominates what each unit responds to most: for each column j of
    activations (N, F), the fraction of the `top` inputs with the largest activation j that
    belong to the most common class among them; y (N,) are the inputs' class labels.

    Returns (F,) in [1 / top, 1]; NaN for a column with fewer than `top` positive
    activations (a feature that seldom fires has no top `top` to judge).
    """
    if activations.ndim != 2 or y.shape != activations.shape[:1]:
        raise ValueError(f"expected activations (N, F) and labels (N,), got shapes "
                         f"{tuple(activations.shape)} and {tuple(y.shape)}")
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= len(activations):
        raise ValueError(f"top must be an integer in [1, N={len(activations)}], got {top!r}")
    if y.dtype.is_floating_point or y.dtype == torch.bool or (y < 0).any():
        raise ValueError(f"labels y must be non-negative integers, got dtype {y.dtype}")
    values, index = activations.topk(top, dim=0)  # (top, F) each
    classes = y.to(index.device)[index]  # (top, F)
    counts = F.one_hot(classes, int(y.max()) + 1).sum(dim=0)  # (F, classes)
    purity = counts.max(dim=1).values.double() / top
    return torch.where(values[-1] > 0, purity, torch.nan)


@torch.no_grad()
def classifier_features(classifier: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """``classifier.features`` of images x (N, C, H, W) in batches, in eval mode and without gradients.

    Each batch is moved to the classifier's device; returns (N, feature_dim) on that device.
    """
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    if x.shape[0] == 0:
        raise ValueError(f"expected at least one image, got shape {tuple(x.shape)}")
    device = next(classifier.parameters(), x).device
    was_training = classifier.training
    classifier.eval()
    try:
        features = [classifier.features(x_batch.to(device)) for x_batch in x.split(batch_size)]
    finally:
        classifier.train(was_training)
    return torch.cat(features)
