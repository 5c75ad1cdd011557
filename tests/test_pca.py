"""Tests of aecourse.models.pca: PCA against an eigendecomposition of the covariance, the
best rank-k reconstruction (Eckart-Young), principal angles against a projector formula,
and the linear autoencoder that recovers PCA's subspace (Baldi & Hornik 1989)."""

from __future__ import annotations

import math

import pytest
import torch

from aecourse.losses import ae_loss
from aecourse.models import AE, AEConfig
from aecourse.models.pca import (
    fit_linear_denoiser,
    fit_linear_denoiser_ranks,
    linear_denoise,
    pca,
    pca_reconstruct,
    principal_angle_degrees,
    subspace_angles,
)

SIDE = 4  # 4x4 images: 16 pixels
P = SIDE * SIDE
K = 3  # the data lie near a 3-D subspace


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def synthetic(n: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n 4x4 images near a random 3-D affine subspace of R^16, values in [0, 1]; and the
    subspace's orthonormal basis (3, 16)."""
    g = gen(seed)
    basis, _ = torch.linalg.qr(torch.randn((P, K), generator=g))  # (16, 3) orthonormal columns
    scales = torch.tensor([0.4, 0.28, 0.18])  # well separated variances
    latents = torch.randn((n, K), generator=g) * scales  # (n, 3)
    noise = 0.005 * torch.randn((n, P), generator=g)
    x = (0.5 + latents @ basis.T + noise).clamp(0, 1)
    return x.view(n, 1, SIDE, SIDE), basis.T


@pytest.fixture(scope="module")
def data():
    return synthetic()


def covariance_eigen(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (rows) of the sample covariance, in float64."""
    flat = x.reshape(len(x), -1).double()
    centred = flat - flat.mean(0)
    cov = centred.T @ centred / (len(x) - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    return values.flip(0), vectors.flip(1).T


# --- pca ---------------------------------------------------------------------------------


def test_pca_shapes_and_mean(data):
    x, _ = data
    mean, components, variance = pca(x, K)
    assert mean.shape == (P,) and components.shape == (K, P) and variance.shape == (P,)
    torch.testing.assert_close(mean, x.reshape(len(x), -1).mean(0))
    _, _, few = pca(x[:5], 2)  # fewer images than pixels: min(N, P) variances
    assert few.shape == (5,)


@pytest.mark.parametrize("k", [1, 3, 8, P])
def test_pca_components_are_orthonormal(data, k):
    x, _ = data
    _, components, _ = pca(x, k)
    assert components.shape == (k, P)
    torch.testing.assert_close(components @ components.T, torch.eye(k), atol=1e-5, rtol=0)


def test_pca_variance_is_sorted_and_sums_to_the_total(data):
    x, _ = data
    _, _, variance = pca(x, K)
    assert (variance[:-1] >= variance[1:]).all()
    assert (variance >= 0).all()
    flat = x.reshape(len(x), -1).double()
    total = flat.var(0, unbiased=True).sum()  # trace of the covariance
    assert variance.double().sum().item() == pytest.approx(total.item(), rel=1e-5)
    eigenvalues, _ = covariance_eigen(x)
    torch.testing.assert_close(variance.double(), eigenvalues, rtol=1e-4, atol=1e-9)


def test_pca_components_are_the_top_eigenvectors(data):
    x, basis = data
    _, components, variance = pca(x, K)
    _, eigenvectors = covariance_eigen(x)
    # the eigenvalues are well separated, so each direction is determined up to sign
    cosines = (components.double() * eigenvectors[:K]).sum(1).abs()
    torch.testing.assert_close(cosines, torch.ones(K, dtype=torch.float64), atol=1e-5, rtol=0)
    assert principal_angle_degrees(components, basis) < 2.0  # the planted subspace
    assert variance[K - 1] > 50 * variance[K]  # a clear gap after the third component


def test_pca_reconstruct_is_the_best_rank_k_linear_reconstruction(data):
    x, _ = data
    mean, components, variance = pca(x, K)
    x_hat = pca_reconstruct(x, mean, components)
    assert x_hat.shape == x.shape
    error = (x_hat - x).pow(2).reshape(len(x), -1).sum(1).mean()  # per image
    # Eckart-Young: the error is the variance left in the discarded directions
    n = len(x)
    expected = variance[K:].double().sum() * (n - 1) / n
    assert error.item() == pytest.approx(expected.item(), rel=1e-3)
    # any other rank-k subspace (through the same mean) does worse
    g = gen(1)
    for _ in range(20):
        q, _ = torch.linalg.qr(torch.randn((P, K), generator=g))
        other = pca_reconstruct(x, mean, q.T)
        other_error = (other - x).pow(2).reshape(len(x), -1).sum(1).mean()
        assert other_error > error
    # ... and so does a small rotation of the principal subspace
    nudged, _ = torch.linalg.qr((components + 0.05 * torch.randn((K, P), generator=g)).T)
    nudged_error = (pca_reconstruct(x, mean, nudged.T) - x).pow(2).reshape(len(x), -1).sum(1).mean()
    assert nudged_error > error
    # the full basis reconstructs exactly
    _, everything, _ = pca(x, P)
    torch.testing.assert_close(pca_reconstruct(x, mean, everything), x, atol=1e-5, rtol=0)


# --- principal angles ---------------------------------------------------------------------


def largest_angle_by_projectors(a: torch.Tensor, b: torch.Tensor) -> float:
    """sin(largest principal angle) = ||P_a - P_b||_2 for subspaces of equal dimension."""
    def projector(m: torch.Tensor) -> torch.Tensor:
        m = m.double().T  # (P, k)
        return m @ torch.linalg.pinv(m)

    return math.degrees(math.asin(min(1.0, torch.linalg.matrix_norm(projector(a) - projector(b), ord=2).item())))


def test_principal_angle_of_a_subspace_with_itself_is_zero():
    a = torch.randn((3, P), generator=gen(2))
    assert principal_angle_degrees(a, a) < 1e-3
    mix = torch.randn((3, 3), generator=gen(3))  # another basis of the same subspace
    assert principal_angle_degrees(a, mix @ a) < 1e-3
    assert principal_angle_degrees(a, 5 * a) < 1e-3


def test_principal_angle_of_orthogonal_subspaces_is_ninety():
    eye = torch.eye(P)
    assert principal_angle_degrees(eye[:3], eye[3:6]) == pytest.approx(90.0, abs=1e-4)
    # sharing one direction: the angles are 0 and 90, the largest 90
    angles = torch.sort(subspace_angles(eye[[0, 1]], eye[[0, 2]])).values
    torch.testing.assert_close(angles, torch.tensor([0.0, math.pi / 2]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("degrees", [1.0, 5.0, 30.0, 60.0, 89.0])
def test_principal_angle_of_known_rotation(degrees):
    t = math.radians(degrees)
    eye = torch.eye(P)
    a = eye[[0, 1]]
    b = torch.stack([eye[0], math.cos(t) * eye[1] + math.sin(t) * eye[2]])
    assert principal_angle_degrees(a, b) == pytest.approx(degrees, abs=1e-3)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_principal_angle_matches_the_projector_formula(seed):
    g = gen(seed)
    a = torch.randn((3, P), generator=g)
    b = a + 0.3 * torch.randn((3, P), generator=g)
    angle = principal_angle_degrees(a, b)
    assert 0 < angle < 90
    assert angle == pytest.approx(largest_angle_by_projectors(a, b), abs=1e-3)
    assert principal_angle_degrees(b, a) == pytest.approx(angle, abs=1e-4)  # symmetric


# --- the linear autoencoder finds PCA's subspace -------------------------------------------


def train_linear_ae(x: torch.Tensor) -> AE:
    """Fit a linear AE to x by minimising ae_loss (the MSE). Full-batch L-BFGS: Adam gets
    there too but crawls along the plateaus of this ill-conditioned problem."""
    model = AE(AEConfig(in_channels=1, image_size=SIDE, latent_dim=K, linear=True))
    optimizer = torch.optim.LBFGS(
        model.parameters(), lr=1, max_iter=200, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-12, tolerance_change=1e-15,
    )
    batch = (x, torch.zeros(len(x), dtype=torch.long))
    model.train()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = ae_loss(model, batch).total
        loss.backward()
        return loss

    optimizer.step(closure)
    return model.eval()


def decoder_columns(model: AE) -> torch.Tensor:
    """The decoder's column space as rows (latent_dim, P)."""
    (linear,) = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    return linear.weight.detach().T  # from (P, latent_dim)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_ae_recovers_the_principal_subspace(seed):
    """Baldi & Hornik 1989: a linear AE trained with squared error spans the top-k principal
    subspace (its weights need not be the components themselves, only their span)."""
    x, _ = synthetic(seed=seed)
    mean, components, _ = pca(x, K)
    torch.manual_seed(seed)
    untrained = AE(AEConfig(in_channels=1, image_size=SIDE, latent_dim=K, linear=True))
    assert principal_angle_degrees(decoder_columns(untrained), components) > 30  # the check can fail
    model = train_linear_ae(x)
    assert principal_angle_degrees(decoder_columns(model), components) < 5.0
    with torch.no_grad():
        ae_error = (model(x).x_hat - x).pow(2).mean().item()
    pca_error = (pca_reconstruct(x, mean, components) - x).pow(2).mean().item()
    assert pca_error <= ae_error * (1 + 1e-4)  # PCA is the optimum ...
    # ... and the AE gets close to it (its encoder converges slowly in the directions of
    # tiny variance, which cost almost nothing)
    assert ae_error < 2 * pca_error  # (a random rank-3 subspace: hundreds of times worse)


# --- the best linear denoiser (reduced-rank regression) -----------------------------------


def noisy_pairs(seed: int = 0, n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic images and a masked copy of them, (n, 1, SIDE, SIDE) each."""
    x, _ = synthetic(seed=seed, n=n)
    keep = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed + 7)) > 0.3
    return x * keep, x


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).pow(2).mean().item()


def test_linear_denoiser_of_full_rank_is_least_squares():
    """At full rank the reduced-rank regression is ordinary least squares (torch.linalg.lstsq)."""
    x_noisy, x = noisy_pairs()
    params = fit_linear_denoiser(x_noisy, x, rank=P)
    design = torch.cat([x_noisy.reshape(len(x), -1), torch.ones(len(x), 1)], dim=1).double()
    solution = torch.linalg.lstsq(design, x.reshape(len(x), -1).double()).solution
    reference = (design @ solution).float().reshape(x.shape)
    assert torch.allclose(linear_denoise(x_noisy, *params), reference, atol=1e-4)


def test_linear_denoiser_on_clean_inputs_is_pca():
    """Fitted on (x, x) pairs, the rank-k denoiser reconstructs as PCA-k does."""
    x, _ = synthetic(seed=3)
    mean, components, _ = pca(x, K)
    params = fit_linear_denoiser(x, x, rank=K)
    assert torch.allclose(linear_denoise(x, *params), pca_reconstruct(x, mean, components), atol=1e-4)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_linear_denoiser_beats_other_linear_maps_of_its_rank(rank):
    """The optimum of its rank: better than PCA's projection of the noisy images, than the
    least-squares map cut to rank by its own SVD, and than random rank-r maps."""
    x_noisy, x = noisy_pairs(seed=rank)
    a, b, w_enc, w_dec = fit_linear_denoiser(x_noisy, x, rank)
    best = mse(linear_denoise(x_noisy, a, b, w_enc, w_dec), x)
    mean, components, _ = pca(x_noisy, rank)
    assert best < mse(pca_reconstruct(x_noisy, mean, components), x)

    full = fit_linear_denoiser(x_noisy, x, rank=P)
    u, s, vh = torch.linalg.svd(full[2] @ full[3])  # (P, P) least-squares map, cut to rank
    cut = (u[:, :rank] * s[:rank], vh[:rank])
    assert best <= mse(linear_denoise(x_noisy, a, b, *cut), x) + 1e-7
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        enc = torch.randn(P, rank, generator=generator) * 0.1
        dec = torch.linalg.lstsq(  # the best decoder for this random encoder
            (x_noisy.reshape(len(x), -1) - a) @ enc, x.reshape(len(x), -1) - b
        ).solution
        assert best <= mse(linear_denoise(x_noisy, a, b, enc, dec), x) + 1e-7
    assert full[2].shape == (P, P) and w_enc.shape == (P, rank) and w_dec.shape == (rank, P)


def test_linear_denoiser_ranks_share_one_regression():
    """Several ranks from one fit: each output equals the rank-r reduced-rank regression
    computed independently, with lstsq and the SVD of the (N, P) fitted values (the
    prediction projected onto their top r right singular vectors), and the one-rank fit."""
    x_noisy, x = noisy_pairs(seed=4)
    ranks = (8, 1, 3)
    fits = fit_linear_denoiser_ranks(x_noisy, x, ranks)
    assert list(fits) == list(ranks)
    design = torch.cat([x_noisy.reshape(len(x), -1), torch.ones(len(x), 1)], dim=1).double()
    fitted = design @ torch.linalg.lstsq(design, x.reshape(len(x), -1).double()).solution
    clean_mean = x.reshape(len(x), -1).double().mean(0)
    _, _, vh = torch.linalg.svd(fitted - clean_mean, full_matrices=False)
    for rank, params in fits.items():
        projected = (fitted - clean_mean) @ vh[:rank].T @ vh[:rank] + clean_mean
        reference = projected.float().reshape(x.shape)
        assert torch.allclose(linear_denoise(x_noisy, *params), reference, atol=1e-4), rank
        alone = fit_linear_denoiser(x_noisy, x, rank)
        for shared, single in zip(params, alone):
            assert torch.equal(shared, single), rank


def test_linear_denoiser_rejects_bad_input():
    x_noisy, x = noisy_pairs()
    with pytest.raises(ValueError, match="rank"):
        fit_linear_denoiser(x_noisy, x, rank=0)
    with pytest.raises(ValueError, match="one shape"):
        fit_linear_denoiser(x_noisy[:10], x, rank=2)
    with pytest.raises(ValueError, match="ranks"):
        fit_linear_denoiser_ranks(x_noisy, x, ())
    with pytest.raises(ValueError, match="ranks"):
        fit_linear_denoiser_ranks(x_noisy, x, (2, P + 1))
    # an empty batch: the same clear error, not an IndexError
    with pytest.raises(ValueError, match="N >= 1"):
        fit_linear_denoiser_ranks(x_noisy[:0], x[:0], (2,))
