"""The course's benchmark: every shipped model on the test split, with its baselines.

    python -m aecourse.evaluate                  # the full protocol, all 10,000 test images
    python -m aecourse.evaluate --quick          # a 1,000-image subset and reduced costs
    python -m aecourse.evaluate --json           # one JSON object: model -> metric -> value
    python -m aecourse.evaluate --write-cards    # full run, metrics into each model card
    python -m aecourse.evaluate --quick --check  # compare with the cards' quick figures
    python -m aecourse.evaluate --from-cards     # the table the cards hold, nothing run

The protocol is the one of the course's design notes: reconstruction PSNR; denoising PSNR at
Gaussian sigma 0.5 and 50 % masking; importance-weighted NLL (k = 1000, Burda et al. 2015) on
the dynamically binarised test set; codebook usage and perplexity; the Frechet distance of
samples in the shipped classifier's feature space. A VAE with a Gaussian decoder (sigma_dec
set) models grey images, not binary ones: the Bernoulli NLL and -ELBO rows do not apply to it,
and its KL row (the rate) is measured on the grey test images it was trained on. Baselines
run in the same pass: PCA at the same latent size; for a denoiser, the noisy input itself, the projection onto PCA's
subspace and the best linear denoiser (reduced-rank regression) of the same rank, and the
plain AE of the same width fed the noisy images; the MLP VAE; two halves of the test set.
Each family has a function the notebooks can call, e.g. ``reconstruction_psnr(model, x)``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

from aecourse import metrics
from aecourse.cli import directory, positive
from aecourse.data import ImageData, binarize, load
from aecourse.losses import elbo, gaussian_kl
from aecourse.models import AE, DAE, SAE, VAE, VQVAE, Classifier, Prior, gaussian_noise, mask_pixels
from aecourse.models.pca import (
    fit_linear_denoiser_ranks,
    linear_denoise,
    pca,
    pca_reconstruct,
    principal_angle_degrees,
)
from aecourse.pretrained import WEIGHTS_DIR, list_pretrained, load_card, load_pretrained, update_card
from aecourse.train import default_device

SHIPPED = ("ae", "ae-2d", "ae-linear", "dae", "dae-16", "ae-mlp", "cae", "vae", "vae-2d", "vae-mlp",
           "vae-mlp-16", "vae-mlp-beta4", "vae-mlp-warmup", "vae-mlp-freebits",
           "vae-gauss-0.03", "vae-gauss-0.1", "vae-gauss-0.3", "vae-gauss-1.0",
           "cvae-mlp-16", "cvae-mlp-16-beta4", "vqvae", "prior", "classifier", "sae", "sae-l1", "sae-aux")
NOISE_SEED = 0  # seeds the corruption of the denoising rows
FIT_NOISE_SEED = 3  # seeds the corruption of the training pairs of the linear denoisers
BINARIZE_SEED = 1  # seeds the dynamic binarisation of the likelihood rows
SAMPLE_SEED = 2  # seeds importance samples and generated images
SIGMA = 0.5  # Gaussian noise level of the denoising rows
MASK = 0.5  # fraction of pixels zeroed in the denoising rows
BATCH = 1000  # images per forward pass


@dataclass(frozen=True)
class Settings:
    images: int | None = None  # test images evaluated, the first n (None: all)
    k: int = 1000  # importance samples per image of the NLL bound
    nll_images: int | None = None  # images of the NLL, ELBO and KL rows, the first n (None: all evaluated)
    samples: int = 10_000  # generated images per Frechet distance


FULL = Settings()
QUICK = Settings(images=1000, nll_images=32, samples=250)  # about 40 s of one CPU core

# Where each protocol's figures live in a model card. The quick figures are not estimates of
# the full ones (32 NLL images, 250-sample FIDs are biased), so a card keeps both, and
# `--quick --check` compares like with like.
CARD_FIELDS = {FULL: ("test_metrics", "evaluation"), QUICK: ("quick_metrics", "quick_evaluation")}
AGREE_REL = 0.01  # two runs of one protocol agree within 1 % (or AGREE_ABS) ...
AGREE_ABS = 0.01
# ... and FIDs within 40 %. The samples come from CPU seeds and inverse-CDF draws
# (`aecourse.sampling`), so the same machine and torch version repeat them exactly; on
# other hardware the rounding of the prior's probabilities can flip a draw, and a flip
# redraws the rest of that grid. The bound covers a complete re-draw: seeds 0-9 moved
# the quick FIDs by up to 37 % from the protocol seed's (`python scripts/fid_spread.py`,
# which fails if they leave it); ten seeds make that an empirical margin, not a proof.
AGREE_REL_FID = 0.40


def card_fields(settings: Settings) -> tuple[str, str]:
    """The card fields (metrics, evaluation) of a protocol; any settings other than QUICK's
    (e.g. FULL with --nll-images) count as the full protocol."""
    return CARD_FIELDS.get(settings, CARD_FIELDS[FULL])


def agrees(metric: str, value: float, reference: float) -> bool:
    """Whether `value` reproduces `reference` within the noise of re-running the protocol."""
    rel = AGREE_REL_FID if metric == "fid" else AGREE_REL
    return abs(value - reference) <= max(AGREE_ABS, rel * abs(reference))


# --- one function per model family; x is (N, C, H, W) in [0, 1] -------------------------


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _given(y: Tensor | None) -> dict[str, Tensor]:
    """The keyword arguments that pass labels y to a conditional VAE (none without y)."""
    return {} if y is None else {"y": y}


@torch.no_grad()
def reconstruct(model: nn.Module, x: Tensor, batch_size: int = BATCH, y: Tensor | None = None) -> Tensor:
    """`model.reconstruct` of x (N, C, H, W) in batches on the model's device: an AE's x_hat,
    a VAE's mean sigmoid(decode(mu)), a VQ-VAE's decoded codes; y (N,): the labels of a
    conditional VAE."""
    device = _device(model)
    batches = metrics.split_labelled(x, y, batch_size)
    return torch.cat([model.reconstruct(xb.to(device), **_given(yb)) for xb, yb in batches])


def reconstruction_psnr(model: nn.Module, x: Tensor, y: Tensor | None = None) -> float:
    """PSNR in dB of the model's reconstructions of x against x (given labels y (N,), for a
    conditional VAE)."""
    return metrics.psnr(reconstruct(model, x, y=y), x.to(_device(model)))


def fit_pca(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (P,) and all principal directions (P, P), largest variance first, of images x
    (N, C, H, W); ``directions[:k]`` is the PCA-k subspace (aecourse.models.pca.pca)."""
    mean, directions, _ = pca(x, k=x[0].numel())
    return mean, directions


