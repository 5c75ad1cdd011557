"""Checks of chapter 4's exercises (notebooks/04_vae.md)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from aecourse import losses
from aecourse.exercises.core import (
    Answer,
    call,
    expect,
    expect_close,
    generator,
    register,
)
from aecourse.models import VAE, Classifier
from aecourse.pretrained import load_pretrained

SHAPE = (1, 28, 28)


# --- ex-vae-beta: the two terms of the negative ELBO -------------------------------


def elbo_terms_reference(
    model: VAE, x_binary: Tensor, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """The reconstruction term -log p(x | z) and the KL term of the negative ELBO, in
    nats per image, averaged over the binarised images x_binary (N, C, H, W), with one
    z ~ q(z | x) per image drawn with `generator`."""
    with torch.no_grad():
        out = model(x_binary, generator)
    recon = losses.bernoulli_nll(out.logits, x_binary).mean().item()
    return recon, losses.gaussian_kl(out.mu, out.logvar).mean().item()


def _test_elbo_terms(elbo_terms: Callable[..., tuple[float, float]]) -> None:
    model = load_pretrained("vae-mlp")
    g = generator(12)
    x_binary = torch.bernoulli(torch.rand(32, *SHAPE, generator=g).pow(2), generator=g)
    got = call(
        "elbo_terms", elbo_terms, model, x_binary, generator(13),
        shown="model, x_binary, generator",
    )
    expect(
        isinstance(got, tuple | list) and len(got) == 2,
        f"elbo_terms returns {type(got).__name__}, expected a pair (recon, kl)",
    )
    recon, kl = elbo_terms_reference(model, x_binary, generator(13))
    with torch.no_grad():
        out = model(x_binary, generator(13))
        probs = torch.sigmoid(out.logits)
    expect_close(
        "the reconstruction term of elbo_terms",
        got[0],
        recon,
        mistakes={
            "summed over the images: average over them": recon * len(x_binary),
            "bernoulli_nll was given probabilities; it takes the logits (out.logits)":
                losses.bernoulli_nll(probs, x_binary).mean(),
            "a mean squared error, not the Bernoulli negative log-likelihood":
                losses.mse(probs, x_binary),
        },
        within=(0, float("inf")),
        rtol=1e-3,
    )
    expect_close(
        "the KL term of elbo_terms",
        got[1],
        kl,
        mistakes={"summed over the images: average over them": kl * len(x_binary)},
        within=(0, float("inf")),
        rtol=1e-3,
    )


# --- ex-vae-aggregate: the law of total variance -------------------------------------


def total_variance_reference(mu: Tensor, logvar: Tensor) -> Tensor:
    """Var_x[mu_j(x)] + E_x[sigma_j^2(x)] of each unit, from the encoder's outputs mu and
    logvar (N, latent_dim): (latent_dim,)."""
    return mu.var(0) + logvar.exp().mean(0)


def _test_total_variance(total_variance: Callable[[Tensor, Tensor], Tensor]) -> None:
    g = generator(13)
    scale = torch.linspace(0.1, 1.5, 8)
    mu = torch.randn(2000, 8, generator=g) * scale
    logvar = torch.randn(2000, 8, generator=g) * 0.3 + torch.linspace(-3, 0, 8)
    got = call("total_variance", total_variance, mu, logvar, shown="mu, logvar")
    expect_close(
        "total_variance(mu, logvar)",
        got,
        total_variance_reference(mu, logvar),
        mistakes={
            "logvar is log sigma^2: take exp(logvar) for sigma^2": mu.var(0) + logvar.mean(0),
            "only Var[mu]: add the mean of sigma^2": mu.var(0),
            "only E[sigma^2]: add the variance of mu": logvar.exp().mean(0),
            "the mean of sigma, not of sigma^2": mu.var(0) + (logvar / 2).exp().mean(0),
            "the standard deviation of mu, not its variance": mu.std(0) + logvar.exp().mean(0),
        },
        within=(0, float("inf")),
        rtol=5e-3,  # divides by N or N - 1, either is fine
    )


# --- ex-vae-temperature: decoding scaled prior draws ---------------------------------


def samples_at_reference(model: VAE, eps: Tensor, t: float) -> Tensor:
    """The decoded images, as probabilities in [0, 1], of z = t * eps: (N, C, H, W)."""
    with torch.no_grad():
        return model.decode_images(t * eps)


def pixel_spread_reference(images: Tensor) -> float:
    """Each pixel's standard deviation across the images (N, C, H, W), averaged over
    the pixels."""
    return images.std(0).mean().item()


def _test_samples_at(samples_at: Callable[[VAE, Tensor, float], Tensor]) -> None:
    model = load_pretrained("vae")
    eps = torch.randn(6, model.config.latent_dim, generator=generator(14))
    t = 1.5
    got = call("samples_at", samples_at, model, eps, t, shown="model, eps, t=1.5")
    with torch.no_grad():
        logits = model.decode(t * eps)
        expected = samples_at_reference(model, eps, t)
        mistakes = {
            "logits, not images: decode to probabilities (model.decode_images)": logits,
            "z = eps / t; the temperature multiplies: z = t * eps":
                model.decode_images(eps / t),
            "z = eps: the temperature t is not applied": model.decode_images(eps),
            "z = t^2 eps: t scales the standard deviation, not the variance":
                model.decode_images(t**2 * eps),
        }
    expect_close(
        "samples_at(model, eps, t=1.5)",
        got,
        expected,
        mistakes=mistakes,
        within=(0, 1),
        rtol=1e-3,
        atol=1e-4,
    )


def _test_pixel_spread(pixel_spread: Callable[[Tensor], float]) -> None:
    images = torch.rand(20, *SHAPE, generator=generator(15)).pow(2)
    got = call("pixel_spread", pixel_spread, images, shown="images")
    expect_close(
        "pixel_spread(images)",
        got,
        pixel_spread_reference(images),
        mistakes={
            "the spread within each image, not across the samples (dim 0)":
                images.flatten(1).std(1).mean(),
            "a variance: take the standard deviation": images.var(0).mean(),
            "the spread of all the values at once; take each pixel's across the "
            "samples, then the mean": images.std(),
        },
        rtol=1e-3,
        atol=1e-4,
    )


# --- ex-vae-free-bits: a floor on each dimension's KL -----------------------------


def free_bits_kl_reference(mu: Tensor, logvar: Tensor, floor: float) -> Tensor:
    """The free-bits KL term: each latent dimension's KL from N(0, 1), averaged over the
    batch, counted as at least `floor` nats, summed over the dimensions; mu and logvar
    (B, latent_dim). A scalar."""
    return losses.free_bits_kl(mu, logvar, floor)


def _test_free_bits_kl(free_bits_kl: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    g = generator(16)
    # three dimensions well above a floor of 0.5 nats, three below it
    scale = torch.tensor([2.0, 1.5, 1.2, 0.3, 0.2, 0.1])
    mu = torch.randn(64, 6, generator=g) * scale
    logvar = torch.randn(64, 6, generator=g) * 0.2 - 0.1
    floor = 0.5
    got = call(
        "free_bits_kl", free_bits_kl, mu, logvar, floor, shown="mu, logvar, floor=0.5"
    )
    per_image = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())  # (B, m)
    expect_close(
        "free_bits_kl(mu, logvar, floor=0.5)",
        got,
        free_bits_kl_reference(mu, logvar, floor),
        mistakes={
            "the floor applies to each image's KL of a dimension; average over the batch "
            "first, then take the maximum": per_image.clamp(min=floor).sum(1).mean(),
            "the floor applies to the total KL; it belongs to each dimension":
                per_image.sum(1).mean().clamp(min=floor),
            "min instead of max: a dimension counts as at least the floor":
                per_image.mean(0).clamp(max=floor).sum(),
            "summed over the images: average over them":
                per_image.sum(0).clamp(min=floor).sum(),
            "the plain KL: no floor applied": per_image.sum(1).mean(),
        },
        within=(0, float("inf")),
        rtol=1e-4,
        atol=1e-5,
    )


# --- ex-vae-sigma-fit: the noise level a Gaussian decoder earns -------------------


def best_sigma_reference(
    model: VAE, x: Tensor, generator: torch.Generator | None = None
) -> float:
    """The sigma_dec that maximises the one-sample ELBO of the grey images x (N, C, H, W)
    under `model`'s Gaussian decoder, encoder and decoder fixed: the root mean square of
    x - x_hat(z) over the images and pixels, with one z ~ q(z | x) per image drawn with
    `generator` (chapter 4's exercise ex-vae-best-sigma)."""
    with torch.no_grad():
        out = model(x, generator)
    return (x - out.x_hat).pow(2).mean().sqrt().item()


def _test_best_sigma(best_sigma: Callable[..., float]) -> None:
    model = load_pretrained("vae-gauss-1.0")  # wide posteriors: a sample is not the mean
    x = torch.rand(32, *SHAPE, generator=generator(17)).pow(2)
    got = call(
        "best_sigma", best_sigma, model, x, generator(18), shown="model, x, generator"
    )
    with torch.no_grad():
        squared = (x - model(x, generator(18)).x_hat).pow(2)
        at_mean = (x - model.reconstruct(x)).pow(2)
    expect_close(
        "best_sigma(model, x, generator)",
        got,
        best_sigma_reference(model, x, generator(18)),
        mistakes={
            "a variance: sigma_dec is its square root": squared.mean(),
            "summed over the pixels: the optimum divides by their number P":
                squared.flatten(1).sum(1).mean().sqrt(),
            "the reconstruction of mu; the ELBO decodes a sample z ~ q(z | x) "
            "(model(x, generator))": at_mean.mean().sqrt(),
            "the decoder's own sigma_dec, not the one the images call for":
                model.config.sigma_dec,
            "the mean absolute error: sigma_dec is a root mean square":
                squared.sqrt().mean(),
        },
        within=(0, 1),
        rtol=1e-4,
        atol=1e-5,
    )


# --- ex-vae-cvae-classes: does a sample of class y look like a y? -------------------


def class_agreement_reference(model: VAE, classifier: Classifier, eps: Tensor) -> Tensor:
    """For each class c of the conditional VAE `model`, the fraction of the images decoded
    from the latents eps (N, latent_dim) with the label c that `classifier` assigns to c:
    (num_classes,) in [0, 1]."""
    rates = []
    with torch.no_grad():
        for c in range(model.config.num_classes):
            y = torch.full((len(eps),), c, device=eps.device)
            predicted = classifier(model.decode_images(eps, y=y)).argmax(1)
            rates.append((predicted == c).double().mean())
    return torch.stack(rates)


def _test_class_agreement(class_agreement: Callable[[VAE, Classifier, Tensor], Tensor]) -> None:
    model, classifier = load_pretrained("cvae-mlp-16"), load_pretrained("classifier")
    eps = torch.randn(40, model.config.latent_dim, generator=generator(17))
    got = call("class_agreement", class_agreement, model, classifier, eps,
               shown="model, classifier, eps")
    n = model.config.num_classes
    with torch.no_grad():
        predicted = torch.stack([  # (n, 40) the class given to each sample of class c
            classifier(model.decode_images(eps, y=torch.full((40,), c))).argmax(1) for c in range(n)
        ])
    # (classifying model.decode's logits fails in the classifier's input check,
    # which names images in [0, 1])
    hits = predicted == torch.arange(n)[:, None]  # (n, 40)
    # of the samples given class c, the fraction drawn for c (precision, not recall)
    precision = torch.stack([hits[c].sum() / (predicted == c).sum().clamp(min=1) for c in range(n)])
    expect_close(
        "class_agreement(model, classifier, eps)",
        got,
        class_agreement_reference(model, classifier, eps),
        mistakes={
            "a count: divide by the number of samples to get a fraction": hits.sum(1).double(),
            "of the samples classified as c, the fraction drawn for c; the question is "
            "the other way round: of the samples drawn for c, the fraction classified as c":
                precision.double(),
        },
        within=(0, 1),
        rtol=1e-6,
        atol=1e-6,
    )


register(
    "ex-vae-beta",
    Answer("elbo_terms", elbo_terms_reference, _test_elbo_terms),
)
register(
    "ex-vae-aggregate",
    Answer("total_variance", total_variance_reference, _test_total_variance),
)
register(
    "ex-vae-temperature",
    Answer("samples_at", samples_at_reference, _test_samples_at),
    Answer("pixel_spread", pixel_spread_reference, _test_pixel_spread),
)
register(
    "ex-vae-free-bits",
    Answer("free_bits_kl", free_bits_kl_reference, _test_free_bits_kl),
)
register(
    "ex-vae-sigma-fit",
    Answer("best_sigma", best_sigma_reference, _test_best_sigma),
)
register(
    "ex-vae-cvae-classes",
    Answer("class_agreement", class_agreement_reference, _test_class_agreement),
)
