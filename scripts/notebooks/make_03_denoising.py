"""Write notebooks/03_denoising.ipynb (chapter 3: the denoising autoencoder) with nbformat.

    .venv/bin/python scripts/notebooks/make_03_denoising.py

The notebook is saved without outputs; edit this script, not the .ipynb, and run it again.
"""

from __future__ import annotations

from pathlib import Path

from cells import code, exercise, install_cell, md, write

OUT = Path(__file__).resolve().parents[2] / "notebooks" / "03_denoising.ipynb"
NAME = "03_denoising"


CELLS = [
    md(f"""
# Hands-on: denoising Fashion-MNIST

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aecourse/aecourse/blob/main/notebooks/{NAME}.ipynb)

This notebook goes with the text page [The denoising autoencoder](../book/03_denoising.md),
which defines the corruptions, the objective, the optimal denoiser and the PSNR. Here we
load the course's trained denoising autoencoder `dae` and, for contrast, the plain
autoencoder `ae` of chapter 2, which was never shown a corrupted image. We corrupt test
images with Gaussian noise and with pixel masking, denoise them, measure the PSNR of the
result against the noise level next to two baselines (the noisy input itself and a
projection onto the leading principal components), try the noise level live, and check on real
images that the denoiser moves corrupted images back towards the data.
"""),
    install_cell(),
    code("""
import copy
import math
from dataclasses import asdict

import matplotlib.pyplot as plt
import torch

import aecourse
import aecourse.train
from aecourse import data, evaluate, losses, metrics, plot, widgets
from aecourse.models import DAE, DAEConfig, gaussian_noise, mask_pixels
from aecourse.models.pca import pca_reconstruct

aecourse.set_seed(0)
device = aecourse.default_device()
"""),
    code("""
TRAIN = False  # True: retrain with aecourse.train on this machine's device (e.g. a Colab GPU)
DATA = "fashion-mnist"  # or "mnist" / "cifar10" when online and TRAIN = True
EPOCHS = None  # None: the recipe's
N_TEST = 1000  # test images for the key figures (the first ones)
N_CURVE = 300  # test images per point of the PSNR curves
N_PCA = 10_000  # training images the PCA baseline is fitted to
N_NEIGHBOURS = 200  # test images whose nearest training images are searched
""", tags=["parameters"]),
    md("""
## The models

`dae` was trained on the loss of equation (dae-objective) of the text page, with every
training image corrupted afresh in every epoch; `ae` is a convolutional autoencoder of
the same family trained on clean images only (the cell prints both code sizes). Both
are loaded from the weights shipped with the package, or retrained here when
`TRAIN = True`.
"""),
    code("""
NAMES = ("dae", "ae")
models = {
    name: aecourse.train.train_recipe(name, epochs=EPOCHS, data=DATA, device=device) if TRAIN
    else aecourse.load_pretrained(name, device=device)
    for name in NAMES
}
dae, ae = models.values()
for name in NAMES:
    if TRAIN:
        print(f"{name:4s} trained here on {device}")
    else:
        card = aecourse.load_card(name)
        print(f"{name:4s} trained on {card['device_name']}: {card['epochs']} epochs in {card['wall_time_s'] / 60:.1f} min")
print(f"dae: latent_dim {dae.config.latent_dim}, training noise sigma up to {dae.config.sigma_max}, "
      f"masking up to {dae.config.mask_max:.0%} of the pixels; ae: latent_dim {ae.config.latent_dim}")
"""),
    md("""
This is what the DAE saw during training: each image is either masked or noised, at a
level drawn afresh each time (`DAE.corrupt`).
"""),
    code("""
test = data.load(DATA, "test").subset(N_TEST).to(device)
x = test.x  # (N_TEST, C, H, W) in [0, 1]
x_train = data.load(DATA, "train").x  # (60000, C, H, W), for the PCA baseline and the nearest neighbours
plot.reconstructions([x[:10], dae.corrupt(x[:10], torch.Generator(device).manual_seed(0))],
                     titles=("clean x", "dae.corrupt(x)"), n=10)
"""),
    md("""
## Clean, noisy, denoised

The course's protocol corrupts the test images with Gaussian noise of $\\sigma = 0.5$
(clipped to $[0, 1]$) and with 50 % of the pixels set to zero, with a fixed noise seed
(`aecourse.evaluate.corrupt_test`), so that every model is scored on the same noisy
images. The DAE's output is `evaluate.reconstruct(dae, x_noisy)`: the same forward pass
as a plain reconstruction, only the input is damaged.
"""),
    code("""
noisy = evaluate.corrupt_test(x)  # {"gauss0.5": ..., "mask0.5": ...}, each (N_TEST, C, H, W)
denoised = {kind: evaluate.reconstruct(dae, x_noisy) for kind, x_noisy in noisy.items()}
plot.reconstructions([x, noisy["gauss0.5"], denoised["gauss0.5"]], titles=("clean", "noisy", "denoised"), n=10,
                     title="Gaussian noise, sigma = 0.5")
"""),
    code("""
plot.reconstructions([x, noisy["mask0.5"], denoised["mask0.5"]], titles=("clean", "masked", "denoised"), n=10,
                     title="50 % of the pixels set to 0")
"""),
    md("""
The plain autoencoder was never shown a corrupted image. Given the same noisy inputs it
encodes what it sees as well as its bottleneck lets it. The bottleneck does throw away
the pixel-level noise, but the grey haze that clipped noise leaves on the black
background looks to it like cloth, so sneakers and trousers come out as blurry tops;
masked images come out as dimmed, patchy garments.
"""),
    code("""
on_noisy = {kind: evaluate.reconstruct(ae, x_noisy) for kind, x_noisy in noisy.items()}
plot.reconstructions([noisy["gauss0.5"], on_noisy["gauss0.5"], noisy["mask0.5"], on_noisy["mask0.5"]],
                     titles=("noisy", "plain AE", "masked", "plain AE"), n=10)
"""),
    md("""
The key figures of the chapter, PSNR in dB on the first `N_TEST` test images, with the
baselines of the course's protocol: the noisy input itself (doing nothing), the plain
autoencoder fed the noisy image, and the projection of the noisy image onto the first
64 principal components of the training images (`evaluate.PCA_DENOISE_DIM`), the best
linear denoiser with a 64-dimensional bottleneck.
"""),
    code("""
mean, directions = evaluate.fit_pca(x_train[:N_PCA])  # PCA of N_PCA training images: mean (P,), directions (P, P)
mean, directions = mean.to(device), directions.to(device)
denoisers = {
    "dae": lambda x_noisy: evaluate.reconstruct(dae, x_noisy),
    "noisy input": lambda x_noisy: x_noisy,
    "plain ae": lambda x_noisy: evaluate.reconstruct(ae, x_noisy),
    "pca-64": lambda x_noisy: pca_reconstruct(x_noisy, mean, directions[: evaluate.PCA_DENOISE_DIM]),
}
scores = {name: evaluate.denoising_psnr(denoise, x, noisy) for name, denoise in denoisers.items()}
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"{f'PSNR (dB), first {N_TEST} test images':36s} {'sigma 0.5':>9s} {'mask 50 %':>9s}")
for name, row in scores.items():
    print(f"{name:36s} {row['gauss0.5_psnr_db']:9.1f} {row['mask0.5_psnr_db']:9.1f}")
"""),
    code("""
for kind in ("gauss0.5_psnr_db", "mask0.5_psnr_db"):
    assert scores["dae"][kind] > scores["noisy input"][kind] + 5, kind  # the output is much closer to the clean image
    assert scores["dae"][kind] > scores["plain ae"][kind] + 2, kind  # training on corrupted inputs is what does it
    assert scores["dae"][kind] > scores["pca-64"][kind], kind  # and it beats the best linear projection
card_metrics = {} if TRAIN else aecourse.load_card("dae").get("test_metrics", {})  # filled by aecourse.evaluate
if card_metrics:
    print("model card, all 10,000 test images: " + ", ".join(f"{k} {v:.2f}" for k, v in card_metrics.items()))
"""),
    md("""
## PSNR against the noise level

One trained DAE serves every level, because its training corruption drew a new level
for every image. The curves sweep $\\sigma$ from 0 to 1 and the masked fraction from 0
to 0.9 on `N_CURVE` test images; the shaded band is the range of levels seen in
training. At level 0 the noisy input is the clean image (infinite PSNR, off the chart),
and the DAE and the plain AE show their plain reconstruction quality.
"""),
    code("""
def psnr_curves(corrupt, levels):
    \"\"\"PSNR (dB) of every denoiser at every level; corrupt(x, level, generator) -> noisy x.\"\"\"
    x_curve = x[:N_CURVE]
    curves = {name: [] for name in denoisers}
    for level in levels:
        x_noisy = corrupt(x_curve, level, torch.Generator(device).manual_seed(0))
        for name, denoise in denoisers.items():
            value = metrics.psnr(denoise(x_noisy), x_curve)
            curves[name].append(value if math.isfinite(value) else float("nan"))  # nan: not drawn
    return curves


sigmas = [round(0.1 * i, 1) for i in range(11)]  # 0, 0.1, ..., 1
fractions = [round(0.1 * i, 1) for i in range(10)]  # 0, 0.1, ..., 0.9
gauss_curves = psnr_curves(gaussian_noise, sigmas)
mask_curves = psnr_curves(mask_pixels, fractions)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
plot.curve(sigmas, gauss_curves, xlabel="Gaussian noise sigma", ylabel="PSNR against the clean image (dB)",
           title="Gaussian noise", ax=axes[0])
plot.curve(fractions, mask_curves, xlabel="fraction of pixels set to 0", ylabel="PSNR against the clean image (dB)",
           title="masking", ax=axes[1])
axes[0].axvspan(0, dae.config.sigma_max, color="0.9", zorder=0, label="training range")
axes[1].axvspan(0, dae.config.mask_max, color="0.9", zorder=0)
axes[0].legend(frameon=False)
plt.show()
"""),
    code("""
gain = {kind: [d - n for d, n in zip(curves["dae"][1:], curves["noisy input"][1:])]
        for kind, curves in (("gaussian", gauss_curves), ("mask", mask_curves))}
print("dB the DAE adds to its input, level by level:")
for kind, values in gain.items():
    print(f"{kind:9s}" + " ".join(f"{v:5.1f}" for v in values))
assert all(v > 0 for v in gain["gaussian"][1:]) and all(v > 0 for v in gain["mask"])  # from sigma = 0.2 on, and always for masking
worse = [s for s, v in zip(sigmas[1:], gain["gaussian"]) if v < 0]
print(f"the noisy input beats the DAE at sigma = {worse}" if worse else "the DAE beats its input at every sigma > 0")
print(f"on clean images: dae {gauss_curves['dae'][0]:.1f} dB, plain ae {gauss_curves['plain ae'][0]:.1f} dB")
"""),
    md("""
Four things to read off the curves. The DAE's output degrades slowly while its input
degrades fast, so the gain grows with the noise. Past the training range it keeps
working for Gaussian noise but drops quickly for masking, once more pixels are missing
than it ever saw missing in training. Light Gaussian noise is the hard case: every
output passes through the DAE's code, so it cannot be more accurate than the DAE's
reconstruction of a clean image (its value at level 0), and at $\\sigma = 0.1$ the noisy
input is about that good already. A denoiser with a bottleneck pays off once the noise
costs more than the bottleneck does. The plain AE, fed noisy images, is a poor
denoiser (under light Gaussian noise it is worse than doing nothing), while the PCA projection
does well on Gaussian noise (noise spread evenly over 784 directions loses most of its
energy when projected onto 64) and poorly on masking, whose damage (dimming, holes) lies
largely inside the principal subspace.

## Try it: the noise level, live

Choose the kind of noise and drag the level; the PSNR of the noisy and of the denoised
image are shown under the pictures (this needs a running notebook; the static figure
after it shows a sweep of levels).
"""),
    code("""
widgets.noise_explorer(dae, x[:16])
""", tags=["remove-output"]),
    code("""
sigma_sweep = torch.linspace(0.1, 1.0, 10, device=device)[:, None, None, None]  # (10, 1, 1, 1): 0.1 ... 1.0
mask_sweep = torch.linspace(0.0, 0.9, 10, device=device)[:, None, None, None]  # (10, 1, 1, 1): 0 ... 0.9
one = x[3:4].expand(10, -1, -1, -1)  # one test image, ten times
generator = torch.Generator(device).manual_seed(0)
gauss_sweep = gaussian_noise(one, sigma_sweep, generator)
mask_sweep = mask_pixels(one, mask_sweep, generator)
plot.reconstructions(
    [gauss_sweep, evaluate.reconstruct(dae, gauss_sweep), mask_sweep, evaluate.reconstruct(dae, mask_sweep)],
    titles=("noisy", "denoised", "masked", "denoised"), n=10,
    title="left to right: sigma 0.1 to 1.0 (rows 1-2), masked fraction 0 to 0.9 (rows 3-4)",
)
"""),
    md("""
## Back towards the manifold

The text page showed, on a toy circle, that the optimal denoiser moves a corrupted point
back towards the data. On images the data manifold is not known, but the training set
is a dense sample of it, so the distance from an image to its nearest training image is
a rough measure of how far off the manifold the image lies. A clean test image sits at
some distance from its nearest training image (it is a new image, after all); noise
throws it much further away; if the DAE pulls noisy images back towards the data, their
denoised versions should be about as close to the training set as clean images are.
"""),
    code("""
train_flat = x_train.reshape(len(x_train), -1).to(device)  # (60000, P)


def nearest_distance(images):
    \"\"\"Euclidean pixel distance (N,) from each image to its nearest training image.\"\"\"
    flat = images.reshape(len(images), -1)  # (N, P)
    return torch.cat([torch.cdist(chunk, train_flat).min(1).values for chunk in flat.split(50)])


subset = slice(0, N_NEIGHBOURS)
distances = {"clean test images": nearest_distance(x[subset])}
for kind, label in (("gauss0.5", "sigma 0.5"), ("mask0.5", "mask 50 %")):
    distances[f"noisy, {label}"] = nearest_distance(noisy[kind][subset])
    distances[f"denoised, {label}"] = nearest_distance(denoised[kind][subset])
fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
bins = torch.linspace(0, float(max(d.max() for d in distances.values())), 50)
for name, d in distances.items():
    ax.hist(d.cpu(), bins=bins.tolist(), histtype="step", lw=1.5, label=name)
ax.set(xlabel="distance to the nearest training image (pixel space)", ylabel="test images")
ax.legend(frameon=False, fontsize="small")
plt.show()
medians = {name: d.median().item() for name, d in distances.items()}
for name, value in medians.items():
    print(f"median distance, {name:22s} {value:5.2f}")
for label in ("sigma 0.5", "mask 50 %"):
    assert medians[f"denoised, {label}"] < medians[f"noisy, {label}"]  # pulled back towards the data
"""),
    md("""
The denoised images land near the training images, even a little nearer than the clean
test images do: the denoiser returns a posterior mean, a slightly smoothed and
more typical image, and typical images have close neighbours.

What if we keep going? Applying the denoiser again to its own output moves the image
further along the same field. Starting from heavily noisy images ($\\sigma = 0.8$,
beyond the training range), the first step makes one long jump back to the data, and
later steps are short: the images stay as close to the training set as they got after
one step, so they move *along* the learnt manifold rather than off it. The distance to
the clean original tells the other half of the story: repeated denoising does not find
the lost details again, it slowly drifts towards a more typical garment.
"""),
    code("""
start = gaussian_noise(x[:N_NEIGHBOURS], 0.8, torch.Generator(device).manual_seed(1))
chain = [start]
for _ in range(8):
    chain.append(evaluate.reconstruct(dae, chain[-1]))  # x_{t+1} = r(x_t)
steps = (0, 1, 2, 4, 8)
plot.reconstructions([x[:10]] + [chain[t][:10] for t in steps], titles=["clean"] + [f"step {t}" for t in steps], n=10)
"""),
    code("""
to_data = [nearest_distance(images).median().item() for images in chain]
to_original = [metrics.psnr(images, x[:N_NEIGHBOURS]) for images in chain]
moved = [(b - a).flatten(1).norm(dim=1).median().item() for a, b in zip(chain, chain[1:])]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
plot.curve(range(len(chain)), {"denoised chain": to_data, "clean test images": [medians["clean test images"]] * len(chain)},
           xlabel="denoising steps t", ylabel="median distance", title="to the nearest training image", ax=axes[0])
plot.curve(range(len(chain)), {"denoised chain": to_original}, xlabel="denoising steps t", ylabel="PSNR (dB)",
           title="against the clean original", ax=axes[1])
plot.curve(range(1, len(chain)), {"||x_t - x_(t-1)||": moved}, xlabel="denoising steps t", ylabel="median step length",
           title="how far each step moves", ax=axes[2])
plt.show()
assert to_data[1] < to_data[0] / 2 and moved[-1] < moved[0] / 5  # one big step towards the data, then small ones
"""),
    md("""
## Exercises
"""),
    *exercise(
        "ex-dae-clean",
        """
**The price of robustness.** Measure the reconstruction PSNR of `dae` and `ae` on the
clean test images `x` with `evaluate.reconstruction_psnr`, and compare each with PCA of
its own code size, the best linear code of that size (`pca_reconstruct` with the first
`latent_dim` directions). Which model makes better use of its code for plain
reconstruction, and why?
""",
        [
            code("""
over_pca = {}
for name, model in models.items():
    m = model.config.latent_dim
    own = evaluate.reconstruction_psnr(model, x)
    linear = metrics.psnr(pca_reconstruct(x, mean, directions[:m]), x)  # PCA with as many numbers per image
    over_pca[name] = own - linear
    print(f"{name}: {m}-D code, {own:.1f} dB on clean test images; PCA-{m} {linear:.1f} dB; gain {over_pca[name]:+.1f} dB")
assert over_pca["ae"] > over_pca["dae"] > 0  # both beat linear codes; the plain AE by more
"""),
            md("""
Both nonlinear autoencoders beat the best linear code of their size, but the plain AE
gains much more over it: clean reconstruction is the only task it was trained for,
while the DAE's loss was averaged over corruptions, most of them far from clean, and
its code and decoder had to serve that harder task. Whatever absolute advantage the
DAE has on clean images comes from its wider code, not from its training. Its real
advantage is robustness: its output barely changes when the input is damaged, as the
curves show. Which model is better depends on the input it will be given.
"""),
        ],
    ),
    *exercise(
        "ex-dae-keep-visible",
        """
**Keep what you know.** Under masking, every non-zero pixel of $\\tilde{x}$ is exactly the
clean value. Build a combined estimate that keeps the non-zero pixels of the masked
input and takes the DAE's output only where $\\tilde{x}$ is zero, and compare its PSNR at
50 % masking with the DAE's output alone. Why does the DAE not do this by itself, and
why would the same trick fail for Gaussian noise?
""",
        [
            code("""
x_masked = noisy["mask0.5"]
combined = torch.where(x_masked > 0, x_masked, denoised["mask0.5"])  # known pixels kept, holes filled in
combined_psnr = metrics.psnr(combined, x)
print(f"dae alone {scores['dae']['mask0.5_psnr_db']:.2f} dB, known pixels kept {combined_psnr:.2f} dB")
assert combined_psnr > scores["dae"]["mask0.5_psnr_db"]
"""),
            md("""
Keeping the known pixels can only help where the DAE's output differs from them, and it
does: the decoder squeezes every image through its code, so it cannot
reproduce the exact values of the pixels it was shown, only a smooth image consistent
with them. A network with skip connections from input to output (like a U-Net) could
learn to copy the visible pixels; the bottleneck of this one cannot. For Gaussian noise
no pixel is known exactly, so there is nothing to keep: the noisy value is the clean
value plus an error of standard deviation $\\sigma$, and the best estimate of each pixel
mixes it with what the rest of the image implies.
"""),
        ],
    ),
    *exercise(
        "ex-dae-finetune",
        """
**Turn the plain autoencoder into a denoiser.** Copy the weights of `ae` into a `DAE`
with the same configuration (`DAE(DAEConfig(**asdict(ae.config)))` and
`load_state_dict`), fine-tune it for one epoch on the first 5,000 training images with
`losses.dae_loss` and `aecourse.fit`, and measure its PSNR at $\\sigma = 0.5$ and 50 %
masking with `evaluate.denoising_psnr`. How far towards `dae` (a longer-trained model
with a wider code) does one short epoch take it, and what does that say about where
the denoising skill lives?
""",
        [
            code("""
student = DAE(DAEConfig(**asdict(ae.config))).to(device)
student.load_state_dict(ae.state_dict())  # the same architecture, so the plain AE's weights fit
train_subset = data.load(DATA, "train").subset(5000)
aecourse.fit(student, losses.dae_loss, (train_subset.x, train_subset.y),
             aecourse.TrainConfig(epochs=1, seed=0), device=device, progress=False)
student.eval()
fine_tuned = evaluate.denoising_psnr(lambda x_noisy: evaluate.reconstruct(student, x_noisy), x, noisy)
for kind, value in fine_tuned.items():
    print(f"{kind}: plain ae {scores['plain ae'][kind]:.1f} dB -> fine-tuned {value:.1f} dB (dae {scores['dae'][kind]:.1f} dB)")
assert all(fine_tuned[kind] > scores["plain ae"][kind] + 1 for kind in fine_tuned)
"""),
            md("""
A single pass over 5,000 images (40 gradient steps) already gains several dB over the
plain autoencoder. The
plain autoencoder's decoder knows what clothes look like; what it lacks is an encoder
that maps a damaged image to the code of the clean one rather than to the code of the
damage. Changing the training pairs changes what the network is asked to be invariant
to, and that is quickly learnt once the decoder is good. This is also why
Vincent et al. (2008) used denoising to pre-train features: the encoder of a
DAE has to recognise the garment behind the noise.
"""),
        ],
    ),
]


if __name__ == "__main__":
    write(CELLS, OUT)
