"""Checks of chapter 3's exercises (notebooks/03_denoising.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import Tensor, nn

from aecourse import evaluate, metrics
from aecourse.exercises.core import (
    Answer,
    Wrong,
    call,
    expect,
    expect_close,
    generator,
    register,
)
from aecourse.models import AE, DAE, DAEConfig
from aecourse.models.pca import pca, pca_reconstruct
from aecourse.pretrained import load_pretrained

SHAPE = (1, 28, 28)


# --- ex-dae-clean: what a nonlinear code gains over PCA of its width ------------------


def gain_over_pca_reference(model: nn.Module, x: Tensor, mean: Tensor, directions: Tensor) -> float:
    """The model's reconstruction PSNR on x minus PCA's with as many directions as the
    model has latent numbers, in dB."""
    m = model.config.latent_dim
    linear = metrics.psnr(pca_reconstruct(x, mean, directions[:m]), x)
    return evaluate.reconstruction_psnr(model, x) - linear


def _test_gain_over_pca(gain_over_pca: Callable[..., float]) -> None:
    g = generator(9)
    x = torch.rand(200, *SHAPE, generator=g).pow(3)  # mostly dark, as the data are
    mean, directions, _ = pca(x, k=x[0].numel())
    for name in ("ae", "dae"):
        model = load_pretrained(name)
        m = model.config.latent_dim
        got = call(
            "gain_over_pca", gain_over_pca, model, x[:64], mean, directions,
            shown=f"{name}, x, mean, directions",
        )
        own = evaluate.reconstruction_psnr(model, x[:64])

        def pca_psnr(k: int) -> float:
            return metrics.psnr(pca_reconstruct(x[:64], mean, directions[:k]), x[:64])

        other = 64 if m != 64 else 16
        expect_close(
            f"gain_over_pca({name}, ...)",
            got,
            gain_over_pca_reference(model, x[:64], mean, directions),
            mistakes={
                f"PCA with {other} directions; use the model's own latent_dim ({m})":
                    own - pca_psnr(other),
                "PCA with all the directions: keep the first latent_dim":
                    own - pca_psnr(len(directions)),
            },
            rtol=1e-3,
            atol=1e-3,
        )


# --- ex-dae-keep-visible: keep the pixels that masking left -------------------------


def keep_visible_reference(x_masked: Tensor, x_hat: Tensor) -> Tensor:
    """The masked image's non-zero pixels, the DAE's output x_hat in the holes."""
    return torch.where(x_masked > 0, x_masked, x_hat)


def _test_keep_visible(keep_visible: Callable[[Tensor, Tensor], Tensor]) -> None:
    g = generator(10)
    x = torch.rand(4, *SHAPE, generator=g) * 0.9 + 0.1
    keep = torch.rand(x.shape, generator=g) > 0.5
    x_masked = x * keep
    x_hat = torch.rand(x.shape, generator=g)
    got = call("keep_visible", keep_visible, x_masked, x_hat, shown="x_masked, x_hat")
    expect_close(
        "keep_visible(x_masked, x_hat)",
        got,
        keep_visible_reference(x_masked, x_hat),
        mistakes={
            "the output x_hat is kept where pixels are known and the holes stay "
            "empty: the other way round": torch.where(x_masked > 0, x_hat, x_masked),
            "the output is added to the masked image; take one or the other": x_masked + x_hat,
            "only the DAE's output: keep the known pixels": x_hat,
        },
        within=(0, 1),
    )


# --- ex-dae-finetune: the plain autoencoder's weights in a DAE -----------------------


def dae_from_ae_reference(ae: AE) -> DAE:
    """A DAE with the configuration and a copy of the weights of the autoencoder ae."""
    student = DAE(DAEConfig(**asdict(ae.config))).to(next(ae.parameters()).device)
    student.load_state_dict(ae.state_dict())
    return student


def _test_dae_from_ae(dae_from_ae: Callable[[AE], DAE]) -> None:
    ae = load_pretrained("ae")
    student = call("dae_from_ae", dae_from_ae, ae, shown="ae")
    expect(
        isinstance(student, DAE),
        f"dae_from_ae returns a {type(student).__name__}, expected a DAE "
        "(aecourse.models.DAE)",
    )
    expect(student is not ae, "dae_from_ae returns ae itself: build a new DAE")
    for field, value in asdict(ae.config).items():
        expect(
            getattr(student.config, field, None) == value,
            f"the DAE's config has {field} = {getattr(student.config, field, None)!r}, "
            f"ae's has {value!r}: give it ae's configuration",
        )
    ae_params = {p.data_ptr() for p in ae.parameters()}
    expect(
        not any(p.data_ptr() in ae_params for p in student.parameters()),
        "the DAE shares its weights with ae, so fine-tuning it would change ae too: "
        "copy them (load_state_dict)",
    )
    x = torch.rand(4, *SHAPE, generator=generator(11))
    try:
        with torch.no_grad():  # on the DAE's device, wherever the student put it
            device = next(student.parameters()).device
            got = student.eval()(x.to(device)).x_hat.cpu()
    except Exception as error:
        raise Wrong(f"the DAE fails on images: {error}") from error
    with torch.no_grad():
        expected = ae(x).x_hat
    expect(
        torch.allclose(got, expected, atol=1e-5),
        "the DAE's reconstructions differ from ae's: load ae's weights into it "
        "(load_state_dict)",
    )


register(
    "ex-dae-clean",
    Answer("gain_over_pca", gain_over_pca_reference, _test_gain_over_pca),
)
register(
    "ex-dae-keep-visible",
    Answer("keep_visible", keep_visible_reference, _test_keep_visible),
)
register(
    "ex-dae-finetune",
    Answer("dae_from_ae", dae_from_ae_reference, _test_dae_from_ae),
)
