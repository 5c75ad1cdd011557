"""Checks of chapter 1's exercises (notebooks/01_manifold.md)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from aecourse import metrics
from aecourse.exercises.core import Answer, call, expect_close, generator, register
from aecourse.models.pca import pca, pca_reconstruct

SHAPE = (1, 28, 28)  # Fashion-MNIST's (C, H, W)


def _images(n: int, seed: int) -> Tensor:
    """Images with structure (a few smooth patterns plus noise) in [0, 1]: (n, C, H, W)."""
    g = generator(seed)
    patterns = torch.rand(6, *SHAPE, generator=g)
    weights = torch.rand(n, 6, generator=g)
    mix = torch.einsum("nk,kchw->nchw", weights, patterns) / 3
    return (mix + 0.1 * torch.rand(n, *SHAPE, generator=g)).clamp(0, 1)


# --- ex-manifold-eigenimages: an image built up direction by direction ---------------


def build_up_reference(image: Tensor, mean: Tensor, directions: Tensor, k: int) -> Tensor:
    """mu + sum_{j <= k} (u_j^T (x - mu)) u_j for one image (C, H, W): (C, H, W)."""
    if k == 0:
        return mean.reshape(image.shape)
    return pca_reconstruct(image[None], mean, directions[:k])[0]


def _test_build_up(build_up: Callable[..., Tensor]) -> None:
    x = _images(300, seed=1)
    mean, directions, _ = pca(x, k=x[0].numel())
    image = x[0]
    for k in (0, 1, 3, 16):
        got = call(
            "build_up", build_up, image, mean, directions, k,
            shown=f"image, mean, directions, k={k}",
        )
        flat_x, u = image.flatten(), directions[:k]
        coords = u @ (flat_x - mean)  # (k,)
        expect_close(
            f"build_up(..., k={k})",
            got,
            build_up_reference(image, mean, directions, k),
            mistakes={
                "the mean image mu is not added back": coords @ u,
                "x is not centred: subtract mu before projecting": mean + (u @ flat_x) @ u,
                "the first k columns of `directions` are used; its rows are u_1, u_2, ...":
                    mean + directions[:, :k] @ (directions[:, :k].T @ (flat_x - mean)),
            },
            rtol=1e-3,
            atol=1e-4,
        )


# --- ex-manifold-noise: the explained-variance curve ----------------------------------


def explained_fraction_reference(images: Tensor) -> Tensor:
    """The fraction of the variance explained by the first l directions, l = 1..P: (P,)."""
    _, _, variance = pca(images, k=1)
    return variance.cumsum(0) / variance.sum()


def _test_explained_fraction(explained_fraction: Callable[[Tensor], Tensor]) -> None:
    images = torch.rand(2000, *SHAPE, generator=generator(2))
    got = call("explained_fraction", explained_fraction, images, shown="images")
    _, _, variance = pca(images, k=1)
    expect_close(
        "explained_fraction(images)",
        got,
        explained_fraction_reference(images),
        mistakes={
            "each direction's own share, not the cumulative fraction (cumsum)":
                variance / variance.sum(),
            "the cumulative variance is not divided by the total variance": variance.cumsum(0),
            "standard deviations are summed; the variance is their square":
                variance.sqrt().cumsum(0) / variance.sqrt().sum(),
        },
        within=(0, 1),
        rtol=1e-3,
        atol=1e-4,
    )


# --- ex-manifold-double-exposure: averages of two images ------------------------------


def double_exposure_reference(x: Tensor, pairs: Tensor) -> Tensor:
    """(x + x[pairs]) / 2 for images x (N, C, H, W) and an index permutation pairs (N,)."""
    return (x + x[pairs]) / 2


def psnr_gain_reference(
    reconstruct: Callable[[Tensor], Tensor], x: Tensor, averages: Tensor
) -> float:
    """PSNR on the averages minus PSNR on the images x, in dB (positive: averages easier)."""
    return metrics.psnr(reconstruct(averages), averages) - metrics.psnr(reconstruct(x), x)


def _test_double_exposure(double_exposure: Callable[..., Tensor]) -> None:
    x = _images(50, seed=3)
    pairs = torch.randperm(50, generator=generator(3))
    got = call("double_exposure", double_exposure, x, pairs, shown="x, pairs")
    expect_close(
        "double_exposure(x, pairs)",
        got,
        double_exposure_reference(x, pairs),
        mistakes={
            "the sum of the two images, not their average (divide by 2)": x + x[pairs],
            "the images are averaged with themselves: use x[pairs] as the second": x,
        },
        within=(0, 1),
    )


def _test_psnr_gain(psnr_gain: Callable[..., float]) -> None:
    x = _images(300, seed=4)
    mean, directions, _ = pca(x, k=4)
    averages = double_exposure_reference(x[:50], torch.randperm(50, generator=generator(4)))

    def reconstruct(images: Tensor) -> Tensor:  # PCA-4 of these images
        return pca_reconstruct(images, mean, directions)

    got = call(
        "psnr_gain", psnr_gain, reconstruct, x[:50], averages,
        shown="reconstruct, x, averages",
    )
    expect_close(
        "psnr_gain(reconstruct, x, averages)",
        got,
        psnr_gain_reference(reconstruct, x[:50], averages),
        mistakes={
            "the reconstructions of the averages are compared with x; compare them "
            "with the averages": metrics.psnr(reconstruct(averages), x[:50])
            - metrics.psnr(reconstruct(x[:50]), x[:50]),
        },
        rtol=1e-3,
        atol=1e-3,
    )


register(
    "ex-manifold-eigenimages",
    Answer("build_up", build_up_reference, _test_build_up),
)
register(
    "ex-manifold-noise",
    Answer("explained_fraction", explained_fraction_reference, _test_explained_fraction),
)
register(
    "ex-manifold-double-exposure",
    Answer("double_exposure", double_exposure_reference, _test_double_exposure),
    Answer("psnr_gain", psnr_gain_reference, _test_psnr_gain),
)
