"""Write notebooks/05_vqvae.ipynb (chapter 5: the VQ-VAE and its learned prior) with nbformat.

    .venv/bin/python scripts/notebooks/make_05_vqvae.py

The notebook is saved without outputs; edit this script, not the .ipynb, and run it again.
"""

from __future__ import annotations

from pathlib import Path

from cells import code, exercise, install_cell, md, write

OUT = Path(__file__).resolve().parents[2] / "notebooks" / "05_vqvae.ipynb"
NAME = "05_vqvae"


CELLS = [
    md(f"""
# Hands-on: VQ-VAE codes and samples from a learned prior

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aecourse/aecourse/blob/main/notebooks/{NAME}.ipynb)

This notebook goes with the text page [VQ-VAE and a learned prior](../book/05_vqvae.md).
It loads the course's trained VQ-VAE, which turns a Fashion-MNIST image into a $7 \\times 7$
grid of codes from a codebook of 512, and the gated PixelCNN prior trained on those
grids. It looks at reconstructions, at the code grid of a few images and at how much of
the codebook is used; shows that decoding random codes gives noise; and then generates
new images by sampling code grids from the prior, measuring the prior in bits per code
and the samples' quality with a Frechet distance, and varying the sampling temperature.
"""),
    install_cell(),
    code("""
import math

import matplotlib.pyplot as plt
import torch

import aecourse
import aecourse.train
from aecourse import data, evaluate, metrics, plot

aecourse.set_seed(0)
device = aecourse.default_device()
"""),
    code("""
TRAIN = False  # True: retrain with aecourse.train on this machine's device (e.g. a Colab GPU)
DATA = "fashion-mnist"  # or "mnist" / "cifar10" when online and TRAIN = True
EPOCHS = None  # None: the recipe's
N_SAMPLES = 200  # prior samples per Frechet distance (the course's protocol: 10,000, on a GPU)
""", tags=["parameters"]),
    md("""
## The trained models

`vqvae` is the VQ-VAE, `prior` the gated PixelCNN over its code grids, and `classifier`
the small Fashion-MNIST classifier whose features define the Frechet distance. When
retraining, the models and their cards are saved in `OUT`, and the prior learns the codes
of the VQ-VAE trained just before it. The model cards say where and how long each model
was trained.
"""),
    code("""
OUT = "runs"  # where TRAIN = True saves the retrained models and their cards
vqvae = aecourse.train.train_recipe("vqvae", epochs=EPOCHS, data=DATA, device=device, out=OUT) if TRAIN else aecourse.load_pretrained("vqvae", device=device)
prior = aecourse.train.train_recipe("prior", epochs=EPOCHS, data=DATA, device=device, out=OUT, vqvae_from=OUT) if TRAIN else aecourse.load_pretrained("prior", device=device)
# the Frechet distance's feature space: the shipped classifier knows Fashion-MNIST only
retrain_classifier = TRAIN and DATA != "fashion-mnist"
classifier = aecourse.train.train_recipe("classifier", epochs=EPOCHS, data=DATA, device=device, out=OUT) if retrain_classifier else aecourse.load_pretrained("classifier", device=device)

for name, retrained in {"vqvae": TRAIN, "prior": TRAIN, "classifier": retrain_classifier}.items():
    card = aecourse.load_card(name, weights_dir=OUT if retrained else None)
    print(f"{name:<11} trained on {card.get('device_name', card.get('device'))}: "
          f"{card.get('epochs')} epochs in {card.get('wall_time_s', float('nan')) / 60:.1f} min")

K, g = vqvae.config.codebook_size, vqvae.config.grid
print(f"codebook of K = {K} codes in R^{vqvae.config.embedding_dim}; code grid {g} x {g}")
"""),
    md("""
## Reconstructions

Each image goes through the encoder, every cell of the $7 \\times 7$ grid snaps to its
nearest code, and the decoder sees only those codes. The 49 integers are all the decoder
gets, so the reconstruction quality says how much of an image 441 bits can hold.
The PSNR is measured on a fixed subset, the first 1,000 test images.
"""),
    code("""
test = data.load(DATA, "test")
x = test.x[:1000].to(device)  # (1000, C, 28, 28)
with torch.no_grad():
    indices = vqvae.encode(x)  # (1000, 7, 7) integers in [0, K)
    x_hat = vqvae.decode_indices(indices)  # (1000, C, 28, 28)
"""),
    code("""
# NBVAL_CHECK_OUTPUT
recon_psnr = metrics.psnr(x_hat, x)
print(f"reconstruction PSNR on the first 1,000 test images: {recon_psnr:.1f} dB")
"""),
    code("""
assert recon_psnr > 18.0, recon_psnr  # sharp reconstructions from 49 codes
plot.reconstructions(x, x_hat, n=12, title="test images and their reconstructions from 49 codes")
"""),
    md("""
## The code grid of an image

Below each image is its grid of codes as a heat map, with the index written in each
cell. The colours only tell codes apart (an index is a name, not a quantity). Background
cells share a handful of codes, and a pattern that repeats, such as the outer edge of a
trouser leg, keeps its code from row to row. Each code describes a neighbourhood, not
a single pixel block: the encoder sees beyond its cell, so the same empty background
gets different codes next to different edges.
"""),
    code("""
show = [0, 1, 2, 8, 13]  # a few test images of different classes
fig, axes = plt.subplots(2, len(show), figsize=(2.4 * len(show), 5), layout="constrained")
for col, n in enumerate(show):
    axes[0, col].imshow(x[n, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    axes[0, col].set_title(test.classes[int(test.y[n])], fontsize="small")
    axes[1, col].imshow(indices[n].cpu(), cmap="tab20", interpolation="nearest")
    for (i, j), k in zip(torch.cartesian_prod(torch.arange(g), torch.arange(g)).tolist(), indices[n].flatten().tolist()):
        axes[1, col].text(j, i, k, ha="center", va="center", fontsize=6)
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
axes[1, 0].set_ylabel("7 x 7 codes")
plt.show()
"""),
    md("""
What does one code stand for? Filling the whole grid with a single code and decoding it
shows the texture the decoder paints for it; here for the eight codes used most often on
the test images. The most common codes are plain ones: the black background and the
flat grey inside a garment.
"""),
    code("""
decode = plot.image_decoder(vqvae)  # indices (B, 7, 7) -> images, on the model's device, no gradients
with torch.no_grad():
    test_codes = torch.cat([vqvae.encode(xb.to(device)) for xb in test.x.split(1000)])  # (10000, 7, 7)
counts = torch.bincount(test_codes.flatten().cpu(), minlength=K)  # (K,)
top = counts.argsort(descending=True)[:8]
filled = top[:, None, None].expand(-1, g, g).to(device)  # (8, 7, 7): one code everywhere
plot.image_grid(decode(filled), nrow=8, title=f"grids filled with one code: {top.tolist()}")
"""),
    md("""
## How much of the codebook is used

The histogram counts how often each of the $K$ codes occurs in the code grids of all
10,000 test images, sorted from the most to the least used. The usage is the fraction of
codes that occur at all, and the perplexity, $\\exp$ of the entropy of the histogram,
is the number of equally used codes with the same entropy (its equation is on the text
page). Dead codes would show up as a long flat tail at zero; the shipped model
restarts them during training.
"""),
    code("""
plot.codebook_histogram(test_codes, K, title="test set")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
usage, perplexity = metrics.codebook_usage(test_codes, K)
print(f"codebook usage on the test set: {usage:.0%} of {K} codes, perplexity {perplexity:.0f}")
"""),
    code("""
assert usage > 0.5 and perplexity > 0.25 * K, (usage, perplexity)  # most of the codebook is alive
"""),
    md("""
## Decoding random codes gives noise

Every grid of 49 integers below $K$ can be decoded, so why not generate images by drawing
the codes at random? Two ways of drawing them independently: **uniformly** over the $K$
codes (the prior the VQ-VAE assumed in training), and from the **code histogram** of the
test set, which at least uses common codes often. Both ignore how neighbouring codes
depend on each other, and both decode to noise next to real images.
"""),
    code("""
gen = torch.Generator().manual_seed(0)
p_codes = counts.double() / counts.sum()  # (K,) code frequencies on the test set
random_codes = {
    "uniform random codes": torch.randint(K, (N_SAMPLES, g, g), generator=gen),
    "codes from the histogram": torch.multinomial(p_codes, N_SAMPLES * g * g, replacement=True, generator=gen).view(N_SAMPLES, g, g),
}
random_images = {name: decode(codes) for name, codes in random_codes.items()}

fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), layout="constrained")
plot.image_grid(test.x[1000:1032], nrow=8, ax=axes[0], title="real test images")
for ax, (name, images) in zip(axes[1:], random_images.items()):
    plot.image_grid(images[:32], nrow=8, ax=ax, title=name)
plt.show()
"""),
    md("""
## The prior: bits per code

The gated PixelCNN models $p(\\mathbf{k}) = \\prod_i p(k_i \\mid k_{<i})$ in raster
order (see the text page). Its negative log-likelihood on test code grids, in bits per
code, says how well it predicts each code from the ones before it.
Two baselines: the uniform prior costs $\\log_2 K = 9$ bits per code, and independent codes
drawn from the test histogram cost its entropy, $\\log_2$ of the perplexity above.
"""),
    code("""
with torch.no_grad():
    log_prob = prior.log_prob(test_codes[:1000].to(device)).cpu()  # (1000,) log p(k) in nats, one per grid
image_bits = -log_prob / math.log(2)  # bits per image
prior_bits = image_bits.mean().item() / (g * g)
histogram_bits = math.log2(perplexity)  # entropy of the test code histogram
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"uniform codes:        {math.log2(K):.1f} bits per code")
print(f"codes from histogram: {histogram_bits:.1f} bits per code")
print(f"gated PixelCNN prior: {prior_bits:.1f} bits per code")
"""),
    code("""
assert prior_bits < histogram_bits < math.log2(K)  # the prior has learnt how codes depend on each other
print(f"an image costs {image_bits.mean():.0f} bits under the prior, {g * g * math.log2(K):.0f} bits "
      f"with uniform codes, and {28 * 28 * 8} bits as raw 8-bit pixels")
"""),
    md("""
## Sampling new images

Sampling draws the 49 codes one at a time in raster order, each from the prior's
categorical distribution given the codes drawn so far (49 forward passes), and the
VQ-VAE's decoder turns the grid into an image. Side by side: prior samples, decoded
uniform random codes, and real test images.
"""),
    code("""
with torch.no_grad():
    prior_codes = prior.sample(N_SAMPLES, generator=torch.Generator(device).manual_seed(0))  # (N, 7, 7)
    prior_images = decode(prior_codes)

fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), layout="constrained")
plot.image_grid(prior_images[:32], nrow=8, ax=axes[0], title="samples from the prior")
plot.image_grid(random_images["uniform random codes"][:32], nrow=8, ax=axes[1], title="uniform random codes")
plot.image_grid(test.x[1000:1032], nrow=8, ax=axes[2], title="real test images")
plt.show()
"""),
    md(f"""
## Sample quality: Frechet distance

The Frechet distance fits a Gaussian to the classifier's features of each set of images
and measures how far apart the two Gaussians are (the FID formula); lower is closer to the
data. Every set below has `N_SAMPLES` images and is compared with the features of the first
1,000 test images. Held-out real images (test images from 1,000 on) give the floor at this
sample size, which is well above zero because a few hundred images estimate a
128-dimensional covariance poorly; random codes give the obviously bad end. Numbers from
different sample sizes are not comparable, and these are not the protocol's 10,000-sample
figures.
"""),
    code("""
reference = metrics.classifier_features(classifier, x)  # (1000, F) features of the first 1,000 test images
candidates = {
    "real (held out)": test.x[1000 : 1000 + N_SAMPLES],
    "prior samples": prior_images,
    **random_images,
}
fid = {name: evaluate.sample_fid(classifier, images.to(device), reference) for name, images in candidates.items()}
for name, value in fid.items():
    print(f"{name:<26} {value:8.1f}")
assert fid["real (held out)"] < fid["prior samples"] < min(fid["uniform random codes"], fid["codes from the histogram"])

fig, ax = plt.subplots(figsize=(6, 2.6), layout="constrained")
ax.barh(list(fid)[::-1], list(fid.values())[::-1], color=["0.6", "0.6", "tab:blue", "0.3"])
ax.set_xlabel(f"Frechet distance to test features ({N_SAMPLES} images each, lower is better)")
plt.show()
"""),
    md("""
## Temperature

Dividing the prior's logits by a temperature $T$ before sampling sharpens ($T < 1$) or
flattens ($T > 1$) every conditional. Low temperatures pick the likeliest codes: clean,
plain and repetitive images. High temperatures make rare codes likelier: more variety,
then noise. The slider redraws the samples live (in Jupyter or
Colab); the figure after it is the static version.
"""),
    code("""
import ipywidgets

def show_samples(temperature=1.0):
    with torch.no_grad():
        codes = prior.sample(16, generator=torch.Generator(device).manual_seed(1), temperature=temperature)
    display(plot.image_grid(decode(codes), nrow=8, title=f"T = {temperature:.2f}"))

ipywidgets.interact(show_samples, temperature=ipywidgets.FloatSlider(value=1.0, min=0.2, max=2.0, step=0.1, continuous_update=False));
""", tags=["remove-output"]),
    code("""
temperatures = (0.5, 0.8, 1.0, 1.3)
with torch.no_grad():
    rows = [decode(prior.sample(10, generator=torch.Generator(device).manual_seed(1), temperature=t)) for t in temperatures]
plot.reconstructions(rows, titles=[f"T = {t}" for t in temperatures], n=10, title="prior samples at four temperatures")
"""),
    md("""
## Exercises
"""),
    *exercise(
        "ex-vq-perplexity",
        """
**Perplexity by hand.** A quantiser with $K = 8$ codes assigns the eight cells of a small
grid to the codes `[3, 3, 3, 3, 7, 7, 1, 5]`. Compute the codebook usage and the
perplexity by hand (use base-2 logarithms: the perplexity is the same in any base), then
check both with `metrics.codebook_usage`. Which assignments of eight cells give the
largest and the smallest possible perplexity?
""",
        [
            md("""
The frequencies are $p = (\\tfrac12, \\tfrac14, \\tfrac18, \\tfrac18)$ for codes 3, 7, 1, 5
and 0 for the other four codes, so the usage is $4/8 = 50\\,\\%$. The entropy is
$\\tfrac12 \\cdot 1 + \\tfrac14 \\cdot 2 + 2 \\cdot \\tfrac18 \\cdot 3 = 1.75$ bits and the
perplexity $2^{1.75} \\approx 3.36$: a bit less than the 4 codes used, because they are
not used equally. Eight different codes give the maximum, 8 ($= K$); one code in every
cell gives the minimum, 1.
"""),
            code("""
codes = torch.tensor([3, 3, 3, 3, 7, 7, 1, 5])
entropy_bits = 0.5 * 1 + 0.25 * 2 + 2 * 0.125 * 3
usage, pp = metrics.codebook_usage(codes, codebook_size=8)
print(f"usage {usage:.0%}, perplexity {pp:.3f} (by hand {2 ** entropy_bits:.3f})")
assert usage == 0.5 and math.isclose(pp, 2**1.75)
assert math.isclose(metrics.codebook_usage(torch.arange(8), 8)[1], 8)
assert math.isclose(metrics.codebook_usage(torch.zeros(8, dtype=torch.long), 8)[1], 1)
"""),
        ],
    ),
    *exercise(
        "ex-vq-commitment",
        """
**Where the commitment loss sends its gradient.** Run `vqvae` on a batch of test images
and take the gradient of $\\beta \\cdot$ `commitment_loss` alone with respect to the
encoder (with `pre_quant`), the codebook and the decoder. Show that only the encoder
receives one, and that it doubles when $\\beta$ doubles. Then remove the stop-gradient,
using $\\lVert z_e - \\mathbf{e}_k \\rVert^2$ computed from `out.z_e` and
`vqvae.quantizer.lookup(out.indices)`: which parameters does it move now, and why would
that be a poor loss?
""",
        [
            code("""
xb = test.x[:16].to(device)
out = vqvae(xb)
groups = {
    "encoder": [*vqvae.encoder.parameters(), *vqvae.pre_quant.parameters()],
    "codebook": [vqvae.quantizer.codebook],
    "decoder": [*vqvae.decoder.parameters()],
}

def grad_norms(term):
    norms = {}
    for name, params in groups.items():
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        norms[name] = math.sqrt(sum(float(gr.pow(2).sum()) for gr in grads if gr is not None))
    return norms

beta = vqvae.config.beta
committed = grad_norms(beta * out.commitment_loss)
doubled = grad_norms(2 * beta * out.commitment_loss)
unstopped = grad_norms(torch.nn.functional.mse_loss(out.z_e, vqvae.quantizer.lookup(out.indices)))
print("beta * commitment:", committed)
print("2 beta * commitment:", doubled)
print("no stop-gradient:  ", unstopped)
assert committed["encoder"] > 0 and committed["codebook"] == committed["decoder"] == 0
assert math.isclose(doubled["encoder"], 2 * committed["encoder"], rel_tol=1e-5)
assert unstopped["encoder"] > 0 and unstopped["codebook"] > 0 and unstopped["decoder"] == 0
"""),
            md("""
With the stop-gradient the term only pulls the encoder's outputs towards their codes.
Without it the same term also pulls the codes towards the encoder's outputs, with the
same weight $\\beta$ for both sides: the codebook and the encoder then chase each other,
and the two jobs can no longer be weighted separately (codes should follow the data
quickly, the encoder should commit only gently, hence a codebook weight of 1 and
$\\beta = 0.25$).
"""),
        ],
    ),
    *exercise(
        "ex-vq-temperature",
        """
**Temperature, measured.** Sample 32 code grids at each of $T = 0.5, 1, 2$. For each
temperature compute (a) the perplexity of all the codes drawn (a measure of diversity) and
(b) the prior's own cost of the samples at $T = 1$, in bits per code
(`prior.log_prob`). How do both change with $T$, and how do (b)'s values compare with the
prior's bits per code on real test grids?
""",
        [
            code("""
rows = {}
for t in (0.5, 1.0, 2.0):
    with torch.no_grad():
        codes = prior.sample(32, generator=torch.Generator(device).manual_seed(2), temperature=t)
        bits = -prior.log_prob(codes).mean().item() / (g * g) / math.log(2)
    rows[t] = (metrics.codebook_usage(codes, K)[1], bits)
    print(f"T = {t}: perplexity of the codes drawn {rows[t][0]:6.1f}, {bits:5.2f} bits per code under the prior")
print(f"real test grids: {prior_bits:.2f} bits per code")
assert rows[0.5][0] < rows[1.0][0] < rows[2.0][0]  # hotter: more diverse
assert rows[0.5][1] < rows[1.0][1] < rows[2.0][1]  # ... and less likely under the prior
"""),
            md("""
Both grow with $T$. At $T < 1$ the samples are likelier under the prior than real
grids are (fewer bits per code): they are typical of its most common patterns, clean but
repetitive. At $T = 1$ the samples cost about as many bits as real grids, as they should
if the prior fits the data. At $T = 2$ they cost far more: the prior itself finds them
implausible, and they look it.
"""),
        ],
    ),
    *exercise(
        "ex-vq-bits",
        """
**What an image costs.** Under the uniform prior every code grid costs $49 \\log_2 K = 441$
bits. Using `image_bits` (the prior's $-\\log_2 p(\\mathbf{k})$ of the first 1,000 test
images, computed above), find the mean cost of each class. Which classes are cheapest
and which dearest, and why? How does the prior's cost compare with 441 bits and with the
6,272 bits of the raw 8-bit pixels?
""",
        [
            code("""
labels = test.y[:1000]
per_class = torch.stack([image_bits[labels == c].mean() for c in range(len(test.classes))])
order = per_class.argsort()
fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
ax.barh([test.classes[c] for c in order.tolist()], per_class[order].tolist(), color="tab:blue")
ax.axvline(g * g * math.log2(K), color="0.3", linestyle="--", label="uniform codes")
ax.set_xlabel("bits per image under the prior")
ax.legend(frameon=False, loc="lower right")
plt.show()
print(f"cheapest: {test.classes[order[0]]} ({per_class[order[0]]:.0f} bits), "
      f"dearest: {test.classes[order[-1]]} ({per_class[order[-1]]:.0f} bits)")
assert (image_bits < g * g * math.log2(K)).all()  # every test image is cheaper than under uniform codes
"""),
            md("""
In our run trousers are by far the cheapest: a simple, regular shape on a wide
background, whose repeated codes the prior predicts almost for free. Bags, shirts and
sandals cost the most: bags and shirts come in many shapes and prints, and sandals are
thin irregular straps whose codes are hard to guess from their neighbours. Even the
dearest images cost far less than the 441 bits of uniform codes, and the codes are a
small fraction of the 6,272 bits of the pixels; the price is that the decoded image is a
reconstruction, not the original.
"""),
        ],
    ),
]


if __name__ == "__main__":
    write(CELLS, OUT, id_prefix="vq")
