"""Checks of chapter 2's exercises (notebooks/02_autoencoder.md)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from aecourse.exercises.core import (
    Answer,
    Wrong,
    call,
    expect,
    expect_close,
    generator,
    register,
)
from aecourse.models import AE, SAE, top_k_code
from aecourse.pretrained import load_pretrained

SHAPE = (1, 28, 28)


# --- ex-ae-linear-symmetry: the same linear AE in another latent basis ---------------


def change_basis_reference(model: AE, R: Tensor) -> AE:
    """A copy of the linear AE `model` with encoder R E (bias R b) and decoder W R^{-1}."""
    mixed = copy.deepcopy(model)
    encoder, decoder = mixed.encoder[1], mixed.decoder[0]
    with torch.no_grad():
        encoder.weight.copy_(R @ encoder.weight)
        encoder.bias.copy_(R @ encoder.bias)
        decoder.weight.copy_(decoder.weight @ torch.linalg.inv(R))
    return mixed


def _test_change_basis(change_basis: Callable[[AE, Tensor], AE]) -> None:
    model = load_pretrained("ae-linear")
    m = model.config.latent_dim
    R = torch.randn(m, m, generator=generator(5)) + 3 * torch.eye(m)
    x = torch.rand(8, *SHAPE, generator=generator(6))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model(x)
    mixed = call("change_basis", change_basis, model, R, shown="model, R")
    expect(
        all(torch.equal(before[k], v) for k, v in model.state_dict().items()),
        "change_basis changed the model it was given: change a copy (copy.deepcopy)",
    )
    expect(
        isinstance(mixed, nn.Module),
        f"change_basis returns a {type(mixed).__name__}, expected a model (an AE)",
    )
    try:
        with torch.no_grad():
            out_mixed = mixed(x)
    except Exception as error:
        raise Wrong(f"the model change_basis returns fails on images: {error}") from error
    encoder = model.encoder[1]
    expect_close(
        "the new model's codes",
        out_mixed.z,
        out.z @ R.T,
        mistakes={
            "the encoder's bias is not mixed: it must become R b": (
                (out.z - encoder.bias) @ R.T + encoder.bias
            ).detach(),
            "the codes are unchanged: the encoder must become R E": out.z,
            "the codes are multiplied by R^T, not R: E -> R E": out.z @ R,
        },
        rtol=1e-3,
        atol=1e-3,
    )
    expect_close(
        "the new model's reconstructions",
        out_mixed.x_hat,
        out.x_hat,
        rtol=1e-3,
        atol=1e-3,
        mistakes={
            "the decoder does not undo R: its weight must become W R^{-1}":
                model.decoder(out.z @ R.T).detach(),
        },
    )


# --- ex-ae-empty-box: random latent vectors among the codes --------------------------


def _nearest(queries: Tensor, codes: Tensor, exclude_self: bool = False) -> Tensor:
    distances = torch.cdist(queries, codes)
    if exclude_self:
        distances.fill_diagonal_(float("inf"))
    return distances.min(dim=1).values


def share_among_codes_reference(latents: Tensor, codes: Tensor) -> float:
    """The fraction of latents (Q, m) whose nearest code (of codes (N, m)) is no further
    than 95 % of the codes are from their own nearest other code."""
    threshold = _nearest(codes, codes, exclude_self=True).quantile(0.95)
    return (_nearest(latents, codes) <= threshold).double().mean().item()


def _test_share_among_codes(share_among_codes: Callable[[Tensor, Tensor], float]) -> None:
    g = generator(7)
    for m in (2, 16):
        codes = torch.randn(400, m, generator=g)
        latents = 6 * torch.rand(300, m, generator=g) - 3
        got = call("share_among_codes", share_among_codes, latents, codes, shown="latents, codes")
        expected = share_among_codes_reference(latents, codes)
        neighbour = _nearest(codes, codes, exclude_self=True)
        nearest = _nearest(latents, codes)
        expect_close(
            f"share_among_codes(latents, codes) with {m}-D codes",
            got,
            expected,
            mistakes={
                "a count, not a fraction": expected * len(latents),
                "the threshold counts each code as its own nearest neighbour "
                "(distance 0): leave the code itself out": (nearest <= 0).double().mean(),
                "the threshold is the 5 % quantile; take the 95 % one":
                    (nearest <= neighbour.quantile(0.05)).double().mean(),
            },
            within=(0, 1),
            atol=1e-3,
        )


# --- ex-ae-not-clothes: how far from the data an input's code lies --------------------


def nearest_code_distance_reference(model: AE, images: Tensor, codes: Tensor) -> Tensor:
    """The distance from the code of each image (N, C, H, W) to its nearest code in
    codes (M, latent_dim): (N,)."""
    with torch.no_grad():
        z = model.encode(images)  # (N, latent_dim)
    return torch.cdist(z, codes).min(dim=1).values


def _test_nearest_code_distance(nearest_code_distance: Callable[..., Tensor]) -> None:
    model = load_pretrained("ae")
    g = generator(8)
    images = torch.rand(6, *SHAPE, generator=g)
    with torch.no_grad():
        codes = model.encode(torch.rand(40, *SHAPE, generator=g))
        z = model.encode(images)
    got = call(
        "nearest_code_distance", nearest_code_distance, model, images, codes,
        shown="model, images, codes",
    )
    distances = torch.cdist(z, codes)
    expect_close(
        "nearest_code_distance(model, images, codes)",
        got,
        nearest_code_distance_reference(model, images, codes),
        mistakes={
            "the mean distance to the codes, not the nearest one (min)": distances.mean(1),
            "squared distances: take the square root (torch.cdist does)":
                distances.min(1).values ** 2,
            "the distance to the furthest code, not the nearest (min)": distances.max(1).values,
        },
        within=(0, float("inf")),
        rtol=1e-3,
        atol=1e-4,
    )


# --- ex-ae-sae-budget: fewer dictionary features per image -----------------------------


def reconstruct_with_reference(sae: SAE, h: Tensor, s: int) -> Tensor:
    """The features h (B, n) rebuilt from the s largest entries of their sparse code."""
    with torch.no_grad():
        return sae.decode(top_k_code(sae.encode(h), s))


def _test_reconstruct_with(reconstruct_with: Callable[[SAE, Tensor, int], Tensor]) -> None:
    sae = load_pretrained("sae")
    n = sae.config.input_dim
    # positive, on the scale of the classifier's features
    h = 3 * torch.rand(6, n, generator=generator(9))
    with torch.no_grad():
        z = sae.encode(h)  # (6, F)
        atoms, bias = sae.dictionary, sae.decoder.bias
    for s in (1, 5):
        got = call("reconstruct_with", reconstruct_with, sae, h, s, shown=f"sae, h, s={s}")
        kept = top_k_code(z, s)
        first = torch.zeros_like(z)
        first[:, :s] = z[:, :s]
        expect_close(
            f"reconstruct_with(sae, h, s={s})",
            got,
            reconstruct_with_reference(sae, h, s),
            mistakes={
                "the decoder's bias b_dec is left out: decode with sae.decode(z)":
                    (kept @ atoms.T).detach(),
                "every active feature is kept: keep only the s largest of each code": sae.decode(z).detach(),
                "the first s features are kept, not the s largest (topk)": sae.decode(first).detach(),
            },
            rtol=1e-4,
            atol=1e-4,
        )


register(
    "ex-ae-linear-symmetry",
    Answer("change_basis", change_basis_reference, _test_change_basis),
)
register(
    "ex-ae-empty-box",
    Answer("share_among_codes", share_among_codes_reference, _test_share_among_codes),
)
register(
    "ex-ae-not-clothes",
    Answer(
        "nearest_code_distance",
        nearest_code_distance_reference,
        _test_nearest_code_distance,
    ),
)
register(
    "ex-ae-sae-budget",
    Answer("reconstruct_with", reconstruct_with_reference, _test_reconstruct_with),
)
