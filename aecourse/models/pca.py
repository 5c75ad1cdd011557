"""PCA, the linear autoencoder's closed-form optimum (Baldi & Hornik 1989).

A linear AE trained with squared error spans the same subspace as the top principal
components; the course checks that numerically with these helpers.
"""

from __future__ import annotations

import math

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
