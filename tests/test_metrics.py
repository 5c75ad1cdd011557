"""Tests of aecourse.metrics against hand computations and exact references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aecourse.metrics import (
    classifier_features,
    codebook_usage,
    elbo_of,
    fit_posterior,
    frechet_distance,
    iw_nll,
    psnr,
)


# ---------------------------------------------------------------- psnr
def test_psnr_of_a_constant_error():
    x = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    assert psnr(x + 0.1, x) == pytest.approx(20.0, abs=1e-9)  # 10 log10(1 / 0.01)
    assert psnr(x - 0.01, x) == pytest.approx(40.0, abs=1e-9)


def test_psnr_matches_numpy():
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(3, 1, 5, 5, generator=g), torch.rand(3, 1, 5, 5, generator=g)
    mse = np.mean((x_hat.numpy().astype(np.float64) - x.numpy()) ** 2)
    assert psnr(x_hat, x) == pytest.approx(10 * np.log10(1 / mse), rel=1e-12)


def test_psnr_edge_cases():
    x = torch.rand(2, 3)
    assert psnr(x, x) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.rand(2, 3), torch.rand(3, 2))


# ---------------------------------------------------------------- iw_nll
class ToyVAE(nn.Module):
    """1-D latent, 4 binary pixels: p(z) = N(0, 1), p(x_j | z) = Bernoulli(sigmoid(a_j z + b_j)).

    The encoder q(z | x) = N(w . (x - 1/2) + c, e^0.4) is deliberately imperfect, so the bound is loose
    at k = 1 and tightens with k. The exact log p(x) is a 1-D integral (see `exact_log_px`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([3.0, -2.0, 1.5, 2.5], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([0.5, 0.0, -1.0, 0.3], dtype=torch.float64))
        self.w = nn.Parameter(torch.tensor([0.5, -0.5, 0.5, 0.5], dtype=torch.float64))
        self.c = 0.2
        self.logvar = 0.4  # a little wider than the prior

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = ((x.flatten(1) - 0.5) @ self.w + self.c)[:, None]  # (B, 1)
        return mu, torch.full_like(mu, self.logvar)  # (B, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z * self.a + self.b).reshape(-1, 1, 1, 4)  # logits (N, 1, 1, 4)


PATTERNS = list(itertools.product([0.0, 1.0], repeat=4))  # all 16 binary images of 4 pixels
ALL_IMAGES = torch.tensor(PATTERNS, dtype=torch.float64).reshape(16, 1, 1, 4)
Z = torch.linspace(-15, 15, 60_001, dtype=torch.float64)  # quadrature grid
DZ = Z[1] - Z[0]


def log_px_given_z(model: ToyVAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) on the grid, (B, len(Z)), computed independently of iw_nll."""
    logits = Z[:, None] * model.a.detach() + model.b.detach()  # (Z, 4)
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log (1 - p), no overflow
    v = x.flatten(1)[:, None, :]  # (B, 1, 4)
    return (v * log_p + (1 - v) * log_1mp).sum(-1)


def exact_log_px(model: ToyVAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log integral N(z; 0, 1) p(x | z) dz by dense quadrature, (B,)."""
    log_prior = -0.5 * Z**2 - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_px_given_z(model, x) + log_prior, dim=1) + DZ.log()


def exact_negative_elbo(model: ToyVAE, x: torch.Tensor) -> torch.Tensor:
    """-ELBO = -E_q[log p(x | z)] + KL(q || N(0, 1)) by quadrature, (B,)."""
    with torch.no_grad():
        mu, logvar = model.encode(x)  # (B, 1)
    var = logvar.exp()  # (B, 1)
    q = torch.exp(-0.5 * (Z - mu) ** 2 / var) / torch.sqrt(2 * math.pi * var)  # (B, Z) density
    expected_log_lik = (q * log_px_given_z(model, x)).sum(1) * DZ
    kl = 0.5 * (mu**2 + var - 1 - logvar).squeeze(1)
    return -expected_log_lik + kl


REPEATS = {1: 1000, 10: 1000, 100: 1000, 1000: 200}  # k -> independent repetitions
KS = tuple(REPEATS)