def linear_ae_angle(model: AE, directions: Tensor) -> float:
    """Largest principal angle (degrees) between a linear AE's decoder column space and
    the PCA subspace of the same size (Baldi & Hornik 1989: 0 at the optimum)."""
    weight = model.decoder[0].weight  # (P, latent_dim)
    return principal_angle_degrees(weight.T.cpu(), directions[: weight.shape[1]].cpu())


def corrupt_test(x: Tensor, seed: int = NOISE_SEED) -> dict[str, Tensor]:
    """The two test corruptions of x, drawn on the CPU so that every device sees the same noise."""
    generator = torch.Generator().manual_seed(seed)
    x_cpu = x.cpu()
    gauss = gaussian_noise(x_cpu, SIGMA, generator)
    masked = mask_pixels(x_cpu, MASK, generator)
    return {f"gauss{SIGMA}": gauss.to(x.device), f"mask{MASK}": masked.to(x.device)}


def fit_linear_denoisers(x: Tensor, rank: int, device: torch.device | str = "cpu",
                         seed: int = FIT_NOISE_SEED) -> dict[str, Callable[[Tensor], Tensor]]:
    """For each corruption of `corrupt_test`, the best linear denoiser of `rank` fitted (on
    the CPU) to (corrupted x, x) pairs, as a function of noisy images on `device`."""
    return fit_linear_denoisers_ranks(x, (rank,), device, seed)[rank]


def fit_linear_denoisers_ranks(x: Tensor, ranks: Sequence[int], device: torch.device | str = "cpu",
                               seed: int = FIT_NOISE_SEED) -> dict[int, dict[str, Callable[[Tensor], Tensor]]]:
    """`fit_linear_denoisers` for several ranks from one regression per corruption:
    {rank: {kind: denoise}}."""
    denoisers: dict[int, dict[str, Callable[[Tensor], Tensor]]] = {rank: {} for rank in ranks}
    for kind, x_noisy in corrupt_test(x.cpu(), seed).items():
        for rank, fit in fit_linear_denoiser_ranks(x_noisy, x.cpu(), ranks).items():
            # a, b, W_enc, W_dec, moved once to the device of the images
            params = [p.to(device) for p in fit]
            denoisers[rank][kind] = lambda images, params=params: linear_denoise(images, *params)
    return denoisers


