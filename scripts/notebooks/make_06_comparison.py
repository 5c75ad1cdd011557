"""Write notebooks/06_comparison.ipynb (chapter 6: the four models side by side) with nbformat.

    .venv/bin/python scripts/notebooks/make_06_comparison.py

The notebook is saved without outputs; edit this script, not the .ipynb, and run it again.
"""

from __future__ import annotations

from pathlib import Path

from cells import code, exercise, install_cell, md, write

OUT = Path(__file__).resolve().parents[2] / "notebooks" / "06_comparison.ipynb"
NAME = "06_comparison"


CELLS = [
    md(f"""
# Hands-on: the four models side by side

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aecourse/aecourse/blob/main/notebooks/{NAME}.ipynb)

This notebook goes with the text page [Side by side](../book/06_comparison.md), which
defines the protocol and discusses what each latent space is good for. It loads every
model of the course, the autoencoder `ae`, the denoising autoencoder `dae`, the VAE `vae`
with the classic MLP VAE `vae-mlp` as a baseline, and the VQ-VAE `vqvae` with its
PixelCNN `prior`, and measures them on the same test images: one table of metrics,
the same images reconstructed and denoised by every model, samples with their Fréchet
distances, and what each model cost to train.
"""),
    install_cell(),
    code("""
import math

import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, display

import aecourse
import aecourse.train
from aecourse import data, evaluate, metrics, plot
from aecourse.models.pca import pca_reconstruct

aecourse.set_seed(0)
device = aecourse.default_device()


def html_table(header, rows, align, note=""):
    \"\"\"A plain HTML table (pandas is not needed): align is one letter per column, "l" or "r".\"\"\"
    def tr(cells, tag):
        return "<tr>" + "".join(f'<{tag} style="text-align: {"left" if a == "l" else "right"}">{c}</{tag}>'
                                for c, a in zip(cells, align)) + "</tr>"
    note = f"<p><small>{note}</small></p>" if note else ""
    return HTML("<table>" + tr(header, "th") + "".join(tr(row, "td") for row in rows) + "</table>" + note)
"""),
    code("""
TRAIN = False  # True: retrain with aecourse.train on this machine's device (e.g. a Colab GPU)
DATA = "fashion-mnist"  # or "mnist" / "cifar10" when online and TRAIN = True
EPOCHS = None  # None: the recipe's
OUT_DIR = "runs"  # where TRAIN = True saves the retrained models and their cards
N_TEST = 1000  # test images for the metrics computed here (the first ones)
N_SAMPLES = 500  # generated images per model for the Fréchet distances (the course's protocol: 10,000)
N_IW, K_IW = 100, 100  # images and importance samples of the NLL bound computed here (the protocol: all, k = 1000)
""", tags=["parameters"]),
    md("""
## The models and what they cost

With `TRAIN = True` every model is retrained here, the prior on the codes of the VQ-VAE
trained just before it, and saved to `OUT_DIR`; the Fréchet distance keeps the shipped
Fashion-MNIST classifier as its feature space unless another dataset is chosen.
"""),
    code("""
NAMES = ("ae", "dae", "vae", "vae-mlp", "vqvae", "prior", "classifier")


def retrained(name):
    \"\"\"Whether `name` is trained here (the classifier only when the data set changes).\"\"\"
    return TRAIN and (name != "classifier" or DATA != "fashion-mnist")


def get_model(name):
    if not retrained(name):
        return aecourse.load_pretrained(name, device=device)
    codes = {"vqvae_from": OUT_DIR} if name == "prior" else {}  # the prior learns the new VQ-VAE's codes
    return aecourse.train.train_recipe(name, epochs=EPOCHS, data=DATA, device=device, out=OUT_DIR, **codes)


models = {name: get_model(name) for name in NAMES}
cards = {name: aecourse.load_card(name, weights_dir=OUT_DIR if retrained(name) else None) for name in NAMES}
ae, dae, vae, vae_mlp, vqvae, prior, classifier = models.values()
"""),
    md("""
The model cards record how each model was trained. The wall times are for the device
named in the card; on a GPU each is a matter of minutes.
"""),
    code("""
cost = []
K, g = vqvae.config.codebook_size, vqvae.config.grid
WHAT = {"ae": f"conv autoencoder, {ae.config.latent_dim}-D code",
        "dae": f"conv denoising autoencoder, {dae.config.latent_dim}-D code",
        "vae": f"conv VAE, {vae.config.latent_dim}-D latent",
        "vae-mlp": f"MLP VAE 784-{vae_mlp.config.hidden_dim}-{vae_mlp.config.latent_dim} (baseline)",
        "vqvae": f"VQ-VAE, {g} x {g} codes of {K}", "prior": "gated PixelCNN over the codes",
        "classifier": "feature space of the Fréchet distance"}
for name, card in cards.items():
    parameters = sum(p.numel() for p in models[name].parameters())
    cost.append([f"<code>{name}</code>", WHAT[name], f"{parameters:,}", card["epochs"], f"{card.get('train_images', 60000):,}",
                 card["device_name"], f"{card['wall_time_s'] / 60:.1f} min"])
display(html_table(["model", "what it is", "parameters", "epochs", "training images", "device", "wall time"], cost, "llrrrlr"))
"""),
    md("""
## Metrics on a fixed subset

Every metric of the protocol, computed here with `aecourse.evaluate`'s functions on the
first `N_TEST` test images, so that the notebook runs in about a minute on a CPU. Every
model is asked to reconstruct and to denoise, whether or not it was trained for it; the
baselines are the noisy input itself and PCA with as many components as the AE's code
has numbers, fitted to 10,000 training images.
"""),
    code("""
test = data.load(DATA, "test")
x = test.x[:N_TEST].to(device)  # (N_TEST, C, H, W) in [0, 1]
noisy = evaluate.corrupt_test(x)  # Gaussian sigma = 0.5 and 50 % masking, with the protocol's seed
mean, directions = (t.to(device) for t in evaluate.fit_pca(data.load(DATA, "train").x[:10_000]))
PCA = f"pca-{ae.config.latent_dim}"  # the linear baseline with the AE's code size, as in aecourse.evaluate
reconstructors = {
    PCA: lambda images: pca_reconstruct(images, mean, directions[: ae.config.latent_dim]),
    **{name: (lambda images, model=models[name]: evaluate.reconstruct(model, images))
       for name in ("ae", "dae", "vae", "vae-mlp", "vqvae")},
}
computed = {name: {"psnr_db": metrics.psnr(reconstruct(x), x), **evaluate.denoising_psnr(reconstruct, x, noisy)}
            for name, reconstruct in reconstructors.items()}
computed["noisy input"] = evaluate.denoising_psnr(lambda images: images, x, noisy)

x_binary = data.binarize(x[:N_IW].cpu(), torch.Generator().manual_seed(evaluate.BINARIZE_SEED))  # the protocol's bits
for name in ("vae", "vae-mlp"):
    computed[name].update(evaluate.likelihood_metrics(models[name], x_binary, k=K_IW))
computed["vqvae"].update(evaluate.vq_metrics(vqvae, x))
computed["vqvae"].update(evaluate.code_nll(prior, vqvae, x))
"""),
    md("""
Samples: `N_SAMPLES` images from every model that can make them, and, for contrast,
from two that cannot: the AE decoding random normal latents (it has no distribution
over codes to draw from) and the VQ-VAE decoding uniformly random code grids (the
codes without their prior). Their Fréchet distances (FD) are measured against the
classifier features of the `N_TEST` test images; a set of `N_SAMPLES` *other* test
images gives the floor that a perfect generator would reach with this many samples.
"""),
    code("""
seed = lambda s: torch.Generator(device).manual_seed(s)
with torch.no_grad():
    samples = {
        "VAE: z ~ N(0, I)": evaluate.generate(vae, N_SAMPLES),
        "VAE-MLP: z ~ N(0, I)": evaluate.generate(vae_mlp, N_SAMPLES),
        "VQ-VAE + PixelCNN prior": evaluate.generate(prior, N_SAMPLES, vqvae=vqvae),
        "AE: z ~ N(0, I)": plot.image_decoder(ae)(torch.randn(N_SAMPLES, ae.config.latent_dim, generator=seed(3), device=device)),
        "VQ-VAE: uniform random codes": vqvae.decode_indices(torch.randint(K, (N_SAMPLES, g, g), generator=seed(4), device=device)),
        "other test images": test.x[N_TEST : N_TEST + N_SAMPLES].to(device),
    }
reference = metrics.classifier_features(classifier, x)  # (N_TEST, feature_dim)
fd = {name: evaluate.sample_fid(classifier, images, reference) for name, images in samples.items()}
computed["vae"]["fid"] = fd["VAE: z ~ N(0, I)"]
computed["vae-mlp"]["fid"] = fd["VAE-MLP: z ~ N(0, I)"]
computed["vqvae"]["fid"] = fd["VQ-VAE + PixelCNN prior"]
computed["ae"]["fid"] = fd["AE: z ~ N(0, I)"]
computed["test images"] = {"fid": fd["other test images"]}
"""),
    md("""
The figures computed here, rounded, are the notebook's regression check: a change to
a model or to a metric that moves them fails the tests.
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"{f'PSNR (dB), first {N_TEST} test images':36s} {'clean':>5s} {'sigma 0.5':>9s} {'mask 50 %':>9s}")
for name in ("noisy input", PCA, "ae", "dae", "vae", "vae-mlp", "vqvae"):
    row = computed[name]
    clean = f"{row['psnr_db']:5.1f}" if "psnr_db" in row else "    -"
    print(f"{name:36s} {clean} {row['gauss0.5_psnr_db']:9.1f} {row['mask0.5_psnr_db']:9.1f}")
print(f"NLL bound, {N_IW} images, k = {K_IW}: " + ", ".join(f"{n} {computed[n]['nll_nats']:.0f} nats" for n in ("vae", "vae-mlp")))
print(f"vqvae: {computed['vqvae']['codebook_usage']:.0%} of the codebook used, perplexity {computed['vqvae']['perplexity']:.0f}, "
      f"prior {computed['vqvae']['bits_per_code']:.1f} bits per code")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"Fréchet distance, {N_SAMPLES} images against {N_TEST} test images")
for name, value in sorted(fd.items(), key=lambda item: item[1]):
    print(f"{name:30s} {value:6.0f}")
"""),
    code("""
for kind in ("gauss0.5_psnr_db", "mask0.5_psnr_db"):
    best = max((name for name in reconstructors), key=lambda name: computed[name][kind])
    assert best == "dae", (kind, best)  # the denoiser denoises best ...
    assert all(computed[name][kind] > computed["noisy input"][kind] for name in reconstructors)  # ... but every code cleans a little
assert max(reconstructors, key=lambda name: computed[name]["psnr_db"]) == "vqvae"  # the most bits, the sharpest reconstructions
assert min(reconstructors, key=lambda name: computed[name]["psnr_db"]) == PCA  # the best linear code is last
assert computed["ae"]["psnr_db"] > computed["vae"]["psnr_db"]  # the VAE pays in KL for the bits it stores
assert fd["VAE: z ~ N(0, I)"] < fd["AE: z ~ N(0, I)"]  # a prior to sample from ...
assert fd["VQ-VAE + PixelCNN prior"] < fd["VQ-VAE: uniform random codes"]  # ... learnt or imposed, is what makes samples
assert fd["other test images"] < min(v for name, v in fd.items() if name != "other test images")  # the floor
"""),
    md("""
## One table

The comparison in one place. Where the course's evaluation (`python -m aecourse.evaluate
--write-cards`) has filled a model card, its figure on the whole test set is shown;
figures marked † were computed above on the subset. The two kinds are not
interchangeable for the Fréchet distance, which is biased upwards for small samples
(see the text page): compare FDs within one kind only.
"""),
    code("""
COLUMNS = {  # metric -> (header, format)
    "psnr_db": ("PSNR clean (dB)", "{:.1f}"), "gauss0.5_psnr_db": ("PSNR σ = 0.5", "{:.1f}"),
    "mask0.5_psnr_db": ("PSNR mask 50 %", "{:.1f}"), "nll_nats": ("NLL (nats)", "{:.1f}"),
    "codebook_usage": ("codes used", "{:.0%}"), "perplexity": ("perplexity", "{:.0f}"),
    "bits_per_code": ("prior bits/code", "{:.2f}"), "fid": ("FD of samples", "{:.1f}"),
}
ROWS = {  # table row -> (row of `computed`, cards whose test_metrics it shows, baseline row in a card's evaluation)
    "noisy input (baseline)": ("noisy input", [], ("dae", "noisy-input")),
    f"{PCA.upper()} (baseline)": (PCA, [], ("ae", PCA)),
    "AE": ("ae", ["ae"], None), "DAE": ("dae", ["dae"], None),
    "VAE": ("vae", ["vae"], None), "VAE-MLP (baseline)": ("vae-mlp", ["vae-mlp"], None),
    "VQ-VAE + prior": ("vqvae", ["vqvae", "prior"], None),
    "test images (FD floor)": ("test images", [], ("prior", "test-half")),
}


def card_figures(card_names, baseline):
    figures = {}
    for name in card_names:
        figures.update(cards[name].get("test_metrics", {}))
    if baseline is not None:
        figures.update(cards[baseline[0]].get("evaluation", {}).get("baselines", {}).get(baseline[1], {}))
    return figures


table_rows = []
for label, (row, card_names, baseline) in ROWS.items():
    from_cards, here = card_figures(card_names, baseline), computed[row]
    cells = []
    for metric, (_, fmt) in COLUMNS.items():
        if metric in from_cards:
            cells.append(fmt.format(from_cards[metric]))
        elif metric in here:
            cells.append(fmt.format(here[metric]) + " †")
        else:
            cells.append("")
    table_rows.append([label, *cells])
note = (f"† computed in this notebook: the first {N_TEST} test images; NLL on {N_IW} of them with k = {K_IW}; "
        f"FD from {N_SAMPLES} samples (AE: decoded N(0, I) latents). The others come from the model cards: all "
        "10,000 test images, k = 1000, 10,000 samples (the floor: one half of the test set against the other).")
display(html_table(["model", *(header for header, _ in COLUMNS.values())], table_rows, "l" + "r" * len(COLUMNS), note))
"""),
    md("""
## The same test images, reconstructed by every model

Each row is one model's reconstruction of the ten test images in the first row. Look
at the texture and the print on the garments, and at the thin straps of the sandals.
"""),
    code("""
shown = x[:10]
rows = [shown] + [reconstruct(shown).clamp(0, 1) for reconstruct in reconstructors.values()]  # PCA can leave [0, 1]
plot.reconstructions(rows, titles=["test image", *reconstructors], n=10)
"""),
    md("""
And the same ten images under Gaussian noise of $\\sigma = 0.5$, denoised by every model.
Only the DAE was trained for this; the others return what their code can describe of
a noisy image: the haze of clipped noise on the background becomes cloth, and the
VQ-VAE, whose codes describe small patches, describes the noise patch by patch.
"""),
    code("""
noisy_shown = noisy["gauss0.5"][:10]
rows = [shown, noisy_shown] + [reconstruct(noisy_shown).clamp(0, 1) for reconstruct in reconstructors.values()]
plot.reconstructions(rows, titles=["clean", "noisy", *reconstructors], n=10)
"""),
    md("""
## Samples

Thirty-six samples of each kind, with their Fréchet distances from above. Models with a
distribution over their codes (the VAEs' fixed normal prior, the VQ-VAE's learnt
PixelCNN prior) make garments; the same decoders fed codes from nowhere do not.
"""),
    code("""
fig, axes = plt.subplots(2, 3, figsize=(13, 9.4), layout="constrained")
for ax, (name, images) in zip(axes.flat, samples.items()):
    plot.image_grid(images[:36], nrow=6, ax=ax, title=f"{name}\\nFD {fd[name]:.1f}")
plt.show()
"""),
    md("""
## What each is good for

The numbers and pictures above sum up the course:

- the **AE** gives the best continuous code of its size for reconstruction, and features
  learnt without labels, but no way to sample;
- the **DAE** gives the same kind of code made robust, and a denoiser, an estimate of
  the direction from a damaged image back to the data;
- the **VAE** gives a regular latent space that can be sampled, interpolated and
  traversed, and a likelihood, at the price of blur;
- the **VQ-VAE** gives discrete tokens: the sharpest reconstructions, and sharp samples
  once a second, autoregressive model has learnt the distribution of the tokens.

The text page follows these ideas to DALL-E, VQ-VAE-2 and latent diffusion.

## Exercises
"""),
    *exercise(
        "ex-cmp-interpolate",
        """
**Interpolation in three latent spaces.** Take a T-shirt and a trouser from the test
images and decode ten points on the straight line between their codes: the AE's $z$,
the VAE's $\\mu$, and the VQ-VAE's continuous encoder output $z_e$ (quantised to the
nearest codes before decoding). Compare with blending the pixels. Which paths stay
near the data? Measure it as in chapter 3, by the distance of each frame to its nearest
training image, and try a second pair, a sneaker and a bag.
""",
        [
            code("""
first = lambda k: int((test.y[:N_TEST] == k).nonzero()[0])  # the first test image of class k
D = vqvae.config.embedding_dim
train_flat = data.load(DATA, "train").x[:20_000].flatten(1).to(device)  # (20000, P): a dense sample of the data


def vq_decode(z_flat):
    \"\"\"Continuous encoder outputs, flattened (N, D*g*g), -> images through their nearest codes.\"\"\"
    z_e = z_flat.reshape(-1, D, g, g)
    indices = vqvae.quantizer.nearest(z_e.permute(0, 2, 3, 1).reshape(-1, D)).reshape(-1, g, g)  # (N, g, g)
    return vqvae.decode_indices(indices)


def paths(pair):
    \"\"\"Name -> (decode, codes (2, ...)) of a pair of images (2, C, H, W).\"\"\"
    return {
        "AE": (plot.image_decoder(ae), ae.encode(pair)),
        "VAE (means)": (plot.image_decoder(vae), vae.encode(pair)[0]),
        "VQ-VAE (z_e, quantised)": (vq_decode, vqvae(pair).z_e.flatten(1)),
        "pixels": (lambda flat: flat.reshape(-1, *pair.shape[1:]), pair.flatten(1)),
    }


t = torch.linspace(0, 1, 10, device=device)[:, None]  # (10, 1)
off_data = {}
for classes in ((0, 1), (7, 8)):  # T-shirt/top -> Trouser, Sneaker -> Bag
    pair = x[[first(k) for k in classes]]
    fig, axes = plt.subplots(4, 1, figsize=(8, 5), layout="constrained")
    with torch.no_grad():
        for ax, (name, (decode, z)) in zip(axes, paths(pair).items()):
            frames = decode((1 - t) * z[0] + t * z[1])  # (10, C, H, W)
            distance = torch.cdist(frames[1:-1].flatten(1), train_flat).min(1).values.mean().item()  # inner frames
            off_data[classes, name] = distance
            plot.image_grid(frames, nrow=10, ax=ax, title=f"{name}: inner frames {distance:.2f} from the nearest training image")
    plt.show()
for classes in ((0, 1), (7, 8)):
    assert off_data[classes, "pixels"] > off_data[classes, "VAE (means)"]  # a blend is no garment
"""),
            md("""
Blending pixels gives a double exposure, a trouser showing through a T-shirt, and the
inner frames lie farther from the training images than those of any decoded path. The
decoded paths stay near the data: each frame comes out of a decoder that has only
learnt to draw garments (though smooth, blurred images have close neighbours anyway, as
chapter 3 found, so this measure flatters the decoders a little). The VAE's
path changes the shape gradually, every frame a plausible garment, which is what the
KL term's regular latent space is for. The AE's path may do just as well for a given
pair, but nothing in its training asked its codes to fill the space between images,
so there is no guarantee; try other pairs. The VQ-VAE's path runs through a
3,136-dimensional space of encoder outputs and is quantised cell by cell: cells switch
codes at different moments, so the middle frames are patchworks of the two images.
Discrete tokens are made for an autoregressive prior, not for interpolation.
"""),
        ],
    ),
    *exercise(
        "ex-cmp-rate",
        """
**How many bits does each code need?** Compare the models as compressors: for each,
estimate the bits needed to store the code of one image and the PSNR it buys. For the
AE, quantise each code number to 8 bits (256 levels between the smallest and
largest value of that dimension on the test images) and measure the PSNR of decoding
the quantised code. For the VAE, the average KL term in nats is the cost of its code
(divide by $\\ln 2$ for bits), paid by an encoder that sends a sample $z$ with the
bits-back scheme. For the VQ-VAE, count $h \\times w \\times \\log_2 K$ bits, and the prior's
cross-entropy of the code grids (`evaluate.code_nll`), the cost with the prior as an
entropy coder.
""",
        [
            code("""
from aecourse.losses import gaussian_kl

with torch.no_grad():
    z = ae.encode(x)  # (N_TEST, latent_dim)
    low, high = z.min(0).values, z.max(0).values
    step = (high - low) / 255
    z_8bit = low + torch.round((z - low) / step) * step  # 256 levels per dimension
    mu, logvar = vae.encode(x)
    kl_bits = gaussian_kl(mu, logvar).mean().item() / math.log(2)
m = ae.config.latent_dim
rate = {
    "AE, float32 code": (m * 32, computed["ae"]["psnr_db"]),
    "AE, 8-bit code": (m * 8, metrics.psnr(ae.decode(z_8bit).detach(), x)),
    "VAE, KL (bits-back)": (kl_bits, computed["vae"]["psnr_db"]),
    "VQ-VAE, raw indices": (g * g * math.log2(K), computed["vqvae"]["psnr_db"]),
    "VQ-VAE, prior as entropy coder": (computed["vqvae"]["bits_per_code"] * g * g, computed["vqvae"]["psnr_db"]),
}
for name, (bits, db) in rate.items():
    print(f"{name:32s} {bits:6.0f} bits per image  {db:5.1f} dB")
assert abs(rate["AE, 8-bit code"][1] - rate["AE, float32 code"][1]) < 0.5  # 8 bits per number lose almost nothing
assert rate["VQ-VAE, prior as entropy coder"][0] < rate["VQ-VAE, raw indices"][0]
"""),
            md("""
The AE's floats are mostly wasted precision: 8 bits per number decode to nearly the
same image, so a quarter of the stored bits buy its PSNR. The VAE's code carries only a few dozen bits, the
fewest by far, and yet reconstructs nearly as well as the AE: the KL term makes it
spend its bits where they buy the most, and it renders what it leaves out as an
average, which is the blur. The VQ-VAE spends the most bits and buys the best PSNR; its
prior knows which code grids are likely and cuts the cost well below the raw indices.
Comparing compressors fairly means comparing them at equal rates, which is what
rate-distortion curves do: each model here sits at one point of its own curve.
"""),
        ],
    ),
    *exercise(
        "ex-cmp-fd-size",
        """
**The Fréchet distance and the number of samples.** Compute the FD of the VAE's samples
and of real test images (not among the reference images) against the reference features
for 125, 250 and 500 images. How do the values change with the number of images, and
does the order of the two change? What does this mean for comparing the numbers of
this notebook with those of the model cards?
""",
        [
            code("""
others = test.x[N_TEST:].to(device)  # test images that are not in the reference set
sizes = (125, 250, 500)
by_size = {
    "other test images": [evaluate.sample_fid(classifier, others[:n], reference) for n in sizes],
    "VAE samples": [evaluate.sample_fid(classifier, samples["VAE: z ~ N(0, I)"][:n], reference) for n in sizes],
}
plot.curve(sizes, by_size, xlabel="images", ylabel="Fréchet distance", logx=True, title="FD against sample size")
"""),
            code("""
for name, values in by_size.items():
    print(f"{name:18s} " + "  ".join(f"n = {n}: {v:.1f}" for n, v in zip(sizes, values)))
assert by_size["other test images"][0] > by_size["other test images"][-1]  # real images too: a bias that shrinks with n
assert all(real < vae for real, vae in zip(by_size["other test images"], by_size["VAE samples"]))  # the order holds
"""),
            md("""
Even real test images, drawn from the very distribution of the reference, are at a
positive distance that shrinks as the sample grows: the covariance of a small sample
is a noisy estimate, and noise only adds to the distance. The order of the two stays
the same at every size, so comparisons at one sample size are meaningful, while values
from different sample sizes are not. This notebook's figures (hundreds of samples) are
therefore larger than the model cards' (10,000 samples) for the same model, which is
why the table marks them.
"""),
        ],
    ),
]


if __name__ == "__main__":
    write(CELLS, OUT)
