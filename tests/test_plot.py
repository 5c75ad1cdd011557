"""Tests of aecourse.plot: shapes of what is drawn, what the decoders are called with, errors."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from aecourse import plot  # noqa: E402
from aecourse.data import CLASS_NAMES  # noqa: E402
from aecourse.models import AE, VAE, VQVAE, AEConfig, VAEConfig, VQVAEConfig  # noqa: E402


class RecordingDecoder:
    """z (N, D) -> (N, 1, 28, 28) images of constant brightness sigmoid(z[:, 0]); records its inputs."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(z.clone())
        return torch.sigmoid(z[:, :1, None, None]).expand(-1, 1, 28, 28)


def images_of(fig: Figure) -> list[np.ndarray]:
    return [np.asarray(im.get_array()) for ax in fig.axes for im in ax.images]


def test_new_figures_are_not_left_open_in_pyplot():
    before = plt.get_fignums()
    fig = plot.image_grid(torch.rand(4, 1, 28, 28))
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before  # a notebook shows the returned figure once, never twice


def test_a_single_image_keeps_its_frame():
    x = torch.rand(1, 1, 28, 28)
    (mosaic,) = images_of(plot.image_grid(x, padding=2))
    assert mosaic.shape == (32, 32) and (mosaic[:2] == plot.PAD_VALUE).all()
    np.testing.assert_allclose(mosaic[2:30, 2:30], x[0, 0].numpy())


def test_titles_may_be_empty():
    decode = lambda z: torch.sigmoid(z.sum(1, keepdim=True))[:, :, None, None].expand(-1, 1, 4, 4)
    fig = plot.traversal(decode, torch.zeros(2), title="")
    assert fig.axes[0].get_title() == ""


@pytest.mark.parametrize(("padding", "shape"), [(2, (62, 152)), (0, (56, 140))])
def test_image_grid_tiles_nrow_images_per_row(padding, shape):
    x = torch.rand(10, 1, 28, 28)
    fig = plot.image_grid(x, nrow=5, padding=padding, title="ten")
    (mosaic,) = images_of(fig)
    assert mosaic.shape == shape
    p = padding
    np.testing.assert_allclose(mosaic[p : p + 28, p : p + 28], x[0, 0].numpy())
    top, left = p + (28 + p), p + 2 * (28 + p)  # image 7 sits in row 1, column 2
    np.testing.assert_allclose(mosaic[top : top + 28, left : left + 28], x[7, 0].numpy())
    assert fig.axes[0].get_title() == "ten"
    assert fig.axes[0].get_xticks().size == 0 and fig.axes[0].get_yticks().size == 0


def test_image_grid_rgb_and_grad_tensors():
    x = torch.rand(3, 3, 8, 8, requires_grad=True)
    (mosaic,) = images_of(plot.image_grid(x, nrow=8, padding=0))
    assert mosaic.shape == (8, 24, 3)  # fewer images than nrow: one row of 3
    np.testing.assert_allclose(mosaic[:, 8:16], x[1].detach().permute(1, 2, 0).numpy())


def test_image_grid_draws_into_a_given_ax():
    fig, ax = plt.subplots(1, 2)
    try:
        assert plot.image_grid(torch.rand(2, 1, 28, 28), ax=ax[1]) is fig
        assert len(ax[1].images) == 1 and not ax[0].images
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(4, 28, 28), r"\(B, C, H, W\)"),
        (torch.rand(4, 2, 28, 28), "1 \\(grey\\) or 3"),
        (torch.rand(4, 1, 28, 28) * 2, r"values in \[0, 1\]"),
        (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "divide uint8 by 255"),
        ([[0.5]], "torch.Tensor or numpy array"),
    ],
)
def test_image_grid_rejects_bad_images(x, match):
    with pytest.raises(ValueError, match=match):
        plot.image_grid(x)


def test_reconstructions_two_labelled_rows():
    x, x_hat = torch.rand(10, 1, 28, 28), torch.rand(10, 1, 28, 28)
    fig = plot.reconstructions(x, x_hat, n=6)
    assert len(fig.axes) == 2
    assert [im.shape for im in images_of(fig)] == [(32, 6 * 30 + 2)] * 2
    assert [ax.texts[0].get_text() for ax in fig.axes] == ["input", "reconstruction"]
    np.testing.assert_allclose(images_of(fig)[1][2:30, 2:30], x_hat[0, 0].numpy())


