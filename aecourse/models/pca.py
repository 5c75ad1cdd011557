"""Closed-form linear codes: PCA and the best linear denoiser.

A linear AE trained with squared error spans the same subspace as the top principal
components (Baldi & Hornik 1989); the course checks that numerically with these helpers.
A linear AE trained as a denoiser, on (noisy, clean) pairs, has a closed form too:
reduced-rank regression (`fit_linear_denoiser`), the linear baseline of chapter 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def pca(x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Principal components of images x (N, C, H, W), the linear AE's closed-form optimum.

    Returns the mean (P,), the top-k orthonormal directions (k, P) and the explained
    variance of every component (min(N, P),), where P = C * H * W. Computed as the
    eigendecomposition of the float64 covariance (seconds for 60,000 x 784 images).
    """
    flat = x.reshape(len(x), -1).double()
    mean = flat.mean(0)  # (P,)
    centred = flat - mean  # (N, P)
    values, vectors = torch.linalg.eigh(centred.T @ centred / (len(x) - 1))  # ascending
    variance = values.flip(0).clamp_min(0.0)[: min(flat.shape)]  # largest first
    directions = vectors.flip(1).T[:k].contiguous()  # (k, P), largest variance first
    return mean.float(), directions.float(), variance.float()


def pca_reconstruct(x: Tensor, mean: Tensor, components: Tensor) -> Tensor:
    """Project x onto the principal subspace and back: the best rank-k linear reconstruction."""
    flat = x.reshape(len(x), -1) - mean
    return (flat @ components.T @ components + mean).reshape(x.shape)


def subspace_angles(a: Tensor, b: Tensor) -> Tensor:
    """Principal angles (radians) between the row spaces of a (k, P) and b (m, P)."""
    qa, _ = torch.linalg.qr(a.double().T)
    qb, _ = torch.linalg.qr(b.double().T)
    cosines = torch.linalg.svdvals(qa.T @ qb).clamp(-1.0, 1.0)
    return torch.arccos(cosines).float()


def principal_angle_degrees(a: Tensor, b: Tensor) -> float:
    """Largest principal angle between two subspaces, in degrees (0 means identical)."""
    return math.degrees(subspace_angles(a, b).max().item())


def fit_linear_denoiser(x_noisy: Tensor, x: Tensor, rank: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The best linear denoiser of rank `rank`: reduced-rank regression of clean images x
    on noisy images x_noisy, both (N, C, H, W) (Izenman 1975; Reinsel & Velu 1998).

    It minimises the mean squared error of x_hat = b + (x_noisy - a) @ W_enc @ W_dec over
    every linear map of rank `rank`: least squares of x on x_noisy, then the projection of
    its fitted values onto their top `rank` principal directions. Returns a (P,), b (P,),
    W_enc (P, rank) and W_dec (rank, P), where P = C * H * W; `linear_denoise` applies them.
    A linear autoencoder trained as a DAE on these pairs can at best reach this optimum.
    """
    return fit_linear_denoiser_ranks(x_noisy, x, (rank,))[rank]


def fit_linear_denoiser_ranks(
    x_noisy: Tensor, x: Tensor, ranks: Sequence[int]
) -> dict[int, tuple[Tensor, Tensor, Tensor, Tensor]]:
    """`fit_linear_denoiser` for several ranks at once: {rank: (a, b, W_enc, W_dec)}.

    The least-squares fit and the principal directions of its fitted values do not depend
    on the rank, which only decides how many directions are kept; so one regression serves
    every rank, at the cost of one.
    """
    # an empty batch gives the error below, not an IndexError
    P = math.prod(x.shape[1:]) if x.ndim else 0
    if (
        x_noisy.shape != x.shape
        or not ranks
        or not all(1 <= r <= P for r in ranks)
        or len(x) == 0
    ):
        raise ValueError(
            f"need x_noisy and x of one shape (N, ...) with N >= 1 and ranks in [1, {P}], "
            f"got {tuple(x_noisy.shape)}, {tuple(x.shape)}, ranks {tuple(ranks)}"
        )
    noisy, clean = x_noisy.reshape(len(x), -1).float(), x.reshape(len(x), -1).float()
    a, b = noisy.mean(0), clean.mean(0)  # (P,), (P,)
    noisy, clean = noisy - a, clean - b
    # the two (P, P) products of the centred data in one float32 matmul (the bulk of the
    # time); the solve and the eigendecomposition in float64
    products = (noisy.T @ torch.cat([noisy, clean], dim=1)).double()  # (P, 2P)
    gram, cross = products.split(len(products), dim=1)  # noisy.T noisy, noisy.T clean
    # least squares, with a ridge of 1e-6 of the mean variance for pixels that never vary
    ridge = 1e-6 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    coefficients = torch.linalg.solve(gram + ridge, cross)  # (P, P)
    # top principal directions of the fitted values noisy @ coefficients, from their
    # (P, P) scatter matrix, without forming the (N, P) fitted values
    _, vectors = torch.linalg.eigh(coefficients.T @ gram @ coefficients)  # ascending
    fits = {}
    for rank in ranks:
        directions = vectors[:, -rank:].flip(1)  # (P, rank), largest first
        w_enc, w_dec = coefficients @ directions, directions.T
        fits[rank] = (a.float(), b.float(), w_enc.float(), w_dec.float().contiguous())
    return fits


def linear_denoise(x_noisy: Tensor, a: Tensor, b: Tensor, w_enc: Tensor, w_dec: Tensor) -> Tensor:
    """x_hat = b + (x_noisy - a) W_enc W_dec for images x_noisy (N, C, H, W)."""
    flat = x_noisy.reshape(len(x_noisy), -1) - a
    return (flat @ w_enc @ w_dec + b).reshape(x_noisy.shape)