def denoising_psnr(denoise: Callable[[Tensor], Tensor], x: Tensor, noisy: dict[str, Tensor]) -> dict[str, float]:
    """PSNR of denoise(noisy image) against the clean x, per corruption of `corrupt_test`."""
    return {f"{kind}_psnr_db": metrics.psnr(denoise(x_noisy), x) for kind, x_noisy in noisy.items()}


@torch.no_grad()
def rate_nats(vae: VAE, x: Tensor) -> float:
    """The rate: KL(q(z|x) || p(z)) in nats per image, the mean over the images x (N, C, H, W)."""
    device = _device(vae)
    kl = [gaussian_kl(*vae.encode(xb.to(device))) for xb in x.split(BATCH)]
    return torch.cat(kl).mean().item()


@torch.no_grad()
def likelihood_metrics(vae: VAE, x_binary: Tensor, k: int = 1000, seed: int = SAMPLE_SEED,
                       y: Tensor | None = None) -> dict[str, float]:
    """Importance-weighted NLL bound (k samples), -ELBO and KL, nats per binary image (means),
    for a Bernoulli decoder; with the labels y (N,) of a conditional VAE, those of -log p(x | y)."""
    if vae.config.sigma_dec is not None:
        raise ValueError("likelihood_metrics is for a Bernoulli decoder; this VAE has a Gaussian one "
                         "(sigma_dec): use rate_nats on grey images")
    device = _device(vae)
    x_binary = x_binary.to(device)
    y = None if y is None else y.to(device)
    generator = torch.Generator().manual_seed(seed)  # CPU draws: the same on every device
    pairs = 50_000 if device.type == "cuda" else 2_000  # (sample, image) pairs per decoder pass
    nll = metrics.iw_nll(vae, x_binary, k=k, batch_size=pairs, generator=generator, y=y)
    outs = [vae(xb, generator, **_given(yb)) for xb, yb in metrics.split_labelled(x_binary, y, BATCH)]
    neg_elbo = torch.cat([-elbo(out, xb) for out, xb in zip(outs, x_binary.split(BATCH))])
    kl = torch.cat([gaussian_kl(out.mu, out.logvar) for out in outs])
    return {"nll_nats": nll.mean().item(), "neg_elbo_nats": neg_elbo.mean().item(),
            "kl_nats": kl.mean().item()}


@torch.no_grad()
def vq_metrics(vqvae: VQVAE, x: Tensor) -> dict[str, float]:
    """Reconstruction PSNR, fraction of the codebook used on x, perplexity of the code histogram."""
    indices = torch.cat([vqvae.encode(xb.to(_device(vqvae))) for xb in x.split(BATCH)])  # (N, h, w)
    x_hat = torch.cat([vqvae.decode_indices(i) for i in indices.split(BATCH)])
    usage, perplexity = metrics.codebook_usage(indices, vqvae.config.codebook_size)
    return {"psnr_db": metrics.psnr(x_hat, x.to(x_hat.device)), "codebook_usage": usage, "perplexity": perplexity}


@torch.no_grad()
def code_nll(prior: Prior, vqvae: VQVAE, x: Tensor) -> dict[str, float]:
    """The prior's NLL of x's code grids: nats per grid and bits per code."""
    indices = torch.cat([vqvae.encode(xb.to(_device(vqvae))) for xb in x.split(BATCH)])  # (N, h, w)
    nll = -torch.cat([prior.log_prob(i.to(_device(prior))) for i in indices.split(BATCH)]).mean().item()
    return {"code_nll_nats": nll, "bits_per_code": nll / indices[0].numel() / math.log(2)}


@torch.no_grad()
def generate(model: nn.Module, n: int, seed: int = SAMPLE_SEED, vqvae: VQVAE | None = None) -> Tensor:
    """n images (n, C, H, W) from a VAE, or from a prior whose code grids `vqvae` decodes;
    computed in one batch of n on the model's device, from draws made on the CPU (the same
    samples on every device and torch version, see `aecourse.sampling`). A conditional VAE
    draws for balanced labels (`balanced_labels`), the class frequencies of the test set."""
    generator = torch.Generator().manual_seed(seed)
    classes = getattr(getattr(model, "config", None), "num_classes", 0)
    given = _given(balanced_labels(n, classes, _device(model)) if classes else None)
    samples = model.sample(n, generator, **given)  # images, or a prior's code grids (n, h, w)
    if vqvae is None:
        if not samples.is_floating_point():
            raise ValueError(f"{type(model).__name__} samples codes: pass vqvae= to decode them")
        return samples
    return torch.cat([vqvae.decode_images(i.to(_device(vqvae))) for i in samples.split(BATCH)])


