"""Write notebooks/04_vae.ipynb (chapter 4: the variational autoencoder) with nbformat.

    .venv/bin/python scripts/notebooks/make_04_vae.py

The notebook is saved without outputs; edit this script, not the .ipynb, and run it again.
"""

from __future__ import annotations

from pathlib import Path

from cells import code, exercise, install_cell, md, write

OUT = Path(__file__).resolve().parents[2] / "notebooks" / "04_vae.ipynb"
NAME = "04_vae"


CELLS = [
    md(f"""
# Hands-on: the trained VAE and its latent space

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aecourse/aecourse/blob/main/notebooks/{NAME}.ipynb)

This notebook goes with the text page [The variational autoencoder](../book/04_vae.md),
which derives the ELBO, the reparameterisation trick and the KL term. Here we load the
course's trained models: `vae` (convolutional, 16-dimensional latent), `vae-2d` (the same
with a 2-dimensional latent, for maps), `vae-mlp` (the classic 784-400-20 MLP VAE, a
baseline) and, for contrast, the plain autoencoders `ae` and `ae-2d` of chapter 2. We
look at reconstructions, sample from the prior, interpolate, traverse latent dimensions,
draw the 2-D latent map, find the latent units the VAE switched off, and measure a test
log-likelihood with the importance-weighted bound.
"""),
    install_cell(),
    code("""
import copy
import functools

import matplotlib.pyplot as plt
import torch

import aecourse
import aecourse.train
from aecourse import data, evaluate, losses, metrics, plot, widgets

aecourse.set_seed(0)
device = aecourse.default_device()
"""),
    code("""
TRAIN = False  # True: retrain with aecourse.train on this machine's device (e.g. a Colab GPU)
DATA = "fashion-mnist"  # or "mnist" / "cifar10" when online and TRAIN = True
EPOCHS = None  # None: the recipe's
N_TEST = 1000  # test images for the figures and metrics (the first ones)
N_MAP = 5000  # test images on the 2-D latent maps
N_IW = 100  # test images for the importance-weighted bound (the course's protocol: all 10,000, k = 1000)
""", tags=["parameters"]),
    md("""
## The models

Each model is loaded from the weights shipped with the package, or retrained here when
`TRAIN = True`. The classifier is the feature extractor of the Fréchet distance used
below to score samples. The model cards say how the shipped weights were made.
"""),
    code("""
NAMES = ("vae", "vae-2d", "vae-mlp", "ae", "ae-2d", "classifier")
models = {
    name: aecourse.train.train_recipe(name, epochs=EPOCHS, data=DATA, device=device) if TRAIN
    else aecourse.load_pretrained(name, device=device)
    for name in NAMES
}
vae, vae_2d, vae_mlp, ae, ae_2d, classifier = models.values()
for name in NAMES:
    if TRAIN:
        print(f"{name:10s} trained here on {device}")
    else:
        card = aecourse.load_card(name)
        minutes = card["wall_time_s"] / 60
        print(f"{name:10s} trained on {card['device_name']}: {card['epochs']} epochs in {minutes:.1f} min")
"""),
    md("""
A VAE's training loss, the negative ELBO, has two terms: the reconstruction term (the
Bernoulli negative log-likelihood of the binarised image) and the KL term. The KL term
settles within the first epochs, once the encoder has found how many nats of
information about an image are worth their cost; the reconstruction term keeps falling
as the model refines what those nats say.
"""),
    code("""
plot.training_curves(aecourse.load_card("vae"), terms=["loss", "recon", "kl"],
                     title="vae: per-epoch training loss (nats per image)")
"""),
    md("""
## Reconstructions

The VAE's encoder outputs a distribution $q_\\phi(z \\mid x) = \\mathcal{N}(\\mu, \\operatorname{diag}\\sigma^2)$,
and its decoder outputs the probabilities $\\pi$ of a Bernoulli distribution over pixels.
The picture of a reconstruction is that mean image $\\pi$. Decoding the mean $\\mu$ gives
the most typical reconstruction; decoding a sample $z \\sim q_\\phi(z \\mid x)$, as the
training loss does, gives a slightly different one each time.
"""),
    code("""
test = data.load(DATA, "test").subset(N_TEST).to(device)
x, y = test.x, test.y  # (N_TEST, C, H, W) in [0, 1], (N_TEST,)
x_mean = {name: evaluate.reconstruct(models[name], x) for name in ("vae", "vae-mlp")}  # sigmoid(decode(mu))
with torch.no_grad():
    x_sampled = vae(x[:10], torch.Generator(device).manual_seed(0)).x_hat  # decode one z ~ q(z|x)
plot.reconstructions(
    [x, x_mean["vae"], x_sampled, x_mean["vae-mlp"]],
    titles=("input", "vae, decode(mu)", "vae, decode(z ~ q)", "vae-mlp, decode(mu)"), n=10,
)
"""),
    code("""
# NBVAL_CHECK_OUTPUT
for name, x_hat in x_mean.items():
    print(f"{name}: reconstruction PSNR {metrics.psnr(x_hat, x):.1f} dB")
"""),
    md("""
The reconstructions are smoother than an autoencoder's: the VAE pays, in KL, for every
detail it stores about an image, so it keeps the shape and the rough texture and lets
the fine print go.

## Sampling: the VAE decodes the prior into clothes

A VAE generates by drawing $z \\sim \\mathcal{N}(0, I)$ and decoding it: the KL term has
placed the codes of the training images where the prior puts its mass. Chapter 2's
autoencoder had no such term, so the same random draws land where its codes are not.
Below, the same 16-dimensional normal draws are decoded by the VAE and by the
autoencoder `ae`; a third panel gives the autoencoder a fairer chance, with draws from
a Gaussian fitted to the mean and spread of its own test codes.
"""),
    code("""
generator = torch.Generator(device).manual_seed(2)
eps = torch.randn(N_TEST, vae.config.latent_dim, generator=generator, device=device)  # (N_TEST, 16)
with torch.no_grad():
    z_ae = ae.encode(x)  # the autoencoder's codes of the test images, (N_TEST, 16)
samples = {
    "VAE, z ~ N(0, I)": plot.image_decoder(vae)(eps),
    "AE, z ~ N(0, I)": plot.image_decoder(ae)(eps),
    "AE, z ~ Gaussian fitted to its codes": plot.image_decoder(ae)(z_ae.mean(0) + z_ae.std(0) * eps),
}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.8), layout="constrained")
for ax, (title, images) in zip(axes, samples.items()):
    plot.image_grid(images[:36], nrow=6, ax=ax, title=title)
plt.show()
print(f"the AE's codes: per-dimension means from {z_ae.mean(0).min():.1f} to {z_ae.mean(0).max():.1f}, "
      f"standard deviations from {z_ae.std(0).min():.1f} to {z_ae.std(0).max():.1f}")
"""),
    md("""
The Fréchet distance (FD) between the classifier's features of generated images and of
real test images puts a number on it: lower is better, and two sets of real test images
give the floor.
"""),
    code("""
reference = metrics.classifier_features(classifier, x)  # features of the N_TEST test images
other_test = data.load(DATA, "test").x[N_TEST : 2 * N_TEST]  # different test images: the floor
fd = {"other test images": evaluate.sample_fid(classifier, other_test, reference)}
fd.update({title: evaluate.sample_fid(classifier, images, reference) for title, images in samples.items()})
for title, value in fd.items():
    print(f"FD {value:7.1f}  {title}")
assert fd["VAE, z ~ N(0, I)"] < fd["AE, z ~ N(0, I)"]  # the VAE's prior samples are the better images
"""),
    md("""
## Interpolation

Because the codes of all images share one region around the origin, the straight line
between two codes passes through codes of plausible images too. Each row decodes
$z = (1 - t)\\, \\mu_a + t\\, \\mu_b$ for ten values of $t$ between the means of two test
images of different classes.
"""),
    code("""
first = lambda k: int((y == k).nonzero()[0])  # index of the first test image of class k
# T-shirt/top -> Trouser, Sneaker -> Ankle boot, Pullover -> Bag, Dress -> Sandal
pairs = [(0, 1), (7, 9), (2, 8), (3, 5)]
with torch.no_grad():
    mu, logvar = vae.encode(x)  # (N_TEST, 16) each
i_a, i_b = [first(a) for a, _ in pairs], [first(b) for _, b in pairs]
plot.interpolation(plot.image_decoder(vae), mu[i_a], mu[i_b], steps=10, title="vae: decoded codes along a line")
"""),
    md("""
Blending the pixels instead gives a double exposure, one image fading out as the other
fades in; the path through the latent space changes the shape.
"""),
    code("""
t = torch.linspace(0, 1, 10, device=device)[:, None]  # (10, 1)
through_latent = plot.image_decoder(vae)((1 - t) * mu[i_a[0]] + t * mu[i_b[0]])
in_pixels = (1 - t[:, :, None, None]) * x[i_a[0]] + t[:, :, None, None] * x[i_b[0]]
plot.reconstructions([through_latent, in_pixels], titles=("through the latent space", "in pixel space"), n=10)
"""),
    md("""
## The regular 2-D latent space

With two latent dimensions the codes can be drawn directly. On the left, the plain
autoencoder `ae-2d`: its codes spread over whatever range and shape reconstruction
happened to favour. On the right, the means of $q_\\phi(z \\mid x)$ under `vae-2d`:
the KL term has pulled them into one cloud centred near the origin and about as wide as
the prior (the circles mark one, two and three standard deviations of
$\\mathcal{N}(0, I)$), with neighbouring classes touching rather than separated by
empty space.
"""),
    code("""
test_map = data.load(DATA, "test").subset(N_MAP).to(device)
with torch.no_grad():
    z_map = {"ae-2d": ae_2d.encode(test_map.x), "vae-2d": vae_2d.encode(test_map.x)[0]}  # (N_MAP, 2) each
fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained")
titles = {"ae-2d": "AE (ae-2d): z = e(x)", "vae-2d": "VAE (vae-2d): means of q(z|x)"}
for ax, (name, z) in zip(axes, z_map.items()):
    plot.latent_map(z, test_map.y, classes=test_map.classes, ax=ax, title=titles[name])
axes[0].get_legend().remove()
for radius in (1, 2, 3):
    axes[1].add_patch(plt.Circle((0, 0), radius, fill=False, color="0.4", lw=0.8, ls="--"))
axes[1].set_aspect("equal")
plt.show()
inside = {}
for name, z in z_map.items():
    inside[name] = (z.norm(dim=1) < 3).float().mean().item()
    mean, sd = z.mean(0).tolist(), z.std(0).tolist()
    print(f"{name}: mean ({mean[0]:.2f}, {mean[1]:.2f}), sd ({sd[0]:.2f}, {sd[1]:.2f}), "
          f"{inside[name]:.0%} within radius 3 of the origin")
z = z_map["vae-2d"]
assert inside["vae-2d"] > 0.85 and (z.mean(0).abs() < 1).all()  # the VAE's codes live where the prior puts its mass
"""),
    md("""
Every point of the plane within the prior's reach decodes to something that looks like
clothing, and moving across the plane morphs one kind of garment into its neighbour.
Drag the sliders to move the cross over the map and decode that point (this needs a
running notebook; the static figure after it shows the same plane).
"""),
    code("""
widgets.latent_plane_explorer(
    plot.image_decoder(vae_2d), extent=(-3, 3, -3, 3), z=z_map["vae-2d"], y=test_map.y, classes=test_map.classes
)
""", tags=["remove-output"]),
    code("""
plot.decoded_plane(
    plot.image_decoder(vae_2d), extent=(-3, 3, -3, 3), steps=15,
    z=z_map["vae-2d"], y=test_map.y, classes=test_map.classes, title="vae-2d: decoded latent plane",
)
"""),
    md("""
## Which latent units does the VAE use?

The KL term is a sum over latent dimensions,
$D_{\\mathrm{KL}} = \\sum_j \\tfrac12 (\\mu_j^2 + \\sigma_j^2 - \\log \\sigma_j^2 - 1)$, so
every unit pays for the information it carries. A unit whose information does not repay
its cost in reconstruction is switched off: for every image $\\mu_j \\approx 0$ and
$\\sigma_j \\approx 1$, its posterior is the prior, its KL is zero and the decoder ignores
it. This is *posterior collapse* of that unit. Burda et al. (2015) call a unit active
when its posterior mean varies across images, $\\operatorname{Var}_x[\\mu_j(x)] > 0.01$.

A $\\beta$-VAE (Higgins et al., 2017) weights the KL term by $\\beta$: with $\\beta > 1$
information is dearer, fewer units stay active and the ones that do tend to capture
separate factors of variation; with $\\beta < 1$ the model drifts towards a plain
autoencoder. The first exercise below tries both.

The bars show each unit's KL averaged over the test images, largest first, for the
convolutional `vae` and the MLP baseline `vae-mlp`.
"""),
    code("""
with torch.no_grad():
    posteriors = {name: models[name].encode(x) for name in ("vae", "vae-mlp")}  # (mu, logvar), each (N_TEST, D)
kl_per_unit, active = {}, {}
for name, (mu_q, logvar_q) in posteriors.items():
    # gaussian_kl sums over the dimensions it is given: one dimension at a time gives each unit's KL
    per_unit = losses.gaussian_kl(mu_q.reshape(-1, 1), logvar_q.reshape(-1, 1)).reshape(mu_q.shape)  # (N_TEST, D)
    total = losses.gaussian_kl(mu_q, logvar_q)  # (N_TEST,)
    assert torch.allclose(per_unit.sum(1), total, rtol=1e-4, atol=1e-4)  # the KL is a sum over units
    kl_per_unit[name] = per_unit.mean(0)  # (D,) nats per image
    active[name] = mu_q.var(0) > 0.01  # Burda et al.'s activity criterion
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), layout="constrained")
for ax, name in zip(axes, kl_per_unit):
    order = kl_per_unit[name].argsort(descending=True)
    colours = ["tab:blue" if a else "tab:red" for a in active[name][order].tolist()]
    ax.bar(range(len(order)), kl_per_unit[name][order].cpu(), color=colours)
    ax.set_xticks(range(len(order)), [str(j) for j in order.tolist()], fontsize="small")
    ax.set(xlabel="latent unit (blue: active, red: inactive)", ylabel="KL (nats per image)",
           title=f"{name}: {int(active[name].sum())} of {len(order)} units active, "
                 f"KL {kl_per_unit[name].sum():.1f} nats")
plt.show()
"""),
    md("""
The longer a bar, the more the unit tells the decoder about the image; a unit near zero
has collapsed onto the prior. The units are not equally useful, and a model with more
units than the data need, like the 20 of the MLP VAE, is the likelier to switch some off.
"""),
    md("""
## Latent traversals

A traversal starts from the code $\\mu$ of one test image and sweeps one unit from $-3$
to $3$ while holding the others. The rows below sweep the six units of `vae` with the
largest KL and, in the last two rows, the two with the smallest: the more nats a unit
carries, the more the image changes along it, and the units at the top change the kind
and the shape of the garment. Use the sliders to move several units at once (in a
running notebook); the static traversal follows.
"""),
    code("""
order = kl_per_unit["vae"].argsort(descending=True).tolist()  # units, most informative first
z0 = mu[0]  # the code (mean of q(z|x)) of the first test image
widgets.traversal_explorer(plot.image_decoder(vae), z0, dims=order[:8])
""", tags=["remove-output"]),
    code("""
plot.traversal(plot.image_decoder(vae), z0, dims=order[:6] + order[-2:], title="vae: one unit at a time")
"""),
    md("""
A collapsed unit is the limit of the last rows: its posterior is the prior whatever the
image, so the decoder has learnt to ignore it and sweeping it changes nothing. The MLP
VAE's two most and two least informative units:
"""),
    code("""
order_mlp = kl_per_unit["vae-mlp"].argsort(descending=True).tolist()
for j in order_mlp[:2] + order_mlp[-2:]:
    status = "active" if active["vae-mlp"][j] else "inactive"
    print(f"vae-mlp unit {j:2d}: KL {kl_per_unit['vae-mlp'][j]:.3f} nats, {status}")
plot.traversal(plot.image_decoder(vae_mlp), posteriors["vae-mlp"][0][0], dims=order_mlp[:2] + order_mlp[-2:],
               title="vae-mlp: the two most and the two least informative units")
"""),
    md("""
## A test log-likelihood: the importance-weighted bound

The ELBO is a lower bound on $\\log p_\\theta(x)$, loose by the posterior divergence
$D_{\\mathrm{KL}}(q_\\phi(z \\mid x) \\,\\Vert\\, p_\\theta(z \\mid x))$. Burda et al. (2015)
tighten it by averaging $k$ importance weights inside the logarithm,

$$
\\log p_\\theta(x) \\ \\ge\\ \\mathcal{L}_k(x) = \\mathbb{E}_{z_1, \\dots, z_k \\sim q_\\phi(z \\mid x)}\\!\\left[
  \\log \\frac{1}{k} \\sum_{i=1}^{k} \\frac{p_\\theta(x \\mid z_i)\\, p(z_i)}{q_\\phi(z_i \\mid x)} \\right],
$$

with $\\mathcal{L}_1 = \\operatorname{ELBO}$ and $\\mathcal{L}_k$ growing with $k$ towards
$\\log p_\\theta(x)$. `aecourse.metrics.iw_nll` returns $-\\mathcal{L}_k$, an upper bound
on the negative log-likelihood in nats per image, for binarised images. Here it runs on
the first `N_IW` test images, binarised with a fixed seed, for $k$ = 1, 10 and 100; the
course's evaluation uses the whole test set and $k = 1000$.
"""),
    code("""
# binarised on the CPU with a fixed seed: the same bits on every device
x_binary = data.binarize(x[:N_IW].cpu(), torch.Generator().manual_seed(1)).to(device)
KS = (1, 10, 100)
nll = {  # -L_k, mean over the images, for each k
    name: [metrics.iw_nll(models[name], x_binary, k=k, generator=torch.Generator(device).manual_seed(2)).mean().item()
           for k in KS]
    for name in ("vae", "vae-mlp")
}
plot.curve(KS, nll, xlabel="importance samples k", ylabel="-L_k (nats per image)", logx=True,
           title="the bound tightens as k grows")
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"nats per image on {N_IW} test images: " + ", ".join(f"k={k}" for k in KS))
for name, values in nll.items():
    print(f"{name:8s} " + "  ".join(f"{v:.0f}" for v in values))
"""),
    code("""
for name, values in nll.items():
    assert values[0] > values[1] > values[2], (name, values)  # -L_1 = -ELBO > -L_10 > -L_100
    card = {} if TRAIN else aecourse.load_card(name)
    if "nll_nats" in card.get("test_metrics", {}):  # filled by aecourse.evaluate
        protocol = card["evaluation"]
        images = "all" if protocol["nll_images"] == "all" else f"the first {protocol['nll_images']}"
        print(f"{name}: model card, {images} test images with k = {protocol['k']}: "
              f"NLL {card['test_metrics']['nll_nats']:.1f} nats")
better, worse = sorted(nll, key=lambda name: nll[name][-1])
print(f"with k = 100, {better} is {nll[worse][-1] - nll[better][-1]:.1f} nats per image better than {worse}")
"""),
    md("""
The gap between $k = 1$ and $k = 100$ is a lower bound on how much the ELBO
underestimates the log-likelihood, that is on the average posterior divergence
$D_{\\mathrm{KL}}(q_\\phi(z \\mid x) \\,\\Vert\\, p_\\theta(z \\mid x))$: a diagonal Gaussian
cannot match the true posterior exactly.

## Exercises
"""),
    *exercise(
        "ex-vae-beta",
        """
**$\\beta$ and the latent units.** Fine-tune copies of the MLP VAE `vae-mlp` for three
epochs on the first 5,000 training images with $\\beta = 0.25$, $1$ and $4$, using
`functools.partial(losses.vae_loss, beta=beta)` as the loss of `aecourse.fit`. For each,
measure on the binarised test images the reconstruction term and the KL term, and plot
the KL of each latent unit. What does $\\beta$ trade, and which units lose most?
""",
        [
            code("""
train_subset = data.load(DATA, "train").subset(5000)
order_mlp = kl_per_unit["vae-mlp"].argsort(descending=True)  # units of the shipped model, most informative first
fine_tuned = {}
for beta in (0.25, 1.0, 4.0):  # beta = 1 gets the same extra training, as a control
    model = copy.deepcopy(vae_mlp)
    aecourse.fit(model, functools.partial(losses.vae_loss, beta=beta), train_subset,
                 aecourse.TrainConfig(epochs=3, seed=0), device=device, progress=False)
    model.eval()
    with torch.no_grad():
        out = model(x_binary, torch.Generator(device).manual_seed(3))  # one z ~ q(z|x) per binarised test image
        mu_b, logvar_b = model.encode(x)
    per_unit = losses.gaussian_kl(mu_b.reshape(-1, 1), logvar_b.reshape(-1, 1)).reshape(mu_b.shape)
    per_unit = per_unit.mean(0)  # (20,) KL of each unit, nats per image
    fine_tuned[beta] = {
        "recon": losses.bernoulli_nll(out.logits, x_binary).mean().item(),
        "kl": losses.gaussian_kl(out.mu, out.logvar).mean().item(),
        "kl_per_unit": per_unit[order_mlp].cpu(),
    }
    result = fine_tuned[beta]
    print(f"beta = {beta:4}: reconstruction {result['recon']:6.1f} nats, KL {result['kl']:5.1f} nats, "
          f"{int((per_unit > 0.1).sum())} units above 0.1 nats")
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
for beta, result in fine_tuned.items():
    ax.plot(result["kl_per_unit"], "o-", label=f"beta = {beta}")
ax.set(yscale="log", xlabel="latent unit, most informative first", ylabel="KL (nats per image)")
ax.legend(frameon=False)
plt.show()
assert fine_tuned[0.25]["kl"] > fine_tuned[1.0]["kl"] > fine_tuned[4.0]["kl"]  # a dearer KL buys less information
assert fine_tuned[4.0]["recon"] > fine_tuned[1.0]["recon"]  # ... and worse reconstructions
"""),
            md("""
A larger $\\beta$ makes information in $z$ more expensive: the KL term falls, the
reconstruction term rises, and their sum at $\\beta = 1$, the negative ELBO, is no
longer what is being minimised. Every unit gives up information, but not equally: on
the logarithmic scale the least informative units drop furthest, so they are the ones
heading for collapse, while the units that carry the most survive with the smallest
relative loss. A smaller $\\beta$ moves the model towards an autoencoder: more KL, better
reconstructions. It does not revive units that had already collapsed, at least not in
three epochs: the decoder ignores them, so reconstruction gives them no gradient to
grow on.
"""),
        ],
    ),
    *exercise(
        "ex-vae-aggregate",
        """
**The aggregate posterior.** The KL term pulls each $q_\\phi(z \\mid x)$ towards
$\\mathcal{N}(0, I)$. Does the *aggregate posterior*, the distribution of $z$ when $x$
is a random test image and $z \\sim q_\\phi(z \\mid x)$, match the prior? Draw one $z$
per test image with `vae.reparameterize` and compare each unit's mean and variance with
the prior's. Explain the variance with the law of total variance.
""",
        [
            code("""
with torch.no_grad():
    z = vae.reparameterize(mu, logvar, torch.Generator(device).manual_seed(4))  # one z per image: samples of q(z)
total = z.var(0)  # Var[z_j]
explained = mu.var(0) + logvar.exp().mean(0)  # Var_x[mu_j(x)] + E_x[sigma_j^2(x)]
print("unit   mean  variance  Var[mu] + E[sigma^2]")
for j in order:
    print(f"{j:4d}  {z[:, j].mean():+.2f}  {total[j]:8.2f}  {explained[j]:8.2f}")
assert torch.allclose(total, explained, rtol=0.25)  # the law of total variance, up to sampling noise
"""),
            md("""
By the law of total variance, $\\operatorname{Var}[z_j] = \\operatorname{Var}_x[\\mu_j(x)]
+ \\mathbb{E}_x[\\sigma_j^2(x)]$. For an active unit most of the variance comes from the
means moving between images and $\\sigma_j$ is small; for an inactive unit the means sit
at zero and $\\sigma_j \\approx 1$. Either way the total stays of the order of the
prior's variance of 1, and the means stay near 0: averaged over the data, the KL term
equals the information $z$ carries about $x$ plus $D_{\\mathrm{KL}}(q(z) \\,\\Vert\\, p(z))$,
so training also pulls the aggregate posterior towards the prior. Close in mean and
variance is not equal, though: the aggregate can still have holes and correlations
that $\\mathcal{N}(0, I)$ does not, and prior samples that land in a hole decode to the
odd unconvincing image.
"""),
        ],
    ),
    *exercise(
        "ex-vae-temperature",
        """
**Sampling temperature.** Decode $z = t\\,\\epsilon$ with $\\epsilon \\sim \\mathcal{N}(0, I)$
for $t$ = 0.5, 1 and 1.5. How do the samples change? Measure how much the images vary
(the pixels' standard deviation across samples) and the Fréchet distance for each $t$.
""",
        [
            code("""
fig, axes = plt.subplots(1, 3, figsize=(13, 4.8), layout="constrained")
spread = {}
for ax, temperature in zip(axes, (0.5, 1.0, 1.5)):
    images = plot.image_decoder(vae)(temperature * eps)  # the same draws, scaled
    spread[temperature] = images.std(0).mean().item()
    fd_t = evaluate.sample_fid(classifier, images, reference)
    title = f"t = {temperature}: pixel sd {spread[temperature]:.3f}, FD {fd_t:.1f}"
    plot.image_grid(images[:36], nrow=6, ax=ax, title=title)
plt.show()
assert spread[0.5] < spread[1.0] < spread[1.5]  # a hotter prior, more varied images
"""),
            md("""
At $t = 0.5$ the codes stay near the centre of the prior, where the most average
garments are: smooth, grey, much alike. At $t = 1.5$ the codes reach further out: the
images vary more and have more contrast, and some get strange, from codes beyond the
region the training codes occupy. The Fréchet distance weighs quality and variety
together, and it need not prefer $t = 1$: the pictures are Bernoulli means, averages
over each pixel's coin flip, so they are blurrier and greyer than real photographs, and
the higher-contrast images of a hotter prior can sit closer to the real ones in the
classifier's feature space. Blurry means are the VAE's weak point as an image
generator, one of the motivations for the discrete latents and learned prior of the
next chapter.
"""),
        ],
    ),
]


if __name__ == "__main__":
    write(CELLS, OUT)