@pytest.fixture(scope="module")
def toy_bounds():
    """iw_nll of each of the 16 images, repeated, for each k: {k: (REPEATS[k], 16)}."""
    model = ToyVAE()
    generator = torch.Generator().manual_seed(0)
    bounds = {}
    for k, repeats in REPEATS.items():
        x = ALL_IMAGES.repeat(repeats, 1, 1, 1)  # (repeats * 16, 1, 1, 4), independent samples per copy
        bounds[k] = iw_nll(model, x, k=k, batch_size=200_000, generator=generator).reshape(repeats, 16)
    return bounds


def stderr(bounds: torch.Tensor) -> torch.Tensor:
    """Standard error of the mean over repetitions, (16,)."""
    return bounds.std(0) / math.sqrt(bounds.shape[0])


def test_exact_toy_likelihood_is_normalised():
    assert exact_log_px(ToyVAE(), ALL_IMAGES).exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_iw_bound_at_k_1000_is_close_to_exact(toy_bounds):
    exact_nll = -exact_log_px(ToyVAE(), ALL_IMAGES)  # (16,)
    mean = toy_bounds[1000].mean(0)
    assert (mean - exact_nll).abs().max() < 0.01
    assert (toy_bounds[1000] - exact_nll).abs().max() < 0.3  # every single estimate is close too


def test_iw_bound_is_above_exact_and_tightens_with_k(toy_bounds):
    exact_nll = -exact_log_px(ToyVAE(), ALL_IMAGES)  # (16,)
    for k in KS:  # an upper bound on -log p(x) in expectation
        assert (toy_bounds[k].mean(0) >= exact_nll - 4 * stderr(toy_bounds[k])).all(), k
    gaps = [(toy_bounds[k] - exact_nll).mean().item() for k in KS]
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps  # the expected bound falls with k
    assert gaps[0] > 0.5 and gaps[-1] < 0.005, gaps


def test_iw_bound_at_k_1_is_the_elbo(toy_bounds):
    negative_elbo = exact_negative_elbo(ToyVAE(), ALL_IMAGES)  # (16,)
    assert ((toy_bounds[1].mean(0) - negative_elbo).abs() < 4 * stderr(toy_bounds[1])).all()


def test_iw_nll_is_reproducible_and_restores_mode():
    model = ToyVAE().train()
    first = iw_nll(model, ALL_IMAGES, k=7, batch_size=5, generator=torch.Generator().manual_seed(3))
    second = iw_nll(model, ALL_IMAGES, k=7, batch_size=5, generator=torch.Generator().manual_seed(3))
    assert first.shape == (16,) and first.dtype == torch.float64
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert model.training
    assert not first.requires_grad


def test_iw_nll_rejects_bad_input():
    model = ToyVAE()
    with pytest.raises(ValueError, match="binary"):
        iw_nll(model, torch.full((2, 1, 1, 4), 0.5, dtype=torch.float64), k=2)
    with pytest.raises(ValueError, match="k >= 1"):
        iw_nll(model, ALL_IMAGES, k=0)
    models = pytest.importorskip("aecourse.models")
    gaussian = models.VAE(models.VAEConfig(mlp=True, latent_dim=2, hidden_dim=4, sigma_dec=0.1))
    with pytest.raises(ValueError, match="Gaussian"):
        iw_nll(gaussian, torch.ones(2, 1, 28, 28), k=2)
    with pytest.raises(ValueError, match="Gaussian"):
        elbo_of(gaussian, torch.ones(2, 1, 28, 28), torch.zeros(2, 2), torch.zeros(2, 2))


