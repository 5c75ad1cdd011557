"""Checks of chapter 5's exercises (notebooks/05_vqvae.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecourse import metrics
from aecourse.exercises.core import (
    LN2,
    Answer,
    call,
    expect,
    expect_close,
    generator,
    register,
)
from aecourse.models import Prior
from aecourse.models.vqvae import VectorQuantizer
from aecourse.pretrained import load_pretrained

SHAPE = (1, 28, 28)


# --- ex-vq-perplexity: codebook usage and perplexity by hand ------------------------


def usage_and_perplexity_reference(indices: Tensor, codebook_size: int) -> tuple[float, float]:
    """The fraction of the codes used and the perplexity 2^H (H in bits) of the codes'
    frequencies in indices (any shape)."""
    return metrics.codebook_usage(indices, codebook_size)


def _test_usage_and_perplexity(usage_and_perplexity: Callable[[Tensor, int], tuple]) -> None:
    cases = {
        "[3, 3, 3, 3, 7, 7, 1, 5], K = 8": (torch.tensor([3, 3, 3, 3, 7, 7, 1, 5]), 8),
        "one code eight times, K = 8": (torch.zeros(8, dtype=torch.long), 8),
        "a (4, 7, 7) grid, K = 64": (torch.randint(0, 40, (4, 7, 7), generator=generator(16)), 64),
    }
    for case, (indices, k) in cases.items():
        got = call(
            "usage_and_perplexity", usage_and_perplexity, indices, k,
            shown=f"indices, {k}",
        )
        expect(
            isinstance(got, Sequence) and len(got) == 2,
            f"usage_and_perplexity returns {type(got).__name__}, expected a pair "
            "(usage, perplexity)",
        )
        usage, perplexity = usage_and_perplexity_reference(indices, k)
        counts = torch.bincount(indices.flatten(), minlength=k).double()
        p = counts[counts > 0] / counts.sum()
        bits = -(p * p.log2()).sum().item()
        expect_close(
            f"the usage for {case}",
            got[0],
            usage,
            mistakes={"a count of codes, not a fraction of K": usage * k},
            within=(0, 1),
        )
        expect_close(
            f"the perplexity for {case}",
            got[1],
            perplexity,
            mistakes={
                "that is the entropy in bits; the perplexity is 2 to its power": bits,
                "that is the entropy in nats; the perplexity is e to its power": bits * LN2,
                "2 to the entropy in nats: use one base for both (2 and bits, or e "
                "and nats)": 2 ** (bits * LN2),
                "e to the entropy in bits: use one base for both (2 and bits, or e "
                "and nats)": math.exp(bits),
            },
            within=(1, k),
            rtol=1e-6 if "one code" in case else 1e-4,
        )


# --- ex-vq-commitment: which parameters a loss term reaches --------------------------


def grad_norms_reference(
    term: Tensor, groups: Mapping[str, Sequence[nn.Parameter]]
) -> dict[str, float]:
    """The norm of the gradient of the scalar `term` with respect to each group of
    parameters (0 for a group it does not reach); the graph is kept for more calls."""
    norms = {}
    for name, params in groups.items():
        grads = torch.autograd.grad(term, list(params), retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))
    return norms


def unstopped_commitment_reference(out: object, quantizer: VectorQuantizer) -> Tensor:
    """||z_e - e_k||^2 (mean squared) without the stop-gradient on the codes e_k."""
    return F.mse_loss(out.z_e, quantizer.lookup(out.indices))


def _test_grad_norms(grad_norms: Callable[..., dict]) -> None:
    g = generator(17)
    first, second, unused = nn.Linear(5, 4), nn.Linear(4, 3), nn.Linear(3, 2)
    with torch.no_grad():
        for layer in (first, second, unused):
            for p in layer.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(6, 5, generator=g)
    term = second(torch.tanh(first(x))).pow(2).mean()
    groups = {
        "first": list(first.parameters()),
        "second": list(second.parameters()),
        "unused": list(unused.parameters()),
    }
    got = call("grad_norms", grad_norms, term, groups, shown="term, groups")
    expect(isinstance(got, Mapping), f"grad_norms returns {type(got).__name__}, expected a dict")
    expect(
        set(got) == set(groups),
        f"grad_norms returns the keys {sorted(got)}, expected one per group {sorted(groups)}",
    )
    expected = grad_norms_reference(term, groups)
    squared = {
        name: sum(float(p.pow(2).sum()) for p in grads if p is not None)
        for name, grads in (
            (n, torch.autograd.grad(term, ps, retain_graph=True, allow_unused=True))
            for n, ps in groups.items()
        )
    }
    for name in groups:
        expect_close(
            f"grad_norms(...)[{name!r}]",
            got[name],
            expected[name],
            mistakes={"the squared norm: take its square root": squared[name]},
            within=(0, float("inf")),
            rtol=1e-4,
            atol=1e-6,
        )


def _test_unstopped_commitment(unstopped_commitment: Callable[..., Tensor]) -> None:
    vqvae = load_pretrained("vqvae")
    x = torch.rand(2, *SHAPE, generator=generator(18))
    out = vqvae(x)
    got = call(
        "unstopped_commitment", unstopped_commitment, out, vqvae.quantizer,
        shown="out, quantizer",
    )
    expect(isinstance(got, Tensor) and got.numel() == 1, "unstopped_commitment must return a "
           "scalar tensor (with its graph), e.g. from torch.nn.functional.mse_loss")
    expect_close(
        "unstopped_commitment(out, quantizer)",
        got,
        unstopped_commitment_reference(out, vqvae.quantizer),
        mistakes={"a sum: take the mean squared error": F.mse_loss(
            out.z_e, vqvae.quantizer.lookup(out.indices), reduction="sum")},
        rtol=1e-4,
    )
    expect(got.requires_grad, "unstopped_commitment has no gradient at all: do not detach")
    reached = grad_norms_reference(
        got.reshape(()),
        {
            "codebook": [vqvae.quantizer.codebook],
            "encoder": [*vqvae.encoder.parameters(), *vqvae.pre_quant.parameters()],
        },
    )
    expect(
        reached["codebook"] > 0,
        "no gradient reaches the codebook: out.z_q is the straight-through output and "
        "lets none through to the codes; take the codes with quantizer.lookup(out.indices)",
    )
    expect(reached["encoder"] > 0, "no gradient reaches the encoder: do not detach z_e")


# --- ex-vq-temperature: bits per code under the prior --------------------------------


def bits_per_code_reference(prior: Prior, codes: Tensor) -> float:
    """The prior's cost -log2 p(k) of code grids (B, h, w), per code, averaged."""
    with torch.no_grad():
        nats = -prior.log_prob(codes).mean().item()
    return nats / (codes.shape[1] * codes.shape[2]) / LN2


