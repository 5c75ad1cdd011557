"""Write notebooks/02_autoencoder.ipynb (chapter 2: the autoencoder) with nbformat.

    .venv/bin/python scripts/notebooks/make_02_autoencoder.py

The notebook is saved without outputs; edit this script, not the .ipynb, and run it again.
"""

from __future__ import annotations

from pathlib import Path

from cells import code, exercise, install_cell, md, write

OUT = Path(__file__).resolve().parents[2] / "notebooks" / "02_autoencoder.ipynb"
NAME = "02_autoencoder"


CELLS = [
    md(f"""
# Hands-on: the trained autoencoders and their latent space

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/aecourse/aecourse/blob/main/notebooks/{NAME}.ipynb)

This notebook goes with the text page [The autoencoder](../book/02_autoencoder.md), which
defines the model and its loss, shows the convolutional encoder and decoder and the
training loop, and proves that a linear autoencoder finds PCA's subspace. Here we load
the course's trained models: `ae` (convolutional, 16 latent numbers), `ae-linear`
(linear, 16), `ae-2d` (convolutional, 2, so that its latent space can be drawn) and
`classifier`, a small Fashion-MNIST classifier that judges whether an image looks like
clothing. We compare reconstructions with PCA, look inside the linear autoencoder's
code, draw the 2-D latent space as a map, decode points of the latent space where no
image was encoded, and interpolate between images.
"""),
    install_cell(),
    code("""
import copy

import matplotlib.pyplot as plt
import torch

import aecourse
import aecourse.train
from aecourse import data, evaluate, metrics, plot, widgets
from aecourse.models.pca import pca_reconstruct

aecourse.set_seed(0)
device = aecourse.default_device()
"""),
    code("""
TRAIN = False  # True: retrain with aecourse.train on this machine's device (e.g. a Colab GPU)
DATA = "fashion-mnist"  # or "mnist" / "cifar10" when online and TRAIN = True
EPOCHS = None  # None: the recipe's
N_TEST = 1000  # test images for the reconstructions and metrics (the first ones)
N_MAP = 5000  # test images on the 2-D latent map
N_RANDOM = 1000  # random latent vectors decoded per region
""", tags=["parameters"]),
    md("""
## The models

Each model is loaded from the weights shipped with the package, or retrained here when
`TRAIN = True`. The classifier is retrained only for another data set; the model cards
say how the shipped weights were made.
"""),
    code("""
NAMES = ("ae", "ae-linear", "ae-2d", "classifier")
retrain = {name: TRAIN and (name != "classifier" or DATA != "fashion-mnist") for name in NAMES}
models = {
    name: aecourse.train.train_recipe(name, epochs=EPOCHS, data=DATA, device=device) if retrain[name]
    else aecourse.load_pretrained(name, device=device)
    for name in NAMES
}
ae, ae_linear, ae_2d, classifier = models.values()
for name in NAMES:
    if retrain[name]:
        print(f"{name:10s} trained here on {device}")
    else:
        card = aecourse.load_card(name)
        print(f"{name:10s} trained on {card['device_name']}: {card['epochs']} epochs in {card['wall_time_s'] / 60:.1f} min")
"""),
    md("""
The training loss of `ae`, the mean squared error per pixel, epoch by epoch (from its
model card). It falls fast in the first epochs and then slowly, as the learning rate
decays along its cosine schedule.
"""),
    code("""
plot.training_curves(aecourse.load_card("ae"), terms=["loss"], title="ae: training loss per epoch") if not retrain["ae"] else None
"""),
    md("""
## Reconstructions against PCA

Every reconstruction below comes from 16 numbers per image (2 for `ae-2d`), against the
784 pixels of the input. PCA with 16 directions, fitted to the training images, is the
best a linear code of that size can do.
"""),
    code("""
train = data.load(DATA, "train")
test = data.load(DATA, "test")
x, y = test.x[:N_TEST].to(device), test.y[:N_TEST].to(device)  # (N_TEST, C, H, W), (N_TEST,)
mean, directions = (t.to(device) for t in evaluate.fit_pca(train.x))  # (P,), (P, P), largest variance first
x_hat = {
    "ae": evaluate.reconstruct(ae, x),
    "PCA-16": pca_reconstruct(x, mean, directions[:16]),
    "ae-linear": evaluate.reconstruct(ae_linear, x),
    "ae-2d": evaluate.reconstruct(ae_2d, x),
    "PCA-2": pca_reconstruct(x, mean, directions[:2]),
}
plot.reconstructions([x] + [images.clamp(0, 1) for images in x_hat.values()], titles=["input", *x_hat], n=10)
"""),
    code("""
# NBVAL_CHECK_OUTPUT
psnr = {name: metrics.psnr(images, x) for name, images in x_hat.items()}
for name, value in psnr.items():
    print(f"{name:10s} {value:.1f} dB")
"""),
    code("""
assert psnr["ae"] > psnr["PCA-16"] + 1  # the nonlinear code is worth more than PCA's with the same 16 numbers
assert abs(psnr["ae-linear"] - psnr["PCA-16"]) < 0.1  # the linear autoencoder is as good as PCA, no better
assert psnr["ae-2d"] > psnr["PCA-2"]  # also with 2 numbers
"""),
    md("""
The convolutional autoencoder keeps the outline, the length of the sleeves and the
rough pattern; what it loses is fine texture and print. PCA-16 and the linear
autoencoder give the same blurred, ghostly images, with faint traces of other garments
where the linear combination of directions does not cancel. With only two numbers,
`ae-2d` still draws a garment of the right kind, but a generic one.

## Inside the linear autoencoder

The text page checks that the decoder of `ae-linear` spans the same 16-dimensional
subspace as the top 16 principal directions, and that its basis is not theirs. The same
holds for the codes: the linear autoencoder's latent vector $z$ should be an invertible
linear function $z = C\\, U_{16}^\\top (x - \\mu) + \\text{const}$ of the PCA coordinates,
with some mixing matrix $C$ that training happened to pick. A least-squares fit on the
test images finds it.
"""),
    code("""
with torch.no_grad():
    z_linear = ae_linear.encode(x)  # (N_TEST, 16)
pca_coords = (x.flatten(1) - mean) @ directions[:16].T  # (N_TEST, 16) coordinates along u_1 .. u_16
A = torch.cat([pca_coords, torch.ones(len(x), 1, device=device)], dim=1)  # with a column for the constant
solution = torch.linalg.lstsq(A.cpu(), z_linear.cpu()).solution  # (17, 16)
C = solution[:16].T  # z = C u + const
r2 = 1 - (z_linear.cpu() - A.cpu() @ solution).square().sum() / (z_linear - z_linear.mean(0)).square().sum().cpu()
diagonal_share = C.diagonal().abs().sum() / C.abs().sum()
print(f"R^2 of z from the 16 PCA coordinates: {r2:.3f}; condition number of C: {torch.linalg.cond(C):.1f}; "
      f"share of |C| on its diagonal: {diagonal_share:.0%}")
assert r2 > 0.98  # the code is (almost exactly) a linear function of the PCA coordinates ...
assert diagonal_share < 0.5  # ... that mixes them: z_j is not the j-th principal coordinate
"""),
    md("""
The images of the directions make the difference visible. The principal directions
(top) are ordered by variance and orthogonal; the decoder's 16 columns (bottom), each
the image that one latent number adds, are mixtures of them in no particular order.
"""),
    code("""
rescale = lambda v: (v - v.min()) / (v.max() - v.min())  # one image to [0, 1] for display
shape = x.shape[1:]
columns = ae_linear.decoder[0].weight.detach().T  # (16, P): the image each latent number adds
fig, axes = plt.subplots(2, 1, figsize=(10, 1.9), layout="constrained")
plot.image_grid(torch.stack([rescale(u) for u in directions[:16]]).reshape(-1, *shape), nrow=16, ax=axes[0], title="principal directions u_1 .. u_16")
plot.image_grid(torch.stack([rescale(w) for w in columns]).reshape(-1, *shape), nrow=16, ax=axes[1], title="columns of the linear decoder W")
plt.show()
"""),
    md("""
## The 2-D latent space as a map

`ae-2d` squeezes every image through two numbers, so its latent vectors can be drawn as
points in the plane: below, the codes $z = e(x)$ of the first `N_MAP` test images,
coloured by class.
"""),
    code("""
test_map = test.subset(N_MAP).to(device)
with torch.no_grad():
    z_map = ae_2d.encode(test_map.x)  # (N_MAP, 2)
fig = plot.latent_map(z_map, test_map.y, classes=test_map.classes, title="ae-2d: codes of test images")
low, high = z_map.min(dim=0).values, z_map.max(dim=0).values  # the bounding box of the codes
centre, half = (low + high) / 2, (high - low) / 2
print(f"codes: mean ({z_map[:, 0].mean():.2f}, {z_map[:, 1].mean():.2f}), median ({z_map[:, 0].median():.2f}, {z_map[:, 1].median():.2f}), "
      f"spread (sd) ({z_map[:, 0].std():.2f}, {z_map[:, 1].std():.2f}); box from ({low[0]:.1f}, {low[1]:.1f}) to ({high[0]:.1f}, {high[1]:.1f})")
fig
"""),
    md("""
Nothing in the loss asked for this layout, and it shows. Classes form clumps and
streaks of very different sizes; similar garments (shirts, pullovers, coats) overlap
while others sit apart; the codes are not centred on the origin, and their mean and
median differ. Much of the bounding box of the codes is empty. Compare the 2-D MNIST
latent map of {cite:t}`vandekleut2020variational`, with its arms reaching out from the
origin: a different data set, the same irregularity.

Drag the sliders to move the cross over the map and decode that point (this needs a
running notebook; the static figure after it shows the same plane).
"""),
    code("""
widgets.latent_plane_explorer(plot.image_decoder(ae_2d), z=z_map, y=test_map.y, classes=test_map.classes)
""", tags=["remove-output"]),
    code("""
plot.decoded_plane(plot.image_decoder(ae_2d), steps=15, z=z_map, y=test_map.y, classes=test_map.classes,
                   overlay="on", title="ae-2d: decoded latent plane, with the codes of test images")
"""),
    md("""
Inside the clumps the decoded images change smoothly from one garment into its
neighbour. Between clumps, and at the edges of the plane, they turn into blends and
smudges that belong to no class.

## Decoding latent vectors that no image was encoded to

Can the decoder make *new* images? Draw latent vectors at random and decode them. Where
from? The codes' bounding box is the natural first guess; we also try points far outside
it, between two and three half-widths of the box from its centre. As a reference, we
decode the codes of real test images (which is what a reconstruction is).
"""),
    code("""
generator = torch.Generator(device).manual_seed(0)
u = torch.rand(N_RANDOM, 2, generator=generator, device=device)  # (N_RANDOM, 2) uniform in [0, 1)^2
angle = 2 * torch.pi * torch.rand(N_RANDOM, generator=generator, device=device)
radius = 2 + torch.rand(N_RANDOM, 1, generator=generator, device=device)  # 2 to 3 half-widths from the centre
latents = {
    "codes of test images": z_map[:N_RANDOM],
    "uniform in the codes' box": low + (high - low) * u,
    "far outside the box": centre + half * radius * torch.stack([angle.cos(), angle.sin()], dim=1),
}
decode_2d = plot.image_decoder(ae_2d)
decoded = {region: decode_2d(z) for region, z in latents.items()}
fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), layout="constrained")
plot.latent_map(z_map, test_map.y, classes=test_map.classes, ax=axes[0], s=2, alpha=0.3)
axes[0].get_legend().remove()
handles = [axes[0].scatter(*z[:200].cpu().T, marker=marker, s=14, color="black", label=region)
           for (region, z), marker in zip(list(latents.items())[1:], ("+", "x"))]
axes[0].legend(handles=handles, fontsize="small", loc="upper right")
axes[0].set_title("codes, and random latent vectors")
for ax, (region, images) in zip(axes[1:], decoded.items()):
    plot.image_grid(images[:36], nrow=6, ax=ax, title=f"decoded: {region}")
plt.show()
"""),
    md("""
How much do these images look like clothes? Two measures from the classifier, which
was trained on real images. Its *confidence* is the probability it gives its top
class. The *Fréchet distance* (FD) compares the statistics of the classifier's features
of a set of images with those of real test images (other than the `N_TEST` above):
lower means more alike, and real images against real images give the floor.
For the 16-dimensional `ae` we draw uniformly from the bounding box of its codes, too.
"""),
    code("""
reference = metrics.classifier_features(classifier, test.x[N_TEST : 2 * N_TEST].to(device))  # other real test images
with torch.no_grad():
    z_16 = ae.encode(x)  # (N_TEST, 16)
box_16 = z_16.min(dim=0).values + (z_16.max(dim=0).values - z_16.min(dim=0).values) * torch.rand(
    N_RANDOM, 16, generator=generator, device=device)
image_sets = {
    "real test images": x,
    **{f"ae-2d, {region}": images for region, images in decoded.items()},
    "ae, codes of test images": plot.image_decoder(ae)(z_16),
    "ae, uniform in the codes' box": plot.image_decoder(ae)(box_16),
}
scores = {}
for name, images in image_sets.items():
    with torch.no_grad():
        confidence = classifier(images).softmax(dim=1).max(dim=1).values.mean().item()
    scores[name] = {"fd": evaluate.sample_fid(classifier, images, reference), "confidence": confidence}
"""),
    code("""
# NBVAL_CHECK_OUTPUT
print(f"{'images':40s} {'FD':>6s}  confidence")
for name, s in scores.items():
    print(f"{name:40s} {s['fd']:6.0f}  {s['confidence']:.2f}")
"""),
    code("""
for model in ("ae-2d", "ae"):
    codes_fd = scores[f"{model}, codes of test images"]["fd"]
    assert scores[f"{model}, uniform in the codes' box"]["fd"] > codes_fd  # random latents: less like clothes
assert scores["ae-2d, far outside the box"]["fd"] > scores["ae-2d, codes of test images"]["fd"]
assert scores["ae, uniform in the codes' box"]["fd"] > 5 * scores["ae, codes of test images"]["fd"]
"""),
    md("""
Decoded codes of real images are the closest to real images: blurred, but clothes. Latent
vectors drawn uniformly over the box are further off, and far outside the box the
decoder extrapolates into shapes that no garment has. With 16 latent numbers the effect
is much stronger: the codes fill only a tiny part of their 16-dimensional box, so
almost every random point of the box lies in empty space, and the decoder has never
been asked what to do there. The confidence column shows why we do not rely on it: a
classifier spreads its probability over its ten classes only, and an image far from
every training image can still fall confidently on one side of its decision boundaries.
The Fréchet distance, which compares the whole distribution of features, is the better
judge.

## Interpolation

Between two codes we can walk in a straight line and decode the points along the way,
$z = (1 - t)\\, e(x_a) + t\\, e(x_b)$ for $t$ from 0 to 1. With the 16-dimensional `ae`:
"""),
    code("""
first = lambda k: int((y == k).nonzero()[0])  # index of the first test image of class k
pairs = [(0, 1), (7, 9), (2, 8), (3, 5)]  # T-shirt/top -> Trouser, Sneaker -> Ankle boot, Pullover -> Bag, Dress -> Sandal
i_a, i_b = [first(a) for a, _ in pairs], [first(b) for _, b in pairs]
plot.interpolation(plot.image_decoder(ae), z_16[i_a], z_16[i_b], steps=10, title="ae: decoded codes along a line")
"""),
    md("""
Some paths pass smoothly from one garment to the other; others go through images that
are neither, a blend or a smudge halfway. The 2-D map shows why: a straight line between
two clumps crosses whatever lies between them, other classes or empty space.
"""),
    code("""
with torch.no_grad():
    z_a, z_b = ae_2d.encode(x[[first(1), first(9)]])  # the codes of a trouser and an ankle boot, (2,) each
t = torch.linspace(0, 1, 12, device=device)[:, None]
path = (1 - t) * z_a + t * z_b  # (12, 2)
fig, axes = plt.subplots(1, 2, figsize=(14, 4.5), layout="constrained", width_ratios=(1, 1.6))
plot.latent_map(z_map, test_map.y, classes=test_map.classes, ax=axes[0], s=2, alpha=0.3)
axes[0].plot(*path.cpu().T, color="black", marker="o", markersize=4)
axes[0].get_legend().remove()
axes[0].set_title("a straight line between two codes")
plot.interpolation(decode_2d, z_a, z_b, steps=12, ax=axes[1], title="ae-2d: decoded along the line")
plt.show()
"""),
    md("""
## What the autoencoder cannot do

An autoencoder compresses well: 16 numbers per image reconstruct Fashion-MNIST better
than PCA with many more. But its latent space is irregular. The codes occupy an
oddly shaped region chosen by the accidents of training; between and around them the
decoder produces nonsense; and nothing tells us where to draw a new latent vector to get
a new garment. The loss never asked for more: it scores reconstructions only, and any
rearrangement of the codes that the decoder undoes scores the same. To *generate*, we
need a model whose codes follow a distribution we know and can sample from. That is
the variational autoencoder of [chapter 4](../book/04_vae.md); chapter 3 first uses the
plain autoencoder's idea to remove noise.

## Exercises
"""),
    *exercise(
        "ex-ae-linear-symmetry",
        """
**The basis the loss cannot see.** Take an invertible $16 \\times 16$ matrix $C$ (for
example a random one) and build a copy of `ae-linear` whose encoder is $C E$ (with bias
$C b$) and whose decoder is $W C^{-1}$. Check that the copy's reconstructions equal the
original's while its codes are different. What does this mean for the question "which
latent number stands for what"?
""",
        [
            code("""
C_random = torch.randn(16, 16, generator=torch.Generator().manual_seed(0)).to(device)  # invertible (almost surely)
mixed = copy.deepcopy(ae_linear)
encoder, decoder = mixed.encoder[1], mixed.decoder[0]  # nn.Linear(P, 16) and nn.Linear(16, P)
with torch.no_grad():
    encoder.weight.copy_(C_random @ encoder.weight)  # E -> C E
    encoder.bias.copy_(C_random @ encoder.bias)  # b -> C b
    decoder.weight.copy_(decoder.weight @ torch.linalg.inv(C_random))  # W -> W C^{-1}
    out, out_mixed = ae_linear(x), mixed(x)
print(f"largest difference: reconstructions {(out.x_hat - out_mixed.x_hat).abs().max():.1e}, codes {(out.z - out_mixed.z).abs().max():.1f}")
assert torch.allclose(out.x_hat, out_mixed.x_hat, atol=1e-3)
assert not torch.allclose(out.z, out_mixed.z, atol=1e-1)
"""),
            md("""
The reconstructions agree to rounding error, so both models have exactly the same loss,
yet every code is different. Training picks one of infinitely many equally good bases,
and which one depends on the initialisation and the optimiser. "Latent number 3 means
sleeve length" cannot be a property of the loss; at best it is an accident of one
training run. (For nonlinear autoencoders the same holds for any invertible map the
decoder can absorb.) The VAE's prior breaks part of this symmetry, chapter 4.
"""),
        ],
    ),
    *exercise(
        "ex-ae-empty-box",
        """
**How empty is the box?** Call a latent vector *among the codes* when its nearest test
code is no further away than 95 % of the test codes are from their own nearest
neighbour. What fraction of 1,000 latent vectors drawn uniformly from the bounding box
of the codes is among the codes, for `ae-2d` and for the 16-dimensional `ae`? Explain
the difference with a volume argument.
""",
        [
            code("""
def nearest_distances(queries, codes, exclude_self=False):
    distances = torch.cdist(queries, codes)  # (Q, N)
    if exclude_self:
        distances.fill_diagonal_(float("inf"))
    return distances.min(dim=1).values  # (Q,)

among = {}
for name, codes, random_latents in (("ae-2d", z_map[:N_TEST], latents["uniform in the codes' box"]), ("ae", z_16, box_16)):
    threshold = nearest_distances(codes, codes, exclude_self=True).quantile(0.95)  # 95 % of codes have a neighbour this close
    among[name] = (nearest_distances(random_latents, codes) <= threshold).float().mean().item()
    width = (codes.quantile(0.975, dim=0) - codes.quantile(0.025, dim=0)) / (codes.max(dim=0).values - codes.min(dim=0).values)
    print(f"{name:6s}: {among[name]:.1%} of the random points are among the codes; the middle 95 % of the codes span "
          f"{width.mean():.0%} of the box per dimension on average, {width.prod():.2%} of its volume")
assert among["ae"] < among["ae-2d"] and among["ae"] < 0.05
"""),
            md("""
In two dimensions a good share of random points of the box land among the codes: the
codes, with their gaps, cover much of the plane. In 16 dimensions practically none do.
Volume is the product of the widths: if the bulk of the codes spans some fraction of
the box's width in every one of 16 directions, it fills that fraction to the 16th power
of the box's volume, a tiny number even for generous fractions, and in between the
codes there is more emptiness still. Uniform sampling in the box almost never lands
where the decoder was trained, which is why its images scored worst in the table above.
"""),
        ],
    ),
    *exercise(
        "ex-ae-not-clothes",
        """
**What the decoder can draw.** Feed `ae` images that are not clothes: uniform noise, a
pattern of vertical stripes, and an inverted test image $1 - x$. Show the inputs and
the reconstructions, and compare their PSNR with the PSNR on real test images. What
does the autoencoder do with inputs that are far from the data?
""",
        [
            code("""
columns_index = torch.arange(x.shape[-1], device=device)
stripes = ((columns_index // 3) % 2).float().expand(10, *x.shape[1:])  # (10, C, H, W) vertical stripes
strange = {
    "noise": torch.rand(10, *x.shape[1:], generator=torch.Generator(device).manual_seed(1), device=device),
    "stripes": stripes,
    "inverted": 1 - x[:10],
}
typical = torch.cdist(z_16, z_16).fill_diagonal_(float("inf")).min(dim=1).values.median()  # test code to its nearest neighbour
print(f"real test images: PSNR {psnr['ae']:5.1f} dB; a code's nearest other test code: {typical:.1f} away (median)")
rows, titles = [], []
for name, images in strange.items():
    rows += [images, evaluate.reconstruct(ae, images)]
    titles += [name, "reconstruction"]
    with torch.no_grad():
        distance = torch.cdist(ae.encode(images), z_16).min(dim=1).values.median()
    print(f"{name:16s}: PSNR {evaluate.reconstruction_psnr(ae, images):5.1f} dB; nearest test code {distance:.1f} away (median)")
    assert evaluate.reconstruction_psnr(ae, images) < psnr["ae"]
plot.reconstructions(rows, titles=titles, n=10)
"""),
            md("""
The autoencoder reproduces none of them: it reconstructs well only what resembles its
training data. How it fails depends on where the encoder puts the input. Noise and
stripes get codes not far outside those of real images, and come back as grey,
garment-like shapes: the decoder draws what it learnt near those codes, pulling the
input towards the data, much as $d(e(x))$ pulled noisy points onto the sphere in
chapter 1. The inverted images, a dark garment on white, get codes far from any code of
a real image, and the decoder answers with smudges, like the far-away latent vectors
above. The first behaviour is useful, and chapter 3 trains for it on purpose: the
denoising autoencoder.
"""),
        ],
    ),
]


if __name__ == "__main__":
    write(CELLS, OUT)
