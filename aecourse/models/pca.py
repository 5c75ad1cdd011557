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
    variance of every component (min(N, P),), where P = C * H * W.
    """
    flat = x.reshape(len(x), -1).double()
    mean = flat.mean(0)
    _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    variance = s**2 / (len(x) - 1)
    return mean.float(), vh[:k].float(), variance.float()


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