def test_iw_nll_on_the_course_vae():
    models = pytest.importorskip("aecourse.models")
    torch.manual_seed(0)
    model = models.VAE(models.VAEConfig(latent_dim=2, channels=(4, 8)))
    x = torch.bernoulli(torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    nll = iw_nll(model, x, k=20, batch_size=16, generator=torch.Generator().manual_seed(0))
    assert nll.shape == (3,) and torch.isfinite(nll).all() and (nll > 0).all()
    # one sample at the posterior mean plus reparameterised noise: the k = 1 bound is the negative ELBO
    mu, logvar = model.eval().encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    z = mu + (0.5 * logvar).exp() * eps
    recon = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none").flatten(1).sum(1)
    kl_sample = (-0.5 * (z**2)).sum(1) - (-0.5 * (eps**2 + logvar)).sum(1)  # log p(z) - log q(z|x)
    reference = recon - kl_sample
    one = iw_nll(model, x, k=1, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(one.float(), reference.detach(), rtol=1e-5, atol=1e-3)


def test_iw_nll_with_the_encoders_posterior_is_the_default():
    model = ToyVAE()
    posterior = model.encode(ALL_IMAGES)
    default = iw_nll(model, ALL_IMAGES, k=9, batch_size=7, generator=torch.Generator().manual_seed(3))
    given = iw_nll(
        model, ALL_IMAGES, k=9, batch_size=7, generator=torch.Generator().manual_seed(3),
        posterior=posterior,
    )
    torch.testing.assert_close(default, given, rtol=0, atol=0)


# ---------------------------------------------------------------- elbo_of, fit_posterior
def test_elbo_of_the_encoders_posterior_matches_quadrature():
    model = ToyVAE()
    with torch.no_grad():
        mu, logvar = model.encode(ALL_IMAGES)
        got = elbo_of(model, ALL_IMAGES, mu, logvar, samples=400_000,
                      generator=torch.Generator().manual_seed(0))
    assert got.shape == (16,)
    torch.testing.assert_close(got, -exact_negative_elbo(model, ALL_IMAGES), rtol=0, atol=0.02)


def test_fit_posterior_closes_the_amortisation_gap_and_leaves_the_model():
    model = ToyVAE()
    before = [p.detach().clone() for p in model.parameters()]
    mu, logvar = fit_posterior(model, ALL_IMAGES, steps=300, lr=0.05, samples=16,
                               generator=torch.Generator().manual_seed(1))
    assert not mu.requires_grad and not logvar.requires_grad
    for p, p0 in zip(model.parameters(), before):
        torch.testing.assert_close(p, p0, rtol=0, atol=0)
        assert p.grad is None
    with torch.no_grad():
        encoder = -exact_negative_elbo(model, ALL_IMAGES)
        fitted = elbo_of(model, ALL_IMAGES, mu, logvar, samples=20_000,
                         generator=torch.Generator().manual_seed(2))
    exact = exact_log_px(model, ALL_IMAGES)
    # the deliberately imperfect encoder leaves a gap that per-image fitting closes
    assert (fitted > encoder + 0.01).all()
    assert (fitted < exact + 0.02).all()  # an ELBO stays below log p(x)
    # the toy posterior is nearly Gaussian: the best Gaussian is nearly exact
    assert (exact - fitted).mean() < 0.3 * (exact - encoder).mean()


# ---------------------------------------------------------------- codebook_usage
def test_codebook_usage_hand_counts():
    usage, perplexity = codebook_usage(torch.tensor([[0, 0], [1, 2]]), codebook_size=4)
    assert usage == 0.75  # codes 0, 1, 2 of 4
    # p = (1/2, 1/4, 1/4): entropy = 1.5 ln 2, perplexity = 2 ** 1.5
    assert perplexity == pytest.approx(2**1.5, rel=1e-12)


@pytest.mark.parametrize("m", [1, 5, 16])
def test_uniform_usage_of_m_codes_has_perplexity_m(m):
    indices = torch.arange(m).repeat(7).reshape(7, m, 1)  # each of m codes 7 times
    usage, perplexity = codebook_usage(indices, codebook_size=16)
    assert usage == m / 16
    assert perplexity == pytest.approx(m, rel=1e-12)


def test_codebook_usage_rejects_bad_indices():
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        codebook_usage(torch.tensor([0, 4]), codebook_size=4)
    with pytest.raises(ValueError, match="integer"):
        codebook_usage(torch.tensor([0.0, 1.0]), codebook_size=4)


# ---------------------------------------------------------------- frechet_distance
def with_moments(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """n samples (n, F) whose sample mean and unbiased sample covariance are exactly mean and cov."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, mean.numel(), generator=g, dtype=torch.float64)
    x = x - x.mean(0)
    white = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / (n - 1))).T  # sample covariance I
    return white @ torch.linalg.cholesky(cov).T + mean


def test_frechet_of_identical_sets_is_zero():
    f = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)


def test_frechet_matches_closed_form_for_diagonal_gaussians():
    mu_a, mu_b = torch.tensor([0.0, 1.0, -2.0]).double(), torch.tensor([1.0, 1.0, 0.5]).double()
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]).double(), torch.tensor([0.5, 2.0, 3.0]).double()
    a = with_moments(50, mu_a, torch.diag(sd_a**2), seed=1)
    b = with_moments(80, mu_b, torch.diag(sd_b**2), seed=2)
    closed_form = ((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()  # commuting covariances
    assert frechet_distance(a, b) == pytest.approx(closed_form.item(), rel=1e-9)


def test_frechet_matches_numpy_for_full_covariances():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(300, 6, generator=g) @ torch.randn(6, 6, generator=g) + 1.0
    b = torch.randn(400, 6, generator=g) @ torch.randn(6, 6, generator=g)
    # reference: tr (S_a S_b)^{1/2} from the (non-symmetric) eigenvalues of the product itself
    A, B = a.double().numpy(), b.double().numpy()
    cov_a, cov_b = np.cov(A, rowvar=False), np.cov(B, rowvar=False)
    trace_sqrt = np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real.clip(min=0)).sum()
    mean_term = np.sum((A.mean(0) - B.mean(0)) ** 2)
    reference = mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)


def test_frechet_is_symmetric_and_handles_rank_deficiency():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(100, 5, generator=g), torch.randn(120, 5, generator=g) * 2 + 0.5
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-10)
    few_a, few_b = torch.randn(4, 10, generator=g), torch.randn(6, 10, generator=g)  # N < F: singular
    d = frechet_distance(few_a, few_b)
    assert math.isfinite(d) and d > 0
    assert frechet_distance(few_a, few_b) == pytest.approx(frechet_distance(few_b, few_a), rel=1e-8)


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="feature size"):
        frechet_distance(torch.randn(10, 3), torch.randn(10, 4))
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(torch.randn(1, 3), torch.randn(10, 3))


# ---------------------------------------------------------------- classifier_features
class TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 3)


def test_classifier_features_batches_match_one_pass():
    torch.manual_seed(0)
    classifier = TinyClassifier().train()
    x = torch.rand(10, 1, 4, 4)
    features = classifier_features(classifier, x, batch_size=3)
    assert features.shape == (10, 3) and not features.requires_grad
    assert classifier.training  # mode restored; dropout was off during the call
    with torch.no_grad():
        torch.testing.assert_close(features, classifier.eval().features(x))


# --- sparse autoencoder figures ------------------------------------------------------


def test_variance_explained_of_pca_is_its_eigenvalue_share():
    """PCA keeping l directions explains (lambda_1 + ... + lambda_l) / sum(lambda)."""
    from aecourse.metrics import variance_explained
    from aecourse.models.pca import pca, pca_reconstruct

    g = torch.Generator().manual_seed(0)
    h = torch.randn(500, 6, generator=g) @ torch.randn(6, 6, generator=g) + 3.0
    mean, directions, variance = pca(h, k=6)
    for ell in (1, 3, 6):
        h_hat = pca_reconstruct(h, mean, directions[:ell])
        share = (variance[:ell].sum() / variance.sum()).item()
        assert variance_explained(h_hat, h) == pytest.approx(share, abs=1e-5)
    # the mean alone explains nothing, a copy everything
    assert variance_explained(h.mean(0).expand_as(h), h) == pytest.approx(0.0, abs=1e-6)
    assert variance_explained(h, h) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        variance_explained(h[:, :5], h)
    with pytest.raises(ValueError, match="no variance"):
        variance_explained(torch.ones(4, 2), torch.ones(4, 2))


def test_top_class_purity_matches_counting_by_hand():
    from collections import Counter

    from aecourse.metrics import top_class_purity

    g = torch.Generator().manual_seed(1)
    activations = torch.randn(200, 12, generator=g)
    activations[:, 0] = -activations[:, 0].abs()  # never positive: NaN
    y = torch.randint(0, 10, (200,), generator=g)
    got = top_class_purity(activations, y, top=9)
    for j in range(12):
        column = activations[:, j].tolist()
        order = sorted(range(200), key=lambda i: -column[i])[:9]
        if column[order[-1]] <= 0:
            assert math.isnan(got[j])
            continue
        most = Counter(y[i].item() for i in order).most_common(1)[0][1]
        assert got[j].item() == pytest.approx(most / 9)
    with pytest.raises(ValueError, match="top must be an integer in"):
        top_class_purity(activations, y, top=0)
    with pytest.raises(ValueError, match="labels"):
        top_class_purity(activations, y[:10], top=3)