def balanced_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> Tensor:
    """n class labels (n,) cycling 0, 1, ..., num_classes - 1: each class n / num_classes
    times, as in Fashion-MNIST's test set (1,000 images of each of its 10 classes)."""
    return torch.arange(n, device=device) % num_classes


def sample_fid(classifier: Classifier, images: Tensor, reference: Tensor) -> float:
    """Frechet distance between the classifier features of images and reference features (N, F)."""
    return metrics.frechet_distance(metrics.classifier_features(classifier, images, BATCH), reference)


@torch.no_grad()
def accuracy(classifier: Classifier, data: ImageData) -> float:
    """Fraction of the images classified as their labels."""
    logits = torch.cat([classifier(xb.to(_device(classifier))) for xb in data.x.split(BATCH)])
    return (logits.argmax(1).cpu() == data.y.cpu()).double().mean().item()


@torch.no_grad()
def spliced_accuracy(classifier: Classifier, features: Tensor, y: Tensor) -> float:
    """The classifier's accuracy when its penultimate features are replaced by `features`
    (N, feature_dim), e.g. a sparse autoencoder's reconstructions: its last layer alone."""
    if features.ndim != 2 or y.shape != features.shape[:1]:
        raise ValueError(f"expected features (N, feature_dim) and labels (N,), got shapes "
                         f"{tuple(features.shape)} and {tuple(y.shape)}")
    logits = torch.cat([classifier.classify(fb.to(_device(classifier))) for fb in features.split(BATCH)])
    return (logits.argmax(1).cpu() == y.cpu()).double().mean().item()


@torch.no_grad()
def sae_metrics(sae: SAE, classifier: Classifier, data: ImageData) -> dict[str, float]:
    """A sparse autoencoder of the classifier's penultimate features h, on the images of
    `data`: the fraction of h's variance its reconstructions explain, the mean number of
    active features per image (L0), the fraction of its features active on no image
    (dead), and the classifier's accuracy on the reconstructions (spliced in for h)."""
    h = metrics.classifier_features(classifier, data.x, BATCH).to(_device(sae))  # (N, n)
    outs = [sae(hb) for hb in h.split(BATCH)]
    h_hat = torch.cat([out.h_hat for out in outs])  # (N, n)
    active = torch.cat([out.z > 0 for out in outs])  # (N, F)
    return {"fve": metrics.variance_explained(h_hat, h),
            "l0": active.sum(1).double().mean().item(),
            "dead_fraction": (~active.any(0)).double().mean().item(),
            "spliced_accuracy": spliced_accuracy(classifier, h_hat, data.y)}


# --- the table ----------------------------------------------------------------------------


class Skip(Exception):
    """A model that cannot be evaluated here (no weights, a missing dependency)."""


