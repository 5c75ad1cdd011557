"""Tests of aecourse.export: the ONNX decoders of the book's explorers compute
what the PyTorch models compute, and the explorers' data are what they claim.

The ONNX files are run by onnx's reference evaluator (plain NumPy), an
implementation independent of PyTorch; the browser check
(tests/site/test_explorers.py) runs them in onnxruntime-web.
"""

import base64
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from aecourse import data, export, plot  # noqa: E402
from aecourse.models import AE, VAE, AEConfig, Classifier  # noqa: E402
from aecourse.models import ClassifierConfig, VAEConfig  # noqa: E402
from aecourse.pretrained import load_pretrained  # noqa: E402

# float32 through the same layers in another runtime: rounding differences only
ATOL = 1e-5


def random_input(model, n_inputs: int, generator: torch.Generator):
    module, example, name = export.graph(model)
    if name == "indices":
        k = model.config.codebook_size
        return torch.randint(0, k, (n_inputs, *example.shape[1:]), generator=generator)
    if name == "x":
        return torch.rand((n_inputs, *example.shape[1:]), generator=generator)
    # latents up to 3 prior standard deviations, beyond the data's codes
    return 3 * torch.randn((n_inputs, *example.shape[1:]), generator=generator)


@pytest.mark.parametrize("name", ["ae-2d", "vae-2d", "vae", "vqvae", "dae"])
def test_exported_decoder_matches_pytorch(name, tmp_path):
    model = load_pretrained(name)
    path = export.export_onnx(model, tmp_path / f"{name}.onnx")
    runtime = ReferenceEvaluator(str(path))
    _, example, input_name = export.graph(model)
    assert runtime.input_names == [input_name]
    generator = torch.Generator().manual_seed(0)
    for value in random_input(model, 3, generator):
        value = value[None]  # the graph's batch of one
        (got,) = runtime.run(None, {input_name: value.numpy()})
        with torch.no_grad():
            if input_name == "x":  # the DAE: noisy images -> x_hat
                expected = model(value).x_hat
            else:
                expected = plot.image_decoder(model)(value)
        assert got.shape == tuple(expected.shape) == (1, 1, 28, 28)
        np.testing.assert_allclose(got, expected.numpy(), atol=ATOL, rtol=0)


def test_a_different_decoder_is_told_apart(tmp_path):
    """The comparison above can fail: a model with other weights."""
    config = VAEConfig(latent_dim=2)
    torch.manual_seed(0)
    exported, other = VAE(config), VAE(config)
    path = export.export_onnx(exported, tmp_path / "vae.onnx")
    z = np.zeros((1, 2), dtype=np.float32)
    (got,) = ReferenceEvaluator(str(path)).run(None, {"z": z})
    with torch.no_grad():
        expected = plot.image_decoder(other)(torch.from_numpy(z))
    assert np.abs(got - expected.numpy()).max() > ATOL


def test_the_linear_ae_is_clamped_as_in_the_notebooks(tmp_path):
    model = AE(AEConfig(latent_dim=2, linear=True))
    with torch.no_grad():
        model.decoder[0].bias.fill_(2.0)  # far outside [0, 1]
    path = export.export_onnx(model, tmp_path / "ae.onnx")
    z = np.full((1, 2), -1.0, dtype=np.float32)
    (got,) = ReferenceEvaluator(str(path)).run(None, {"z": z})
    assert got.max() <= 1.0 and got.min() >= 0.0
    expected = plot.image_decoder(model)(torch.from_numpy(z))
    np.testing.assert_allclose(got, expected.detach().numpy(), atol=ATOL)


def test_export_rejects_a_model_without_images():
    with pytest.raises(ValueError, match="AE, DAE, VAE or VQVAE"):
        export.graph(Classifier(ClassifierConfig()))


def test_export_all_rejects_unknown_explorers(tmp_path):
    with pytest.raises(ValueError, match="unknown explorers"):
        export.export_all(tmp_path, ["ae-2d-plane", "no-such-explorer"])


@pytest.fixture(scope="module")
def test_images():
    return data.load("fashion-mnist", "test")