def test_reconstructions_accepts_a_sequence_of_rows():
    rows = [torch.rand(5, 1, 28, 28) for _ in range(3)]
    fig = plot.reconstructions(rows, titles=("clean", "noisy", "denoised"))
    assert [ax.texts[0].get_text() for ax in fig.axes] == ["clean", "noisy", "denoised"]
    assert [im.shape for im in images_of(fig)] == [(32, 5 * 30 + 2)] * 3  # n clipped to the 5 there are


def test_reconstructions_rejects_bad_input():
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="one title per row"):
        plot.reconstructions([x, x, x], titles=("a", "b"))
    with pytest.raises(ValueError, match="x and x_hat"):
        plot.reconstructions(x)
    with pytest.raises(ValueError, match="one shape"):
        plot.reconstructions(x, torch.rand(4, 1, 14, 14))
    with pytest.raises(ValueError, match="reconstruction"):
        plot.reconstructions(x, x + 1)  # the message names the offending row


def test_latent_map_one_collection_per_class_present():
    z = torch.randn(60, 2)
    y = torch.tensor([0, 3, 7]).repeat(20)
    fig = plot.latent_map(z, y, title="map")
    (ax,) = fig.axes
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [CLASS_NAMES[k] for k in (0, 3, 7)]
    offsets = ax.collections[1].get_offsets()
    np.testing.assert_allclose(np.asarray(offsets), z[y == 3].numpy())
    colours = {tuple(c.get_facecolor()[0][:3]) for c in ax.collections}
    assert len(colours) == 3


def test_latent_map_custom_classes_and_errors():
    z, y = torch.randn(6, 2), torch.tensor([0, 1, 1, 0, 1, 0])
    ax = plot.latent_map(z, y, classes=("zero", "one")).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "one"]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot.latent_map(torch.randn(6, 16), y)
    with pytest.raises(ValueError, match="integer class labels"):
        plot.latent_map(z, y.float())
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        plot.latent_map(z, y + 1, classes=("zero", "one"))


def test_decoded_plane_decodes_a_grid_spanning_the_extent():
    decode = RecordingDecoder()
    steps, extent = 5, (-2.0, 1.0, -0.5, 3.0)
    fig = plot.decoded_plane(decode, extent=extent, steps=steps)
    (z,) = decode.calls
    assert z.shape == (steps * steps, 2)
    assert torch.allclose(z.min(0).values, torch.tensor([-2.0, -0.5]))
    assert torch.allclose(z.max(0).values, torch.tensor([1.0, 3.0]))
    assert len(torch.unique(z[:, 0])) == steps and len(torch.unique(z[:, 1])) == steps
    (ax,) = fig.axes
    (mosaic,) = images_of(fig)
    assert mosaic.shape == (steps * 28, steps * 28)
    # z[0] grows to the right: tile brightness follows sigmoid(z[0]) along a row
    np.testing.assert_allclose(mosaic[0, ::28], torch.sigmoid(torch.linspace(-2, 1, steps)).numpy(), rtol=1e-6)
    # the axes are latent coordinates: tile centres sit on the grid points
    left, right, bottom, top = ax.images[0].get_extent()
    assert math.isclose(left, -2.0 - 0.375) and math.isclose(top, 3.0 + 0.4375)
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "z[1]"


def test_decoded_plane_top_row_is_the_largest_z2():
    def decode(z):  # brightness = sigmoid(z[1])
        return torch.sigmoid(z[:, 1:2, None, None]).expand(-1, 1, 4, 4)

    (mosaic,) = images_of(plot.decoded_plane(decode, extent=(-1, 1, -3, 3), steps=3))
    np.testing.assert_allclose(mosaic[::4, 0], torch.sigmoid(torch.tensor([3.0, 0.0, -3.0])).numpy(), rtol=1e-6)