class _Run:
    """One evaluation: models, test data, PCA fits and features, each made once (cached)."""

    def __init__(self, weights_dir: Path, device: torch.device, settings: Settings) -> None:
        self.weights_dir, self.device, self.settings = weights_dir, device, settings
        self.available = set(list_pretrained(weights_dir))
        self.notes: list[str] = []

    @functools.cache
    def model(self, name: str) -> nn.Module:
        if name not in self.available:
            raise Skip(f"no weights in {self.weights_dir} for {name}")
        try:
            return load_pretrained(name, weights_dir=self.weights_dir, device=self.device)
        except (ValueError, RuntimeError) as error:  # e.g. weights rewritten while their card was not
            raise Skip(f"could not load {name}: {error}") from error

    def optional(self, name: str, dataset: str, purpose: str) -> nn.Module | None:
        """The shipped model `name` trained on dataset, or None (and a note) where there is none."""
        try:
            if self.dataset(name) != dataset:
                raise Skip(f"{name} was trained on {self.dataset(name)}")
            return self.model(name)
        except Skip as reason:
            self.notes.append(f"no {purpose} on {dataset}: {reason}")
            return None

    def dataset(self, name: str) -> str:
        if name not in self.available:
            raise Skip(f"no weights in {self.weights_dir} for {name}")
        card = load_card(name, weights_dir=self.weights_dir)
        if "data" not in card:
            raise Skip(f"the card of {name} does not say which data it was trained on")
        return card["data"]

    @functools.cache
    def test(self, dataset: str) -> ImageData:
        data = load(dataset, "test")
        if self.settings.images is not None:
            data = data.subset(self.settings.images)
        return data.to(self.device)

    @functools.cache
    def pca(self, dataset: str) -> tuple[Tensor, Tensor]:
        """Mean and principal directions of the training split (see `fit_pca`)."""
        mean, directions = fit_pca(load(dataset, "train").x)
        return mean.to(self.device), directions.to(self.device)

    @functools.cache
    def linear_denoisers(self, dataset: str, rank: int) -> dict[str, Callable[[Tensor], Tensor]]:
        """The best linear denoiser of `rank` for each test corruption, fitted on the training
        split corrupted the same way (see `fit_linear_denoisers`)."""
        return fit_linear_denoisers(load(dataset, "train").x, rank, self.device)

    @functools.cache
    def binary(self, dataset: str) -> Tensor:
        """The test images, dynamically binarised once on the CPU: the same bits on every device."""
        generator = torch.Generator().manual_seed(BINARIZE_SEED)
        return binarize(self.test(dataset).x.cpu(), generator).to(self.device)

    @functools.cache
    def features(self, dataset: str) -> Tensor | None:
        """Classifier features (N, F) of the test images, or None (and a note) without a classifier."""
        classifier = self.optional("classifier", dataset, "fid")
        return None if classifier is None else metrics.classifier_features(classifier, self.test(dataset).x, BATCH)

    @functools.cache
    def feature_pca(self, classifier: str, dataset: str) -> tuple[Tensor, Tensor]:
        """Mean and principal directions of the classifier's penultimate features of the
        training split: the linear baseline of a sparse autoencoder."""
        features = metrics.classifier_features(self.model(classifier), load(dataset, "train").x, BATCH)
        return fit_pca(features)

    def fid(self, model: nn.Module, dataset: str, vqvae: VQVAE | None = None) -> dict[str, float]:
        """{"fid": ...} of `settings.samples` samples against the test images, or {} without a classifier."""
        reference = self.features(dataset)
        if reference is None:
            return {}
        images = generate(model, self.settings.samples, vqvae=vqvae)  # (samples, C, H, W)
        return {"fid": sample_fid(self.model("classifier"), images, reference)}


# Each family's rows: the model's own row first, then its baselines.
Rows = dict[str, dict[str, float]]


def _ae_rows(run: _Run, name: str, model: AE, dataset: str) -> Rows:
    mean, directions = run.pca(dataset)
    d, x = model.config.latent_dim, run.test(dataset).x
    row = {"psnr_db": reconstruction_psnr(model, x)}
    if model.config.linear:
        row[f"angle_to_pca{d}_deg"] = linear_ae_angle(model, directions)
    return {name: row, f"pca-{d}": {"psnr_db": metrics.psnr(pca_reconstruct(x, mean, directions[:d]), x)}}


def _dae_rows(run: _Run, name: str, model: DAE, dataset: str) -> Rows:
    """The DAE on clean and corrupted images, and baselines with a code of the same width."""
    d, x = model.config.latent_dim, run.test(dataset).x
    noisy = corrupt_test(x)
    mean, directions = run.pca(dataset)
    linear = run.linear_denoisers(dataset, d)
    row = {"psnr_db": reconstruction_psnr(model, x),
           **denoising_psnr(lambda xn: reconstruct(model, xn), x, noisy)}
    rows = {name: row,
            "noisy-input": denoising_psnr(lambda xn: xn, x, noisy),
            f"pca-{d}": denoising_psnr(lambda xn: pca_reconstruct(xn, mean, directions[:d]), x, noisy),
            f"linear-{d}": {f"{kind}_psnr_db": metrics.psnr(linear[kind](x_noisy), x)
                            for kind, x_noisy in noisy.items()}}
    ae = run.optional("ae", dataset, "ae-on-noisy row")
    if ae is not None and ae.config.latent_dim == d:  # what denoising training buys
        rows["ae-on-noisy"] = denoising_psnr(lambda xn: reconstruct(ae, xn), x, noisy)
    return rows


def _vae_rows(run: _Run, name: str, model: VAE, dataset: str) -> Rows:
    """The VAE's likelihood rows, PSNR and FID; a conditional VAE's are given the test labels
    (the NLL bounds -log p(x | y)) and its FID samples have balanced labels (`generate`). A
    Gaussian decoder is a density over grey images: no Bernoulli NLL, the rate on grey images."""
    x, n = run.test(dataset).x, run.settings.nll_images
    y = run.test(dataset).y if model.config.num_classes else None
    if model.config.sigma_dec is None:
        row = likelihood_metrics(model, run.binary(dataset)[:n], run.settings.k,
                                 y=None if y is None else y[:n])
    else:
        row = {"kl_nats": rate_nats(model, x[:n])}
    return {name: {**row, "psnr_db": reconstruction_psnr(model, x, y), **run.fid(model, dataset)}}


