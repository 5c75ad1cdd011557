"""Checks of chapter 6's exercises (notebooks/06_comparison.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from aecourse import evaluate, losses, metrics
from aecourse.exercises.core import (
    LN2,
    Answer,
    call,
    expect,
    expect_close,
    generator,
    register,
)
from aecourse.models import Classifier
from aecourse.pretrained import load_pretrained

SHAPE = (1, 28, 28)


# --- ex-cmp-interpolate: straight lines between codes, and how far they stray --------


def line_reference(z0: Tensor, z1: Tensor, n: int) -> Tensor:
    """n evenly spaced points from z0 to z1, both included: (n, *z0.shape)."""
    t = torch.linspace(0, 1, n, device=z0.device, dtype=z0.dtype)
    t = t.reshape(n, *([1] * z0.dim()))
    return (1 - t) * z0 + t * z1


def distance_to_data_reference(frames: Tensor, data_flat: Tensor) -> float:
    """The mean over the frames (N, C, H, W) of the Euclidean distance to the nearest
    row of data_flat (M, P)."""
    return torch.cdist(frames.flatten(1), data_flat).min(1).values.mean().item()


def _test_line(line: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    g = generator(21)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    got = call("line", line, z0, z1, 10, shown="z0, z1, 10")
    t = torch.linspace(0, 1, 12)[1:-1, None]
    expect_close(
        "line(z0, z1, 10)",
        got,
        line_reference(z0, z1, 10),
        mistakes={
            "the line runs from z1 to z0: start at z0": line_reference(z1, z0, 10),
            "the end points z0 and z1 are left out: include both": (1 - t) * z0 + t * z1,
        },
        rtol=1e-4,
        atol=1e-5,
    )


def _test_distance_to_data(distance_to_data: Callable[[Tensor, Tensor], float]) -> None:
    g = generator(22)
    frames = torch.rand(8, *SHAPE, generator=g)
    data_flat = torch.rand(100, frames[0].numel(), generator=g)
    got = call("distance_to_data", distance_to_data, frames, data_flat, shown="frames, data_flat")
    distances = torch.cdist(frames.flatten(1), data_flat)
    expect_close(
        "distance_to_data(frames, data_flat)",
        got,
        distance_to_data_reference(frames, data_flat),
        mistakes={
            "squared distances: take the square root": distances.min(1).values.pow(2).mean(),
            "the mean distance to all the data, not to the nearest image": distances.mean(),
        },
        within=(0, float("inf")),
        rtol=1e-4,
    )


# --- ex-cmp-rate: bits and quantised codes -------------------------------------------


def quantise_8bit_reference(z: Tensor) -> Tensor:
    """Codes z (N, m) with each dimension rounded to one of 256 evenly spaced levels
    from its smallest to its largest value over the N codes: (N, m)."""
    low, high = z.min(0).values, z.max(0).values
    step = (high - low) / 255
    return low + torch.round((z - low) / step) * step


def kl_bits_reference(mu: Tensor, logvar: Tensor) -> float:
    """The mean KL term of a VAE's code, in bits per image, from mu and logvar (N, J)."""
    return losses.gaussian_kl(mu, logvar).mean().item() / LN2


def _test_quantise_8bit(quantise_8bit: Callable[[Tensor], Tensor]) -> None:
    g = generator(23)
    z = torch.randn(300, 16, generator=g) * torch.linspace(0.5, 4, 16) + torch.linspace(-2, 2, 16)
    got = call("quantise_8bit", quantise_8bit, z, shown="z")
    low, high = z.min(), z.max()
    step = (high - low) / 255
    expect_close(
        "quantise_8bit(z)",
        got,
        quantise_8bit_reference(z),
        mistakes={
            "one range for all dimensions: use each dimension's own smallest and "
            "largest value": low + torch.round((z - low) / step) * step,
            "256 steps give 257 levels: divide the range by 255": (
                z.min(0).values
                + torch.round((z - z.min(0).values) / ((z.max(0).values - z.min(0).values) / 256))
                * (z.max(0).values - z.min(0).values) / 256
            ),
            "the levels are numbered 0..255, not turned back into code values": torch.round(
                (z - z.min(0).values) / ((z.max(0).values - z.min(0).values) / 255)
            ),
            "rounded down (floor): round to the nearest level": z.min(0).values
            + torch.floor((z - z.min(0).values) / ((z.max(0).values - z.min(0).values) / 255))
            * ((z.max(0).values - z.min(0).values) / 255),
        },
        rtol=1e-5,
        atol=1e-4,
    )
    levels = [len(torch.unique(column)) for column in got.T]
    expect(all(n <= 256 for n in levels), "some dimension has more than 256 levels")


def _test_kl_bits(kl_bits: Callable[[Tensor, Tensor], float]) -> None:
    g = generator(24)
    mu = torch.randn(50, 16, generator=g)
    logvar = torch.randn(50, 16, generator=g) * 0.5 - 1
    got = call("kl_bits", kl_bits, mu, logvar, shown="mu, logvar")
    expected = kl_bits_reference(mu, logvar)
    expect_close(
        "kl_bits(mu, logvar)",
        got,
        expected,
        mistakes={
            "nats, not bits: divide by ln 2": expected * LN2,
            "summed over the images: average over them": expected * len(mu),
            "log2 of the KL, not the KL in bits": torch.tensor(expected * LN2).log2(),
        },
        within=(0, float("inf")),
        rtol=1e-4,
    )


# --- ex-cmp-fd-size: the Frechet distance at several sample sizes --------------------


def fd_by_size_reference(
    classifier: Classifier, images: Tensor, reference: Tensor, sizes: Sequence[int]
) -> list[float]:
    """The Frechet distance of the first n images to the reference features, for each n
    in sizes."""
    return [evaluate.sample_fid(classifier, images[:n], reference) for n in sizes]


def _test_fd_by_size(fd_by_size: Callable[..., Sequence[float]]) -> None:
    classifier = load_pretrained("classifier")
    g = generator(25)
    images = torch.rand(48, *SHAPE, generator=g).pow(3)
    reference = metrics.classifier_features(classifier, torch.rand(64, *SHAPE, generator=g))
    sizes = (16, 48)
    got = call(
        "fd_by_size", fd_by_size, classifier, images, reference, sizes,
        shown="classifier, images, reference, (16, 48)",
    )
    expected = fd_by_size_reference(classifier, images, reference, sizes)
    expect_close(
        "fd_by_size(classifier, images, reference, (16, 48))",
        torch.as_tensor(list(got), dtype=torch.float64) if isinstance(got, Sequence) else got,
        expected,
        mistakes={
            "all the images for every n: take the first n": [
                evaluate.sample_fid(classifier, images, reference) for n in sizes
            ],
            "the last n images, not the first n": [
                evaluate.sample_fid(classifier, images[-n:], reference) for n in sizes
            ],
        },
        within=(0, float("inf")),
        rtol=1e-3,
        atol=1e-3,
    )


register(
    "ex-cmp-interpolate",
    Answer("line", line_reference, _test_line),
    Answer("distance_to_data", distance_to_data_reference, _test_distance_to_data),
)
register(
    "ex-cmp-rate",
    Answer("quantise_8bit", quantise_8bit_reference, _test_quantise_8bit),
    Answer("kl_bits", kl_bits_reference, _test_kl_bits),
)
register(
    "ex-cmp-fd-size",
    Answer("fd_by_size", fd_by_size_reference, _test_fd_by_size),
)