@pytest.mark.parametrize(("overlay", "n_axes"), [("beside", 2), ("on", 1)])
def test_decoded_plane_with_a_latent_map(overlay, n_axes):
    z, y = torch.randn(50, 2), torch.randint(0, 10, (50,))
    decode = RecordingDecoder()
    fig = plot.decoded_plane(decode, z=z, y=y, overlay=overlay, steps=4)
    assert len(fig.axes) == n_axes
    assert len(images_of(fig)) == 1
    assert sum(len(ax.collections) for ax in fig.axes) == len(torch.unique(y))
    lo, hi = decode.calls[0].min(0).values, decode.calls[0].max(0).values  # extent from the data
    assert (lo >= z.min(0).values - 0.5).all() and (hi <= z.max(0).values + 0.5).all()


def test_decoded_plane_rejects_bad_input():
    decode = RecordingDecoder()
    with pytest.raises(ValueError, match="z1_min < z1_max"):
        plot.decoded_plane(decode, extent=(1, -1, 0, 1))
    with pytest.raises(ValueError, match="steps >= 2"):
        plot.decoded_plane(decode, steps=1)
    with pytest.raises(ValueError, match="both z and y"):
        plot.decoded_plane(decode, z=torch.randn(5, 2))
    with pytest.raises(ValueError, match="overlay"):
        plot.decoded_plane(decode, overlay="under")
    with pytest.raises(ValueError, match="image_decoder"):  # logits instead of images
        plot.decoded_plane(lambda z: 10 * z[:, :1, None, None].expand(-1, 1, 28, 28))