def _prior_rows(run: _Run, name: str, model: Prior, dataset: str) -> Rows:
    vqvae = run.model("vqvae")
    if run.dataset("vqvae") != dataset:
        raise Skip(f"it models {dataset} codes but vqvae was trained on {run.dataset('vqvae')}")
    rows = {name: {**code_nll(model, vqvae, run.test(dataset).x), **run.fid(model, dataset, vqvae)}}
    reference = run.features(dataset)
    if reference is not None:  # the floor: one half of the test set against the other
        half = len(reference) // 2
        rows["test-half"] = {"fid": metrics.frechet_distance(reference[:half], reference[half:])}
    return rows


def _sae_rows(run: _Run, name: str, model: SAE, dataset: str) -> Rows:
    """The SAE's figures, the classifier's own accuracy, and PCA of the features keeping as
    many directions as the SAE keeps features per image (its L0, rounded)."""
    source = load_card(name, weights_dir=run.weights_dir).get("activations_from", "classifier")
    if run.dataset(source) != dataset:
        raise Skip(f"it reads the features of {source}, which was trained on {run.dataset(source)}")
    classifier, data = run.model(source), run.test(dataset)
    row = sae_metrics(model, classifier, data)
    mean, directions = run.feature_pca(source, dataset)
    h = metrics.classifier_features(classifier, data.x, BATCH)
    ell = max(1, round(row["l0"]))
    h_pca = pca_reconstruct(h, mean, directions[:ell])
    return {name: row, source: {"accuracy": accuracy(classifier, data)},
            f"features-pca-{ell}": {"fve": metrics.variance_explained(h_pca, h),
                                    "spliced_accuracy": spliced_accuracy(classifier, h_pca, data.y)}}


_FAMILIES = (  # the first class that matches decides (a DAE is also an AE)
    (DAE, _dae_rows),
    (AE, _ae_rows),
    (VAE, _vae_rows),
    (VQVAE, lambda run, name, model, dataset: {name: vq_metrics(model, run.test(dataset).x)}),
    (Prior, _prior_rows),
    (Classifier, lambda run, name, model, dataset: {name: {"accuracy": accuracy(model, run.test(dataset))}}),
    (SAE, _sae_rows),
)


def _rows(run: _Run, name: str) -> Rows:
    model = run.model(name)
    for cls, rows in _FAMILIES:
        if isinstance(model, cls):
            return rows(run, name, model, run.dataset(name))
    raise Skip(f"no evaluation for a {type(model).__name__}")


@dataclass
class Evaluation:
    results: dict[str, dict[str, float]]  # row (model or baseline) -> metric -> value, in table order
    baselines: dict[str, Rows]  # model -> its baseline rows, as evaluated with it
    skipped: dict[str, str]  # model -> why it was not evaluated
    notes: list[str]  # anything else the footer should say


def default_names(available: set[str]) -> list[str]:
    """Every shipped name, then any other saved model, in table order."""
    return [*SHIPPED, *sorted(available - set(SHIPPED))]


def evaluate(names: list[str] | None = None, *, weights_dir: str | Path | None = None,
             device: str | torch.device | None = None, settings: Settings = FULL) -> Evaluation:
    """Evaluate the shipped models `names` (default: all) with their baselines, on `device`
    (default: the fastest here)."""
    device = torch.device(device) if device is not None else default_device()
    run = _Run(Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR, device, settings)
    if names is None:
        names = [name for name in default_names(run.available) if name in run.available]
    out = Evaluation({}, {}, {}, [])
    for name in names:
        try:
            with torch.no_grad():
                rows = _rows(run, name)
        except Skip as reason:
            out.skipped[name] = str(reason)
            continue
        for row, values in rows.items():  # a baseline of two models holds both's figures
            out.results.setdefault(row, {}).update(values)
        out.baselines[name] = {row: values for row, values in rows.items() if row != name}
    out.notes = sorted(set(run.notes))
    return out


def _round(value: float) -> float:
    return round(value, 2) if abs(value) >= 1 or not math.isfinite(value) else round(value, 4)