def test_plane_data_are_the_codes_of_test_images(test_images):
    model = load_pretrained("ae-2d")
    spec = export.explorer_data(export.EXPLORERS["ae-2d-plane"], model, test_images)
    n = export.MAP_POINTS
    with torch.no_grad():
        z = model.encode(test_images.x[:n])
    points = torch.tensor(spec["points"])
    assert points.shape == (n, 2)
    assert (points - z).abs().max() <= 0.5 * 10**-export.DIGITS + 1e-6
    assert spec["labels"] == test_images.y[:n].tolist()
    x0, x1, y0, y1 = spec["extent"]
    assert x0 < spec["start"][0] < x1 and y0 < spec["start"][1] < y1
    assert (spec["model"], spec["input"], spec["input_shape"]) == ("ae-2d.onnx", "z", [1, 2])
    json.dumps(spec)  # what the page reads


def test_vae_plane_keeps_the_notebooks_extent(test_images):
    model = load_pretrained("vae-2d")
    spec = export.explorer_data(export.EXPLORERS["vae-2d-plane"], model, test_images)
    assert spec["extent"] == [-3, 3, -3, 3] and spec["start"] == [0, 0]


def test_traversal_starts_at_the_first_code_and_sweeps_informative_units(test_images):
    model = load_pretrained("vae")
    spec = export.explorer_data(export.EXPLORERS["vae-traversal"], model, test_images)
    with torch.no_grad():
        mu, logvar = model.encode(test_images.x[: export.TEST_IMAGES])
    assert torch.allclose(torch.tensor(spec["z0"]), mu[0], atol=0.006)
    dims = spec["dims"]
    assert len(dims) == len(set(dims)) == 8
    # the swept units carry more KL than the ones left out
    kl = (0.5 * (mu**2 + logvar.exp() - logvar - 1)).mean(0)
    left_out = [j for j in range(len(kl)) if j not in dims]
    assert kl[dims].min() >= kl[left_out].max()


def test_code_grids_are_the_encoders_codes(test_images):
    model = load_pretrained("vqvae")
    explorer = export.EXPLORERS["vqvae-codes"]
    spec = export.explorer_data(explorer, model, test_images)
    chosen = list(explorer.options["images"])
    with torch.no_grad():
        expected = model.encode(test_images.x[chosen])
    assert torch.equal(torch.tensor(spec["grids"]), expected)
    assert spec["codebook_size"] == model.config.codebook_size
    assert spec["input_shape"] == [1, 7, 7]


def test_noise_images_are_the_test_images_exactly(test_images):
    model = load_pretrained("dae")
    spec = export.explorer_data(export.EXPLORERS["dae-noise"], model, test_images)
    pixels = np.frombuffer(base64.b64decode(spec["images"]), dtype=np.uint8)
    x = torch.from_numpy(pixels.copy()).float().div(255).view(-1, 1, 28, 28)
    assert spec["count"] == len(x) == 16
    assert torch.equal(x, test_images.x[:16])


def test_exported_conditional_decoder_matches_pytorch_for_every_class(tmp_path):
    model = load_pretrained("cvae-mlp-16")
    k, n = model.config.latent_dim, model.config.num_classes
    path = export.export_onnx(model, tmp_path / "cvae.onnx")
    runtime = ReferenceEvaluator(str(path))
    assert runtime.input_names == ["z_y"]
    z = 3 * torch.randn(1, k, generator=torch.Generator().manual_seed(1))
    images = []
    for c in range(n):
        # the browser's input: z, then the one-hot label
        z_y = torch.cat([z, torch.nn.functional.one_hot(torch.tensor([c]), n).float()], 1)
        (got,) = runtime.run(None, {"z_y": z_y.numpy()})
        with torch.no_grad():
            expected = model.decode_images(z, y=torch.tensor([c]))
        np.testing.assert_allclose(got, expected.numpy(), atol=ATOL, rtol=0)
        images.append(got)
    # the label matters: two classes decode the same z differently
    assert np.abs(images[1] - images[9]).max() > 0.1


def test_class_explorer_starts_at_the_widgets_first_draw(test_images):
    explorer = export.EXPLORERS["cvae-class"]
    model = load_pretrained(explorer.model)
    spec = export.explorer_data(explorer, model, test_images)
    k, n = model.config.latent_dim, model.config.num_classes
    first = torch.randn(k, generator=torch.Generator().manual_seed(0))  # class_explorer's
    assert torch.allclose(torch.tensor(spec["z0"]), first, atol=0.006)
    assert spec["classes"] == list(test_images.classes) and len(spec["classes"]) == n
    assert spec["dims"] == list(range(8)) and spec["limit"] == 3
    assert (spec["input"], spec["input_shape"]) == ("z_y", [1, k + n])
    json.dumps(spec)
