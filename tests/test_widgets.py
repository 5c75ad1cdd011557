"""Tests of aecourse.widgets: explorers build without a browser and redraw on slider changes."""

import io
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("ipywidgets")
import ipywidgets  # noqa: E402

from aecourse import plot, widgets  # noqa: E402
from aecourse.models import AE, DAE, VAE, VQVAE, AEConfig, DAEConfig, VAEConfig, VQVAEConfig  # noqa: E402


def descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from descendants(child)


def find(box, kind):
    return [w for w in descendants(box) if isinstance(w, kind)]


def pixels(image_widget) -> np.ndarray:
    """The grey level of a PNG Image widget as an (H, W) array in [0, 1]."""
    return matplotlib.image.imread(io.BytesIO(image_widget.value))[..., 0]


class BrightnessDecoder:
    """z (N, 2) -> (N, 1, 4, 4) images: top half sigmoid(z[0]), bottom half sigmoid(z[1])."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(z.clone())
        x = torch.empty(len(z), 1, 4, 4)
        x[:, :, :2] = torch.sigmoid(z[:, 0, None, None, None])
        x[:, :, 2:] = torch.sigmoid(z[:, 1, None, None, None])
        return x


def test_latent_plane_explorer_decodes_the_slider_point():
    decode = BrightnessDecoder()
    box = widgets.latent_plane_explorer(decode, extent=(-2, 2, -1, 3))
    assert isinstance(box, ipywidgets.VBox)
    z1, z2 = find(box, ipywidgets.FloatSlider)
    (image,) = find(box, ipywidgets.Image)
    assert (z1.min, z1.max, z2.min, z2.max) == (-2, 2, -1, 3)
    before = image.value
    z1.value = 1.5
    assert image.value != before
    assert torch.equal(decode.calls[-1], torch.tensor([[1.5, 1.0]]))
    shown = pixels(image)
    assert shown.shape == (4 * widgets.SCALE, 4 * widgets.SCALE)
    assert abs(shown[0, 0] - torch.sigmoid(torch.tensor(1.5)).item()) < 2 / 255
    assert abs(shown[-1, 0] - torch.sigmoid(torch.tensor(1.0)).item()) < 2 / 255
    z2.value = -0.5
    assert torch.equal(decode.calls[-1], torch.tensor([[1.5, -0.5]]))


def test_latent_plane_explorer_moves_the_marker_on_the_latent_map():
    z, y = torch.randn(200, 2), torch.randint(0, 10, (200,))
    box = widgets.latent_plane_explorer(BrightnessDecoder(), z=z, y=y)
    latent, decoded = find(box, ipywidgets.Image)
    z1, _ = find(box, ipywidgets.FloatSlider)
    x0, x1, _, _ = plot.extent_of(z)
    assert (z1.min, z1.max) == pytest.approx((x0, x1))
    before = latent.value, decoded.value
    z1.value = x0 + 0.1 * (x1 - x0)
    assert latent.value != before[0] and decoded.value != before[1]


def test_latent_plane_explorer_rejects_bad_input():
    with pytest.raises(ValueError, match="both z and y"):
        widgets.latent_plane_explorer(BrightnessDecoder(), z=torch.randn(5, 2))
    with pytest.raises(ValueError, match="z1_min < z1_max"):
        widgets.latent_plane_explorer(BrightnessDecoder(), extent=(0, 0, -1, 1))
    with pytest.raises(ValueError, match="image_decoder"):  # logits, not images
        widgets.latent_plane_explorer(lambda z: z[:, :1, None, None].expand(-1, 1, 4, 4) - 5)


def test_noise_explorer_redraws_on_level_and_kind():
    x = torch.rand(2, 1, 28, 28)
    calls = []

    def denoise(noisy):
        calls.append(noisy.clone())
        return noisy.clamp(0.2, 0.8)

    box = widgets.noise_explorer(denoise, x, seed=3)
    kind = find(box, ipywidgets.Dropdown)[0]
    level = find(box, ipywidgets.FloatSlider)[0]
    index = find(box, ipywidgets.IntSlider)[0]  # a batch gets an image slider
    (picture,) = find(box, ipywidgets.Image)
    (scores,) = find(box, ipywidgets.HTML)
    assert (kind.value, level.description, level.max) == ("gaussian", "sigma", 1.0)

    level.value = 0.2
    first, first_scores = picture.value, scores.value
    expected = plot_psnr(calls[-1], x[:1])
    assert f"noisy <b>{expected:.2f} dB" in first_scores
    level.value = 0.7
    assert picture.value != first and scores.value != first_scores
    level.value = 0.2
    assert picture.value == first  # seeded noise: a level always looks the same

    kind.value = "mask"
    assert (level.description, level.max) == ("mask p", 0.9)
    assert picture.value != first
    masked = calls[-1]
    assert ((masked == 0) | (masked == x[:1])).all()  # pixels are kept or zeroed
    index.value = 1
    assert ((calls[-1] == 0) | (calls[-1] == x[1:])).all()


def plot_psnr(noisy, clean):
    mse = torch.mean((noisy.double() - clean.double()) ** 2).item()
    return 10 * np.log10(1 / mse)


def test_noise_explorer_level_zero_and_a_real_dae():
    torch.manual_seed(0)
    dae = DAE(DAEConfig(latent_dim=4, channels=(8, 8, 8))).eval()
    x = torch.rand(1, 28, 28).numpy()  # one image (C, H, W): no image slider
    box = widgets.noise_explorer(dae, x, kinds=("mask",))  # forward's x_hat is used
    assert not find(box, ipywidgets.IntSlider)
    level = find(box, ipywidgets.FloatSlider)[0]
    level.value = 0.0
    assert "noisy <b>inf dB" in find(box, ipywidgets.HTML)[0].value


def test_noise_explorer_rejects_bad_input():
    x = torch.rand(1, 1, 28, 28)
    with pytest.raises(ValueError, match="kinds must be"):
        widgets.noise_explorer(lambda t: t, x, kinds=("salt",))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        widgets.noise_explorer(lambda t: t, x * 3)
    with pytest.raises(ValueError, match="input's shape"):
        widgets.noise_explorer(lambda t: t[:, :, :14], x)


def test_traversal_explorer_sliders_change_one_dimension():
    calls = []

    def decode(z):
        calls.append(z.clone())
        return torch.sigmoid(z.sum(1))[:, None, None, None].expand(-1, 1, 4, 4)

    z0 = torch.randn(1, 20)
    box = widgets.traversal_explorer(decode, z0)
    sliders = find(box, ipywidgets.FloatSlider)
    (picture,) = find(box, ipywidgets.Image)
    (reset,) = find(box, ipywidgets.Button)
    assert [s.description for s in sliders] == [f"z[{i}]" for i in range(16)]  # at most 16
    start = picture.value
    sliders[5].value = 2.5
    assert picture.value != start
    changed = (calls[-1][0] != z0[0]).nonzero().flatten().tolist()
    assert changed == [5] and calls[-1][0, 5] == 2.5
    reset.click()
    assert picture.value == start
    assert torch.equal(calls[-1], z0)

    box = widgets.traversal_explorer(decode, z0, dims=[7, 2])
    sliders = find(box, ipywidgets.FloatSlider)
    assert [s.description for s in sliders] == ["z[7]", "z[2]"]
    sliders[1].value = -2.0
    assert (calls[-1][0] != z0[0]).nonzero().flatten().tolist() == [2]


def test_traversal_explorer_with_a_real_vae():
    vae = VAE(VAEConfig(latent_dim=3, channels=(8, 8, 8))).eval()
    box = widgets.traversal_explorer(plot.image_decoder(vae), torch.zeros(3), dims=[2], limit=2.0)
    (slider,) = find(box, ipywidgets.FloatSlider)
    (picture,) = find(box, ipywidgets.Image)
    assert (slider.min, slider.max) == (-2.0, 2.0)
    before = picture.value
    slider.value = -2.0
    assert picture.value != before
    assert pixels(picture).shape == (28 * widgets.SCALE, 28 * widgets.SCALE)


def test_traversal_explorer_rejects_bad_input():
    decode = BrightnessDecoder()
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        widgets.traversal_explorer(decode, torch.zeros(2), dims=[2])
    with pytest.raises(ValueError, match=r"\(D,\) or \(1, D\)"):
        widgets.traversal_explorer(decode, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="limit must be positive"):
        widgets.traversal_explorer(decode, torch.zeros(2), limit=0)


def test_a_real_ae_in_the_plane_explorer():
    ae = AE(AEConfig(latent_dim=2, channels=(8, 8, 8))).eval()
    box = widgets.latent_plane_explorer(ae.decode)
    (image,) = find(box, ipywidgets.Image)
    before = image.value
    find(box, ipywidgets.FloatSlider)[1].value = 2.9
    assert image.value != before


def small_vqvae():
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(channels=(8, 8), embedding_dim=4, codebook_size=16)).eval()


def test_code_grid_explorer_sets_the_chosen_cell():
    model = small_vqvae()
    grids = torch.randint(0, 16, (2, 7, 7), generator=torch.Generator().manual_seed(1))
    box = widgets.code_grid_explorer(model, grids)
    image, row, col, code = find(box, ipywidgets.IntSlider)
    (picture,) = find(box, ipywidgets.Image)
    assert (code.min, code.max, row.max, col.max) == (0, 15, 6, 6)
    # the code slider shows the chosen cell's code, and follows the cell
    assert code.value == grids[0, 3, 3]
    row.value, col.value = 1, 5
    assert code.value == grids[0, 1, 5]
    # a new code for that cell: the picture is the decoded grid with that code
    new = (int(grids[0, 1, 5]) + 1) % 16
    code.value = new
    expected = grids[0].clone()
    expected[1, 5] = new
    with torch.no_grad():
        decoded = model.decode_indices(expected[None])[0, 0]  # (28, 28)
    shown = pixels(picture)[:: widgets.SCALE, :: widgets.SCALE]  # one pixel per image pixel
    far = torch.ones(28, 28, dtype=torch.bool)
    far[4:8, 20:24] = False  # the chosen cell is framed in colour
    assert np.abs(shown - decoded.numpy())[far.numpy()].max() < 2 / 255
    # another image: its codes, the chosen cell kept
    image.value = 1
    assert code.value == grids[1, 1, 5]


def test_code_grid_explorer_reset_restores_the_image_codes():
    model = small_vqvae()
    grids = torch.zeros(1, 7, 7, dtype=torch.int64)
    box = widgets.code_grid_explorer(model, grids[0])
    row, col, code = find(box, ipywidgets.IntSlider)
    (picture,) = find(box, ipywidgets.Image)
    start = picture.value
    code.value = 9
    assert picture.value != start
    (reset,) = find(box, ipywidgets.Button)
    reset.click()
    assert code.value == 0 and picture.value == start


def test_code_grid_explorer_rejects_bad_input():
    model = small_vqvae()
    with pytest.raises(ValueError, match=r"integer code grids \(7, 7\)"):
        widgets.code_grid_explorer(model, torch.zeros(2, 6, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"integer code grids"):
        widgets.code_grid_explorer(model, torch.zeros(7, 7))
    with pytest.raises(ValueError, match=r"in \[0, 16\)"):
        widgets.code_grid_explorer(model, torch.full((7, 7), 16))
    with pytest.raises(ValueError, match="expected a VQVAE"):
        widgets.code_grid_explorer(AE(AEConfig()), torch.zeros(7, 7, dtype=torch.int64))


def test_missing_ipywidgets_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    with pytest.raises(ImportError, match="pip install ipywidgets"):
        widgets.traversal_explorer(BrightnessDecoder(), torch.zeros(2))


TOL = 2.5 / 255  # the grey colour map's 256 levels and PNG rounding


def tiny_cvae(latent_dim=3):
    torch.manual_seed(0)
    model = VAE(VAEConfig(mlp=True, latent_dim=latent_dim, hidden_dim=8, num_classes=10)).eval()
    with torch.no_grad():  # a label that changes the image visibly
        model.decoder[0].weight[:, latent_dim:] *= 20
    return model


def test_class_explorer_shows_the_decoder_at_the_chosen_class_and_z():
    model = tiny_cvae()
    box = widgets.class_explorer(model)
    (label,) = find(box, ipywidgets.Dropdown)
    sliders = find(box, ipywidgets.FloatSlider)
    (picture,) = find(box, ipywidgets.Image)
    (redraw,) = find(box, ipywidgets.Button)
    assert [name for name, _ in label.options][:2] == ["T-shirt/top", "Trouser"]
    assert [s.description for s in sliders] == ["z[0]", "z[1]", "z[2]"]

    def expected():
        z = torch.tensor([[s.value for s in sliders]])
        with torch.no_grad():
            image = model.decode_images(z, y=torch.tensor([label.value]))
        return image[0, 0].numpy()

    def shown():
        return pixels(picture)[:: widgets.SCALE, :: widgets.SCALE]  # (28, 28)

    # the first z is the draw of seed 0, the class the first one
    assert [s.value for s in sliders] == pytest.approx(torch.randn(3, generator=torch.Generator().manual_seed(0)).tolist())
    np.testing.assert_allclose(shown(), expected(), atol=TOL)
    before, first = picture.value, expected()
    label.value = 7  # same z, another class
    assert picture.value != before
    assert np.abs(expected() - first).max() > 4 * TOL  # the check below can tell them apart
    np.testing.assert_allclose(shown(), expected(), atol=TOL)
    sliders[1].value = -2.5
    np.testing.assert_allclose(shown(), expected(), atol=TOL)
    values = [s.value for s in sliders]
    redraw.click()  # a new z (seed 1), the class kept
    assert [s.value for s in sliders] != values and label.value == 7
    np.testing.assert_allclose(shown(), expected(), atol=TOL)


def test_class_explorer_sliders_cover_chosen_dims_only():
    model = tiny_cvae(latent_dim=12)
    box = widgets.class_explorer(model, dims=[10, 3], classes=[f"c{i}" for i in range(10)])
    assert [s.description for s in find(box, ipywidgets.FloatSlider)] == ["z[10]", "z[3]"]
    (label,) = find(box, ipywidgets.Dropdown)
    assert label.options[9] == ("c9", 9)


def test_class_explorer_rejects_bad_input():
    with pytest.raises(ValueError, match="conditional VAE"):
        widgets.class_explorer(VAE(VAEConfig(mlp=True, latent_dim=2, hidden_dim=8)))
    with pytest.raises(ValueError, match="10 class names"):
        widgets.class_explorer(tiny_cvae(), classes=["a", "b"])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        widgets.class_explorer(tiny_cvae(), dims=[3])
    with pytest.raises(ValueError, match="limit must be positive"):
        widgets.class_explorer(tiny_cvae(), limit=-1)