def _rounded(results: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {row: {metric: _round(v) for metric, v in values.items()} for row, values in results.items()}


def format_table(results: dict[str, dict[str, float]],
                 references: dict[str, dict[str, dict[str, float]]] | None = None) -> str:
    """One aligned table: model | metric | value, grouped by model; `references` adds one
    column per entry (column title -> row -> metric -> value), blank where it has no figure."""
    references = {} if references is None else references
    header = ("model", "metric", "value", *references)
    lines = [header]
    for model, row in results.items():
        for i, (metric, v) in enumerate(row.items()):
            extra = [references[title].get(model, {}).get(metric) for title in references]
            lines.append((model if i == 0 else "", metric, f"{_round(v):g}",
                          *("" if r is None else f"{_round(r):g}" for r in extra)))
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    rows = [lines[0], tuple("-" * w for w in widths), *lines[1:]]
    return "\n".join(
        "  ".join(f"{cell:<{w}}" if c < 2 else f"{cell:>{w}}" for c, (cell, w) in enumerate(zip(line, widths)))
        for line in rows)


def _protocol(settings: Settings) -> dict[str, int | str]:
    """The settings as a card records them (None -> "all")."""
    return {key: "all" if value is None else value for key, value in asdict(settings).items()}


def card_figures(names: list[str], weights_dir: Path, settings: Settings) -> tuple[dict[str, dict[str, float]], list[str]]:
    """The figures the named cards (and their baselines) hold for the protocol `settings`, and a
    line for each card that holds none or holds those of other settings."""
    metrics_field, evaluation_field = card_fields(settings)
    figures: dict[str, dict[str, float]] = {}
    problems = []
    for name in names:
        card = load_card(name, weights_dir=weights_dir)
        evaluation = card.get(evaluation_field, {})
        recorded = {key: evaluation.get(key) for key in _protocol(settings)}
        if not card.get(metrics_field):
            problems.append(f"{name}: its card has no {metrics_field}")
        elif recorded != _protocol(settings):
            problems.append(f"{name}: its card's {metrics_field} are for {recorded}, not {_protocol(settings)}")
        else:  # the model's row, then its baselines: the order of the table
            figures[name] = card[metrics_field]
            for row, values in evaluation.get("baselines", {}).items():
                figures.setdefault(row, {}).update(values)
    return figures, problems


def disagreements(results: dict[str, dict[str, float]], cards: dict[str, dict[str, float]]) -> list[str]:
    """Each figure of `results` that its card lacks or does not reproduce, as a line."""
    lines = []
    for row, values in results.items():
        for metric, value in values.items():
            reference = cards.get(row, {}).get(metric)
            if reference is None:
                lines.append(f"{row} {metric}: no figure in the cards")
            elif not agrees(metric, value, reference):
                lines.append(f"{row} {metric}: {_round(value):g} here, {_round(reference):g} in the card")
    return lines


def beside_shipped(here: dict[str, dict[str, float]], *, data: str, images: int,
                   settings: Settings = QUICK, weights_dir: str | Path | None = None) -> str:
    """Figures measured in a notebook (row -> metric -> value, rows named as in the cards,
    e.g. "ae" or "pca-16") as a table beside those the shipped models' cards hold for the
    protocol `settings`: what a notebook prints for models it trained itself, where it
    asserts agreement for the shipped ones. `data` and `images` say what "here" measured
    (the data set, the first `images` test images); a row no card holds shows "-"."""
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    if not here:
        raise ValueError("expected at least one row of figures, got none")
    names = [row for row in here if row in list_pretrained(weights_dir)]
    cards, _ = card_figures(names, weights_dir, settings)
    card_data = sorted({load_card(name, weights_dir)["data"] for name in names})
    protocol = "all" if settings.images is None else f"the first {settings.images:,}"
    lines = [f"here: {data}, the first {images:,} test images; shipped: the model cards "
             f"({', '.join(card_data) or 'none'}, {protocol} test images)"]
    if card_data != [data] or settings.images not in (None, images):
        lines.append("(not the same test images: the columns compare models, not runs)")
    rows = [[row, metric, f"{value:.2f}", _shipped(cards.get(row, {}).get(metric))]
            for row, values in here.items() for metric, value in values.items()]
    header = ["", "metric", "here", "shipped"]
    widths = [max(len(line[c]) for line in [header, *rows]) for c in range(4)]
    for line in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(line, widths))))
    return "\n".join(lines)