def test_traversal_varies_only_the_chosen_dimension():
    decode = RecordingDecoder()
    z0 = torch.randn(1, 6)
    values = torch.linspace(-2, 2, 5)
    fig = plot.traversal(decode, z0, dims=[1, 4], values=values)
    (z,) = decode.calls
    z = z.reshape(2, 5, 6)  # (rows, cols, D)
    for row, dim in enumerate([1, 4]):
        assert torch.equal(z[row, :, dim], values)
        others = [i for i in range(6) if i != dim]
        assert torch.equal(z[row][:, others], z0[0, others].expand(5, -1))
    (mosaic,) = images_of(fig)
    assert mosaic.shape == (2 * 30 + 2, 5 * 30 + 2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["z[1]", "z[4]"]


def test_traversal_defaults_and_errors():
    decode = RecordingDecoder()
    plot.traversal(decode, torch.zeros(20))
    assert decode.calls[0].shape == (16 * 9, 20)  # first 16 dims, linspace(-3, 3, 9)
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        plot.traversal(decode, torch.zeros(4), dims=[4])
    with pytest.raises(ValueError, match=r"\(D,\) or \(1, D\)"):
        plot.traversal(decode, torch.zeros(2, 4))


def test_interpolation_endpoints_are_z_a_and_z_b():
    decode = RecordingDecoder()
    z_a, z_b = torch.randn(8), torch.randn(8)
    fig = plot.interpolation(decode, z_a, z_b, steps=7)
    (z,) = decode.calls
    assert z.shape == (7, 8)
    assert torch.equal(z[0], z_a) and torch.equal(z[-1], z_b)
    assert torch.allclose(z[3], (z_a + z_b) / 2)
    assert images_of(fig)[0].shape == (32, 7 * 30 + 2)


def test_interpolation_several_pairs_make_rows():
    decode = RecordingDecoder()
    z_a, z_b = torch.randn(3, 4), torch.randn(3, 4)
    fig = plot.interpolation(decode, z_a, z_b, steps=5)
    z = decode.calls[0].reshape(3, 5, 4)
    assert torch.equal(z[:, 0], z_a) and torch.equal(z[:, -1], z_b)
    assert images_of(fig)[0].shape == (3 * 30 + 2, 5 * 30 + 2)
    with pytest.raises(ValueError, match="of one shape"):
        plot.interpolation(decode, z_a, z_b[:2])
    with pytest.raises(ValueError, match="steps >= 2"):
        plot.interpolation(decode, z_a, z_b, steps=1)


def test_codebook_histogram_sorted_counts_usage_and_perplexity():
    indices = torch.tensor([3, 3, 3, 3, 5, 5, 9, 9]).reshape(2, 2, 2)
    fig = plot.codebook_histogram(indices, 16)
    (ax,) = fig.axes
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 16
    assert heights[:4] == [4, 2, 2, 0] and sum(heights) == 8
    p = torch.tensor([0.5, 0.25, 0.25])
    perplexity = math.exp(-(p * p.log()).sum().item())  # 2.83
    assert ax.get_title() == f"19% of 16 codes used, perplexity {perplexity:.1f}"
    with pytest.raises(ValueError, match="integer indices"):
        plot.codebook_histogram(indices.float(), 16)
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        plot.codebook_histogram(indices, 8)


def test_curve_one_line_per_series():
    xs = [0.1, 0.3, 0.5]
    fig = plot.curve(xs, {"noisy": [20, 14, 10], "denoised": torch.tensor([24.0, 21, 18])},
                     xlabel="sigma", ylabel="PSNR (dB)", title="denoising")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["noisy", "denoised"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [24, 21, 18])
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("sigma", "PSNR (dB)", "denoising")
    with pytest.raises(ValueError, match="one value per x"):
        plot.curve(xs, {"short": [1, 2]}, xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="non-empty dict"):
        plot.curve(xs, {}, xlabel="x", ylabel="y")


def test_training_curves_from_a_card_and_a_history():
    from aecourse.train import History

    records = [{"epoch": e, "loss": 3.0 / e, "recon": 2.0 / e, "kl": 1.0, "seconds": 1.5,
                "images_per_second": 100.0} for e in (1, 2, 3)]
    fig = plot.training_curves({"name": "vae", "train_history": records})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["loss", "recon", "kl"]
    np.testing.assert_allclose(visible[0].lines[0].get_ydata(), [3.0, 1.5, 1.0])
    fig = plot.training_curves(History(records), terms=["kl"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["kl"]
    with pytest.raises(ValueError, match="terms must be among"):
        plot.training_curves(records, terms=["seconds"])
    with pytest.raises(ValueError, match="train_history"):
        plot.training_curves({"name": "vae"})
    with pytest.raises(ValueError, match="per-epoch dicts"):
        plot.training_curves([])


# --------------------------------------------------------------------------- real models, random weights
def test_image_decoder_for_each_model_family():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(latent_dim=2, channels=(8, 8, 8))).train()
    z = torch.randn(3, 2) * 5
    images = plot.image_decoder(vae)(z)
    vae.eval()
    assert torch.allclose(images, torch.sigmoid(vae.decode(z)))
    assert vae.training is False
    vae.train()
    plot.image_decoder(vae)(z)
    assert vae.training  # mode restored

    linear = AE(AEConfig(latent_dim=4, linear=True))
    with torch.no_grad():
        linear.decoder[0].bias.fill_(2.0)  # outputs far outside [0, 1]
    images = plot.image_decoder(linear)(torch.zeros(2, 4))
    assert images.min() >= 0 and images.max() <= 1

    vq = VQVAE(VQVAEConfig(channels=(8, 8), num_res_blocks=1, embedding_dim=4, codebook_size=16))
    indices = torch.randint(0, 16, (2, 7, 7))
    images = plot.image_decoder(vq)(indices)
    assert images.shape == (2, 1, 28, 28)
    torch.testing.assert_close(images, vq.decode_indices(indices))  # code grids, not z
    with pytest.raises(ValueError, match="decode_images"):
        plot.image_decoder(torch.nn.Linear(2, 2))


def test_plots_with_real_models():
    torch.manual_seed(0)
    ae = AE(AEConfig(latent_dim=2, channels=(8, 8, 8))).eval()
    fig = plot.decoded_plane(ae.decode, steps=3)  # a bound method works as it is
    assert images_of(fig)[0].shape == (84, 84)
    vae = VAE(VAEConfig(latent_dim=4, channels=(8, 8, 8))).eval()
    decode = plot.image_decoder(vae)
    fig = plot.traversal(decode, torch.zeros(4), values=[-1.0, 0.0, 1.0])
    assert images_of(fig)[0].shape == (4 * 30 + 2, 3 * 30 + 2)
    fig = plot.interpolation(decode, torch.zeros(4), torch.ones(4), steps=4)
    assert images_of(fig)[0].shape == (32, 4 * 30 + 2)
    with pytest.raises(ValueError, match="image_decoder"):  # VAE.decode returns logits
        plot.traversal(vae.decode, torch.full((4,), 3.0))