def _test_bits_per_code(bits_per_code: Callable[[Prior, Tensor], float]) -> None:
    prior = load_pretrained("prior")
    g = prior.config.grid
    codes = torch.randint(0, prior.config.codebook_size, (3, g, g), generator=generator(19))
    got = call("bits_per_code", bits_per_code, prior, codes, shown="prior, codes")
    expected = bits_per_code_reference(prior, codes)
    expect_close(
        "bits_per_code(prior, codes)",
        got,
        expected,
        mistakes={
            "nats, not bits: divide by ln 2": expected * LN2,
            f"bits per grid, not per code: divide by the {g * g} codes of a grid": expected * g * g,
            "summed over the grids: average over them": expected * len(codes),
        },
        within=(0, float("inf")),
        rtol=1e-4,
    )


# --- ex-vq-bits: the mean cost of each class ------------------------------------------


def mean_by_class_reference(values: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """The mean of values (N,) over the items of each class 0..n_classes-1: (n_classes,)."""
    return torch.stack([values[labels == c].mean() for c in range(n_classes)])


def _test_mean_by_class(mean_by_class: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    g = generator(20)
    labels = torch.arange(60) % 10
    labels = labels[torch.randperm(60, generator=g)]
    values = 100 + 300 * torch.rand(60, generator=g)
    got = call("mean_by_class", mean_by_class, values, labels, 10, shown="values, labels, 10")
    sums = torch.zeros(10).index_add_(0, labels, values)
    expect_close(
        "mean_by_class(values, labels, 10)",
        got,
        mean_by_class_reference(values, labels, 10),
        mistakes={
            "sums, not means": sums,
            "the classes are sorted by cost: keep them in class order 0, 1, ...":
                mean_by_class_reference(values, labels, 10).sort().values,
        },
        rtol=1e-4,
    )


# --- ex-vq-reinforce-loo: REINFORCE with a leave-one-out baseline ---------------------


def reinforce_loo_reference(logits: Tensor, k: Tensor, losses: Tensor) -> Tensor:
    """REINFORCE estimates (n, K), (f_i - c_i)(y_i - pi), for draws k (n,) of
    Cat(softmax(logits)) with losses (n,); c_i is the mean of the other n - 1 losses."""
    n = len(losses)
    others = (losses.sum() - losses) / (n - 1)
    y = F.one_hot(k, len(logits)).to(logits.dtype)
    return (losses - others)[:, None] * (y - logits.softmax(-1))


def _test_reinforce_loo(reinforce_loo: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    g = generator(21)
    logits = torch.randn(5, generator=g, dtype=torch.float64)
    k = torch.randint(0, 5, (8,), generator=g)
    losses = 3 * torch.rand(8, generator=g, dtype=torch.float64)
    got = call("reinforce_loo", reinforce_loo, logits, k, losses, shown="logits, k, losses")
    expected = reinforce_loo_reference(logits, k, losses)
    pi = logits.softmax(-1)
    y = F.one_hot(k, 5).double()
    others = (losses.sum() - losses) / 7
    expect_close(
        "reinforce_loo(logits, k, losses)",
        got,
        expected,
        mistakes={
            "the baseline includes the draw itself (the mean of all n losses): leave "
            "it out, or the estimate is biased": (losses - losses.mean())[:, None] * (y - pi),
            "no baseline: subtract the mean loss of the other draws": losses[:, None] * (y - pi),
            "the gradient of log pi_k with respect to the logits is y - pi, not y":
                (losses - others)[:, None] * y,
            "the baseline is added: subtract it": (losses + others)[:, None] * (y - pi),
            "that is the gradient of pi_k, not of log pi_k: drop the factor pi_k":
                (losses - others)[:, None] * pi[k][:, None] * (y - pi),
        },
        rtol=1e-6,
        atol=1e-9,
    )


register(
    "ex-vq-perplexity",
    Answer("usage_and_perplexity", usage_and_perplexity_reference, _test_usage_and_perplexity),
)
register(
    "ex-vq-commitment",
    Answer("grad_norms", grad_norms_reference, _test_grad_norms),
    Answer("unstopped_commitment", unstopped_commitment_reference, _test_unstopped_commitment),
)
register(
    "ex-vq-temperature",
    Answer("bits_per_code", bits_per_code_reference, _test_bits_per_code),
)
register(
    "ex-vq-bits",
    Answer("mean_by_class", mean_by_class_reference, _test_mean_by_class),
)
register(
    "ex-vq-reinforce-loo",
    Answer("reinforce_loo", reinforce_loo_reference, _test_reinforce_loo),
)