def _shipped(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m aecourse.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 1,000 test images and reduced costs")
    parser.add_argument("--json", action="store_true", help="print one JSON object: model -> metric -> value")
    parser.add_argument("--write-cards", action="store_true",
                        help="write each model's figures into its card (the quick ones with --quick)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the figures the cards hold for this protocol; exit 1 if any differ")
    parser.add_argument("--from-cards", action="store_true",
                        help="print the figures the cards hold for this protocol; evaluate nothing")
    parser.add_argument("--weights-dir", type=directory, default=WEIGHTS_DIR,
                        help="default: the package's weights")
    parser.add_argument("--device", help="default: the fastest available")
    parser.add_argument("--models", help="comma-separated names (default: every saved model)")
    parser.add_argument("--nll-images", type=positive(int),
                        help="bound the NLL, ELBO and KL rows to the first N test images (a CPU budget)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.write_cards and args.nll_images is not None and args.quick:
        parser.error("--quick --write-cards records the quick protocol itself; drop --nll-images")
    device = torch.device(args.device) if args.device is not None else default_device()
    settings = QUICK if args.quick else FULL
    if args.nll_images is not None:
        settings = replace(settings, nll_images=args.nll_images)
    names = _model_names(parser, args.models, args.weights_dir)
    if args.from_cards:
        if args.write_cards or args.check:
            parser.error("--from-cards evaluates nothing: it cannot be combined with --write-cards or --check")
        figures, problems = card_figures(names, args.weights_dir, settings)
        protocol = f"{card_fields(settings)[0]} for {_protocol(settings)}"
        if args.json:
            print(json.dumps(figures, indent=2))
        else:
            print(format_table(figures) + f"\n\nfrom the cards' {protocol}" + "".join(f"\n{p}" for p in problems))
        if problems:
            raise SystemExit(1)
        return figures
    start = time.perf_counter()
    evaluation = evaluate(names, weights_dir=args.weights_dir, device=device, settings=settings)
    seconds = time.perf_counter() - start
    rounded = _rounded(evaluation.results)
    footer = [f"skipped {name}: {reason}" for name, reason in evaluation.skipped.items()] + evaluation.notes
    if args.quick:
        footer.append(f"quick: the first {settings.images} test images; NLL, ELBO and KL on the first "
                      f"{settings.nll_images} (k={settings.k}); FID of {settings.samples} samples (full run: "
                      f"all images, k={FULL.k}, {FULL.samples} samples)")
    footer.append(f"{seconds:.1f} s on {device}")
    references, differing = {}, []
    if args.check:
        cards, differing = card_figures(list(evaluation.baselines), args.weights_dir, settings)
        references = {"card": cards}
        differing += disagreements({row: values for row, values in evaluation.results.items()
                                    if row in cards}, cards)
        differing += [f"{name}: not evaluated ({reason})" for name, reason in evaluation.skipped.items()]
        footer.append(f"check against the cards' {card_fields(settings)[0]}: "
                      f"{len(differing)} problem(s)" + "".join(f"\n  {line}" for line in differing))
    if args.json:
        print(json.dumps(rounded, indent=2))
        print("\n".join(footer), file=sys.stderr)
    else:
        print(format_table(evaluation.results, references) + "\n\n" + "\n".join(footer))
    if args.write_cards:
        command = shlex.join(["python", "-m", "aecourse.evaluate", *argv])
        write_cards(evaluation, args.weights_dir, settings, device, command=command)
    if differing:
        raise SystemExit(1)
    return rounded


def _model_names(parser: argparse.ArgumentParser, models: str | None, weights_dir: Path) -> list[str]:
    """The names of --models, each with weights in weights_dir; without it, every saved model."""
    available = set(list_pretrained(weights_dir))
    if not available:
        parser.error(f"--weights-dir {weights_dir} holds no model (<name>.safetensors with <name>.json)")
    if models is None:
        return [name for name in default_names(available) if name in available]
    names = models.split(",")
    unknown = [name for name in names if name not in available]
    if unknown:
        parser.error(f"--models: no weights for {unknown} in {weights_dir}; expected names among "
                     f"{sorted(available)}")
    return names


def write_cards(evaluation: Evaluation, weights_dir: Path, settings: Settings, device: torch.device,
                command: str = "python -m aecourse.evaluate --write-cards") -> None:
    """Each model's card: its own row and `evaluation` (the settings and its baselines), under
    `test_metrics`/`evaluation` for the full protocol and `quick_metrics`/`quick_evaluation`
    for the quick one. Any other settings (e.g. --nll-images) count as the full protocol."""
    metrics_field, evaluation_field = card_fields(settings)
    rounded = _rounded(evaluation.results)
    for name, baseline_rows in evaluation.baselines.items():
        baselines = _rounded(baseline_rows)
        update_card(name, weights_dir, **{metrics_field: rounded[name], evaluation_field: {
            "split": "test", **_protocol(settings), "sigma": SIGMA, "mask": MASK, "device": str(device),
            "seeds": {"noise": NOISE_SEED, "binarize": BINARIZE_SEED, "sample": SAMPLE_SEED},
            "baselines": baselines, "command": command,
            "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }})


if __name__ == "__main__":
    main()
