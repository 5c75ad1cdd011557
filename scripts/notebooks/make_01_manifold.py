"""Write notebooks/01_manifold.ipynb (chapter 1: how many dimensions Fashion-MNIST needs) with nbformat.

    .venv/bin/python scripts/notebooks/make_01_manifold.py

The notebook is saved without outputs; edit this script, not the .ipynb, and run it again.
"""

from __future__ import annotations

from pathlib import Path

from cells import code, exercise, install_cell, md, write

OUT = Path(__file__).resolve().parents[2] / "notebooks" / "01_manifold.ipynb"
NAME = "01_manifold"


CELLS = [
    md(f"""
# Hands-on: how many dimensions does Fashion-MNIST need?

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aecourse/aecourse/blob/main/notebooks/{NAME}.ipynb)

This notebook goes with the text page [The manifold hypothesis and latent spaces](../book/01_manifold.md).
There, a sphere and a swiss roll in three dimensions needed only two numbers per point.
Here we ask the same of Fashion-MNIST {{cite:p}}`xiao2017fashion`, whose images have 784
pixels. We measure how much of the images' variance $k$ principal directions explain,
how well PCA reconstructs the test images with $k$ = 2 to 64 numbers, and how well the
course's trained autoencoders do with 2 and 16. Set `TRAIN = True` to train an
autoencoder at every size instead (on a GPU, e.g. on Colab).
"""),
    install_cell(),
    code("""
import math

import matplotlib.pyplot as plt
import torch

import aecourse
import aecourse.train
from aecourse import data, evaluate, metrics, plot
from aecourse.models.pca import pca_reconstruct
from aecourse.recipes import RECIPES

aecourse.set_seed(0)
device = aecourse.default_device()
"""),
    code("""
TRAIN = False  # True: retrain with aecourse.train on this machine's device (e.g. a Colab GPU)
DATA = "fashion-mnist"  # or "mnist" / "cifar10" when online and TRAIN = True
EPOCHS = None  # None: the recipe's
N_TEST = 1000  # test images for the reconstructions and their PSNR (the first ones)
SIZES = (2, 4, 8, 16, 32, 64)  # latent sizes compared
""", tags=["parameters"]),
    md("""
## The autoencoders

The course ships two convolutional autoencoders trained on Fashion-MNIST: `ae-2d`, with
a latent vector of 2 numbers, and `ae`, with 16. With `TRAIN = True` the notebook
trains one autoencoder for every size in `SIZES` instead, each with the `ae` recipe of
`aecourse.recipes` and its `latent_dim` replaced (`train_recipe` runs the course's
training loop, which chapter 2 walks through).
"""),
    code("""
train = data.load(DATA, "train")
test = data.load(DATA, "test").subset(N_TEST)
x = test.x.to(device)  # (N_TEST, C, H, W) in [0, 1]
if TRAIN:  # one autoencoder per latent size: the `ae` recipe with latent_dim replaced
    autoencoders = {
        m: aecourse.train.train_recipe("ae", latent_dim=m, epochs=EPOCHS, data=DATA, device=device)
        for m in SIZES
    }
    print(f"trained {len(SIZES)} autoencoders on {device}, {EPOCHS or RECIPES['ae'].epochs} epochs each")
else:  # the shipped models
    autoencoders = {2: aecourse.load_pretrained("ae-2d", device=device), 16: aecourse.load_pretrained("ae", device=device)}
    for name in ("ae-2d", "ae"):
        card = aecourse.load_card(name)
        print(f"{name:6s} latent size {card['config']['latent_dim']:2d}: trained on {card['device_name']}, "
              f"{card['epochs']} epochs in {card['wall_time_s'] / 60:.1f} min")
"""),
    md("""
## How much variance do $k$ directions explain?

PCA finds the orthonormal directions $u_1, u_2, \\dots$ along which the training images
vary most, with variances $\\lambda_1 \\ge \\lambda_2 \\ge \\dots$. `evaluate.fit_pca`
returns the mean image and all 784 directions, largest variance first; the variance
along each direction is that of the images' coordinates along it. The fraction of the
total variance that the first $k$ directions explain,
$\\sum_{j \\le k} \\lambda_j / \\sum_j \\lambda_j$, is the cumulative curve below.
"""),
    code("""
mean, directions = evaluate.fit_pca(train.x)  # (P,), (P, P): P = C * H * W pixels
mean, directions = mean.to(device), directions.to(device)
coords = (train.x.to(device).flatten(1) - mean) @ directions.T  # (60000, P) coordinates along u_1 .. u_P
variance = coords.var(dim=0)  # lambda_1 >= lambda_2 >= ...
explained = (variance.cumsum(0) / variance.sum()).cpu()  # fraction explained by the first k directions
ks = torch.logspace(0, math.log10(len(explained)), 40).round().long().unique()  # k from 1 to P, log-spaced
fig = plot.curve(ks, {"PCA of the training images": explained[ks - 1]}, xlabel="number of principal directions k",
                 ylabel="fraction of the variance explained", logx=True, title="explained variance (cumulative)")
fig
"""),
    code("""
# NBVAL_CHECK_OUTPUT
needed = {level: int((explained < level).sum()) + 1 for level in (0.5, 0.9, 0.95, 0.99)}
for level, k in needed.items():
    print(f"{level:.0%} of the variance: {k} of {len(explained)} directions")
"""),
    md("""
Half of the variance sits in a handful of directions, but the curve then climbs slowly:
90 % needs dozens of directions, 99 % hundreds. The variance alone does not say how
many numbers an image *needs*, though. Much of the remaining variance is fine detail,
and, as the swiss roll showed, a curved set can need many linear directions and few
nonlinear coordinates. A better measure is how good the reconstructions are.

## Reconstruction quality against latent size

PCA with $k$ directions reconstructs an image as $\\hat{x} = \\mu + U_k U_k^\\top (x - \\mu)$
(`pca_reconstruct`), the best any linear code of $k$ numbers can do. We measure the peak
signal-to-noise ratio (PSNR, in dB, higher is better) of these reconstructions and of
the autoencoders' on the first `N_TEST` test images.
"""),
    code("""
psnr_pca = {k: metrics.psnr(pca_reconstruct(x, mean, directions[:k]), x) for k in SIZES}
psnr_ae = {m: evaluate.reconstruction_psnr(model, x) for m, model in autoencoders.items()}
fig = plot.curve(SIZES, {"PCA": list(psnr_pca.values())}, xlabel="latent size (numbers per image)",
                 ylabel="test PSNR (dB)", logx=True, title="reconstruction quality against latent size")
ax = fig.axes[0]
ax.plot(list(psnr_ae), list(psnr_ae.values()), marker="s", markersize=8, linestyle="-" if TRAIN else ":",
        label="convolutional autoencoder")
ax.set_xticks(SIZES, [str(k) for k in SIZES])
ax.minorticks_off()
ax.legend(frameon=False)
fig
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"PSNR in dB on the first {N_TEST} test images")
for k in SIZES:
    ae_text = f"   autoencoder {psnr_ae[k]:.1f}" if k in psnr_ae else ""
    print(f"latent size {k:2d}: PCA {psnr_pca[k]:.1f}{ae_text}")
"""),
    code("""
pca_values = list(psnr_pca.values())
assert all(a < b for a, b in zip(pca_values, pca_values[1:]))  # every extra direction helps PCA
assert all(psnr_ae[m] > psnr_pca[m] for m in psnr_ae)  # the nonlinear code beats the linear one of the same size
"""),
    md("""
PCA's error has a simple form: the squared error of $\\hat{x}$ is the squared length of
the coordinates it drops, $\\lVert x - \\hat{x} \\rVert^2 = \\sum_{j > k} (u_j^\\top (x - \\mu))^2$.
That gives PCA's PSNR for every $k$ at once, and the number of principal directions
PCA needs to match the autoencoder with 16 latent numbers.
"""),
    code("""
test_coords = ((x.flatten(1) - mean) @ directions.T).double()  # (N_TEST, P), in float64 for the differences below
dropped = (x.flatten(1) - mean).double().square().sum() - test_coords.square().cumsum(dim=1).sum(dim=0)  # squared error of PCA-k, k = 1..P
k_max = 300  # beyond this the difference of two large sums is all rounding error
psnr_every_k = 10 * torch.log10(x.numel() / dropped[:k_max])
for k in SIZES:
    assert math.isclose(psnr_every_k[k - 1].item(), psnr_pca[k], abs_tol=0.01)  # the same as pca_reconstruct
m_ae = max(psnr_ae)
matched = psnr_every_k >= psnr_ae[m_ae]
k_match = int(matched.float().argmax()) + 1 if matched.any() else None
print(f"the autoencoder with {m_ae} latent numbers: {psnr_ae[m_ae]:.1f} dB; "
      + (f"PCA needs {k_match} directions for as much" if k_match else f"more than PCA with {k_max} directions"))
assert k_match is None or k_match > 2 * m_ae  # worth more than twice as many linear numbers
"""),
    md("""
The reconstructions themselves show what the numbers mean. PCA with 2 or 4 directions
gives a blurred, generic garment of roughly the right brightness and shape; detail
arrives slowly as $k$ grows. The autoencoder's reconstructions are sharper than PCA's
with the same number of latent numbers: its decoder is not confined to a flat
subspace, so it can place its images on the curved set where images of clothes lie.
"""),
    code("""
with torch.no_grad():
    rows = [x] + [pca_reconstruct(x[:10], mean, directions[:k]).clamp(0, 1) for k in SIZES] \\
        + [model(x[:10]).x_hat for model in autoencoders.values()]
titles = ["input"] + [f"PCA, k = {k}" for k in SIZES] + [f"AE, m = {m}" for m in autoencoders]
plot.reconstructions(rows, titles=titles, n=10)
"""),
    md("""
So how many dimensions does Fashion-MNIST need? There is no single number: it depends
on how much detail a reconstruction must keep, and on whether the code may be
nonlinear. But the measurements agree with the manifold hypothesis. A few numbers per
image already capture the kind of garment, a few dozen capture most of what the eye
sees, and a nonlinear code does with 16 numbers what a linear one needs several times
as many for. Chapter 2 builds and trains that nonlinear code.

## Exercises
"""),
    *exercise(
        "ex-manifold-eigenimages",
        """
**What the principal directions look like.** Each principal direction $u_j$ is itself
an image of 784 pixels. Show the mean image and the first 15 directions as images
(rescale each to $[0, 1]$ for display), and build one test image up direction by
direction: $\\mu + \\sum_{j \\le k} (u_j^\\top (x - \\mu))\\, u_j$ for $k = 0, 1, 2, 4, 8, \\dots$
What do the first few directions encode?
""",
        [
            code("""
rescale = lambda v: (v - v.min()) / (v.max() - v.min())  # one image to [0, 1] for display
shape = x.shape[1:]
eigenimages = torch.stack([rescale(mean)] + [rescale(u) for u in directions[:15]]).reshape(-1, *shape)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), layout="constrained")
plot.image_grid(eigenimages, nrow=8, ax=axes[0], title="mean image, then u_1 .. u_15")
steps = [0, 1, 2, 4, 8, 16, 32, 64, 128]
build_up = torch.stack([pca_reconstruct(x[:1], mean, directions[:k])[0] if k else mean.reshape(shape) for k in steps])
plot.image_grid(build_up.clamp(0, 1), nrow=len(steps), ax=axes[1], title=f"k = {steps}")
plt.show()
assert torch.allclose(directions[:15] @ directions[:15].T, torch.eye(15, device=device), atol=1e-4)  # orthonormal
"""),
            md("""
The mean is a blurred average garment. The first directions are broad, smooth patterns:
how bright and how wide the garment is, an upright top against a low shoe-shaped band,
two trouser legs, sleeves. Later directions add finer and finer checkered detail. All
of them are patterns over the whole image, and a reconstruction is a weighted sum of
them, which is why PCA's reconstructions stay blurred until many directions are in.
"""),
        ],
    ),
    *exercise(
        "ex-manifold-noise",
        """
**Noise has no manifold.** Repeat the explained-variance curve for 10,000 images whose
pixels are drawn uniformly at random. How much of their variance do 16 directions
explain, compared with Fashion-MNIST? What does this say about the manifold hypothesis?
""",
        [
            code("""
noise = torch.rand(10_000, *x.shape[1:], generator=torch.Generator().manual_seed(0))  # (10000, C, H, W)
noise_mean, noise_directions = evaluate.fit_pca(noise)
noise_variance = ((noise.flatten(1) - noise_mean) @ noise_directions.T).var(dim=0)
noise_explained = noise_variance.cumsum(0) / noise_variance.sum()
plot.curve(ks, {"Fashion-MNIST": explained[ks - 1], "uniform noise": noise_explained[ks - 1]},
           xlabel="number of principal directions k", ylabel="fraction of the variance explained", logx=True)
"""),
            code("""
print(f"16 directions explain {explained[15]:.0%} of Fashion-MNIST's variance and {noise_explained[15]:.1%} of the noise's")
assert noise_explained[15] < 0.05 < 0.5 < explained[15]
"""),
            md("""
For noise every direction holds about the same share, $1/784$ of the variance, and the
curve is a straight diagonal (bent on the logarithmic axis): there is no low-dimensional
structure to find, and no code shorter than the image itself could reconstruct it. The
steep start of Fashion-MNIST's curve is the first sign that real images are not like
that: they vary along few directions much more than along the rest.
"""),
        ],
    ),
    *exercise(
        "ex-manifold-double-exposure",
        """
**Double exposures leave the manifold.** The average of two test images,
$(x_a + x_b) / 2$, is a ghostly double exposure, not a picture of one garment. Reconstruct
1,000 such averages with PCA-16 and with the autoencoder `ae` (16 latent numbers), and
compare each method's PSNR on them with its PSNR on real test images. Which method
notices that the averages are not clothes, and why can the other not?
""",
        [
            code("""
ae16 = autoencoders[16]
pairs = torch.randperm(len(x), generator=torch.Generator().manual_seed(1)).to(device)
averages = (x + x[pairs]) / 2  # (N_TEST, C, H, W) double exposures
reconstruct = {"PCA-16": lambda images: pca_reconstruct(images, mean, directions[:16]),
               "autoencoder, m = 16": lambda images: evaluate.reconstruct(ae16, images)}
gain = {}
for name, f in reconstruct.items():
    real, double = metrics.psnr(f(x), x), metrics.psnr(f(averages), averages)
    gain[name] = double - real
    print(f"{name:20s} real images {real:5.1f} dB, double exposures {double:5.1f} dB")
plot.reconstructions([averages, reconstruct["PCA-16"](averages[:10]).clamp(0, 1), reconstruct["autoencoder, m = 16"](averages[:10])],
                     titles=("double exposure", "PCA-16", "autoencoder"), n=10)
"""),
            code("""
assert gain["PCA-16"] > 0 > gain["autoencoder, m = 16"]  # PCA finds averages easier, the autoencoder harder
"""),
            md("""
PCA reconstructs the averages *better* than real images. Its model of the data is a flat
subspace, and the average of two points near a flat subspace is at least as near to it
(the errors average, and partly cancel). The autoencoder reconstructs them worse: its
decoder produces images near the curved set of real garments, and the middle of the
straight line between two garments lies off that set, as the middle of a chord of the
sphere lies inside it. A double exposure gets pulled towards one garment or a blend
that the decoder knows, and the ghost is lost.
"""),
        ],
    ),
]


if __name__ == "__main__":
    write(CELLS, OUT)
