"""The book's latent explorers, for the reader's browser: decoders in ONNX.

On the published site the explorers of chapters 2-5 run without a kernel:
onnxruntime-web (from npm, served with the site) runs the decoders exported
here from the shipped weights, and book/_static/explorers.js draws them.

    python -m aecourse.export OUT_DIR       # `make book` runs this

writes into OUT_DIR, for each explorer in EXPLORERS, ``<name>.json`` (what
its page draws: the kind of explorer, the model file, the starting latent,
the latent map's points...) and, once per model, ``<model>.onnx``: a graph
from the model's inputs to images in [0, 1], (1, C, H, W) float32. The data
the explorers start from (codes of test images) come from the first test
images, as in the notebooks.

A notebook code cell names its explorer in its metadata (``explorer: NAME``);
book/_ext/aecourse_explorers.py puts the explorer there on the page.
"""

from __future__ import annotations

import argparse
import base64
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aecourse import data, losses, plot
from aecourse.models import AE, DAE, VAE, VQVAE
from aecourse.pretrained import load_pretrained

OPSET = 18  # ONNX operator set; onnxruntime-web runs it
MAP_POINTS = 2000  # test codes drawn on a latent plane's map
TEST_IMAGES = 1000  # test images behind the traversal's order of units
DIGITS = 2  # decimals of the latents written to JSON (a map pixel is ~0.02)


@dataclass
class Explorer:
    """One explorer of the book: its kind, the model it runs, its options."""

    kind: str  # "plane", "traversal", "codes", "noise" or "class" (explorers.js)
    model: str  # a shipped model (aecourse/weights/<model>.safetensors)
    options: dict[str, Any] = field(default_factory=dict)


# name (in a code cell's `explorer:` metadata) -> explorer
EXPLORERS = {
    # chapter 2: the plain AE's 2-D latent plane, over its codes' extent
    "ae-2d-plane": Explorer("plane", "ae-2d"),
    # chapter 4: the VAE's plane, over +-3 prior standard deviations
    "vae-2d-plane": Explorer("plane", "vae-2d", {"extent": (-3, 3, -3, 3)}),
    # chapter 4: the 8 most informative units of `vae`, from the code
    # (mean of q(z|x)) of the first test image
    "vae-traversal": Explorer("traversal", "vae", {"units": 8, "limit": 3}),
    # chapter 5: the code grids of a few test images, one cell at a time
    "vqvae-codes": Explorer("codes", "vqvae", {"images": (0, 1, 2, 8, 13)}),
    # chapter 3: the DAE on 16 test images with noise drawn in the browser
    "dae-noise": Explorer("noise", "dae", {"images": 16}),
    # chapter 4: the conditional VAE trained at beta = 4 (its label steers the
    # samples more than cvae-mlp-16's), a chosen class and 8 latent units,
    # from the draw z ~ N(0, I) of a generator seeded with `seed`
    "cvae-class": Explorer("class", "cvae-mlp-16-beta4", {"units": 8, "limit": 3, "seed": 0}),
}


class _LatentDecoder(nn.Module):
    """Latents z (B, latent_dim) -> images in [0, 1] (AE or VAE), without
    the input checks (a value check cannot be a graph). A conditional VAE's
    input is z followed by the one-hot label, (B, latent_dim + num_classes):
    what its decoder reads (`VAE.condition`)."""

    def __init__(self, model: AE | VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> Tensor:
        out = self.model.decoder(z)  # (B, C, H, W)
        if isinstance(self.model, VAE):
            return torch.sigmoid(out)  # Bernoulli means
        return out.clamp(0.0, 1.0)  # the linear AE's output is not bounded


class _CodeDecoder(nn.Module):
    """Code indices (B, h, w) int64 -> images (B, C, H, W) in [0, 1]."""

    def __init__(self, model: VQVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, indices: Tensor) -> Tensor:
        codebook = self.model.quantizer.codebook  # (K, D)
        # the quantiser's lookup, (B, h, w, D) -> (B, D, h, w)
        z_q = F.embedding(indices, codebook).permute(0, 3, 1, 2)
        return self.model.decoder(z_q)


class _Denoiser(nn.Module):
    """Noisy images x (B, C, H, W) in [0, 1] -> the DAE's x_hat."""

    def __init__(self, model: DAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.decoder(self.model.encoder(x))


def graph(model: nn.Module) -> tuple[nn.Module, Tensor, str]:
    """What is exported for a model: (module, example input, input name).

    The module computes what the explorers show and what
    ``plot.image_decoder(model)`` computes: images in [0, 1].
    """
    model = model.eval().cpu()
    c, s = model.config.in_channels, model.config.image_size
    if isinstance(model, DAE):
        return _Denoiser(model), torch.zeros(1, c, s, s), "x"
    if isinstance(model, VAE) and model.config.num_classes:
        z_y = torch.zeros(1, model.config.latent_dim + model.config.num_classes)
        return _LatentDecoder(model), z_y, "z_y"
    if isinstance(model, (AE, VAE)):
        z = torch.zeros(1, model.config.latent_dim)
        return _LatentDecoder(model), z, "z"
    if isinstance(model, VQVAE):
        g = model.config.grid
        indices = torch.zeros(1, g, g, dtype=torch.int64)
        return _CodeDecoder(model), indices, "indices"
    raise ValueError(
        "expected an AE, DAE, VAE or VQVAE to export, "
        f"got {type(model).__name__}"
    )


def export_onnx(model: nn.Module, path: str | Path) -> Path:
    """Write the graph of ``model`` (see ``graph``) to ``path`` as one ONNX
    file: input named "z", "z_y", "indices" or "x" with batch size 1, output
    "x_hat" (1, C, H, W) float32 in [0, 1]."""
    module, example, name = graph(model)
    try:  # torch.onnx's exporter needs both
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "exporting the explorers needs onnx and onnxscript: "
            "pip install onnx onnxscript (requirements.txt pins them)"
        ) from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the exporter's progress notes are not the reader's concern
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[name],
            output_names=["x_hat"],
            verbose=False,
        )
    # weights inside the file: one download per model
    program.save(str(path), external_data=False)
    return path


def _rounded(t: Tensor) -> list:
    # in float64, so that JSON writes 0.12 and not 0.11999999731779099
    return torch.round(t.double(), decimals=DIGITS).tolist()


def _plane(model: nn.Module, test: data.ImageData, opts: dict) -> dict:
    test = test.subset(MAP_POINTS)
    with torch.no_grad():
        z = model.encode(test.x)
    if isinstance(z, tuple):  # a VAE: the means of q(z|x)
        z = z[0]
    extent = opts.get("extent") or plot.extent_of(z)
    x0, x1, y0, y1 = plot._check_extent(extent)
    return {
        "extent": [x0, x1, y0, y1],
        "start": [round((x0 + x1) / 2, DIGITS), round((y0 + y1) / 2, DIGITS)],
        "points": _rounded(z),
        "labels": test.y.tolist(),
        "classes": list(test.classes),
    }


def _traversal(model: VAE, test: data.ImageData, opts: dict) -> dict:
    with torch.no_grad():
        mu, logvar = model.encode(test.subset(TEST_IMAGES).x)
    # each unit's KL, averaged over the images (as in notebook 04)
    kl_1d = losses.gaussian_kl(mu.reshape(-1, 1), logvar.reshape(-1, 1))
    kl_per_unit = kl_1d.reshape(mu.shape).mean(0)  # (D,)
    order = kl_per_unit.argsort(descending=True)[: opts["units"]]
    return {"z0": _rounded(mu[0]), "dims": order.tolist(),
            "limit": opts["limit"]}


def _codes(model: VQVAE, test: data.ImageData, opts: dict) -> dict:
    chosen = list(opts["images"])
    with torch.no_grad():
        indices = model.encode(test.x[chosen])  # (N, h, w)
    return {
        "grids": indices.tolist(),
        "codebook_size": model.config.codebook_size,
        "classes": [test.classes[int(test.y[i])] for i in chosen],
    }


def _noise(model: DAE, test: data.ImageData, opts: dict) -> dict:
    from aecourse.widgets import NOISE_LEVELS

    x = test.subset(opts["images"]).x  # (N, C, H, W) in [0, 1]
    # the test images are 8-bit: these bytes are the images exactly
    pixels = torch.round(x * 255).to(torch.uint8).numpy().tobytes()
    return {
        "images": base64.b64encode(pixels).decode("ascii"),
        "count": len(x),
        "levels": {k: list(v) for k, v in NOISE_LEVELS.items()},
        "seed": 0,
    }


def _class(model: VAE, test: data.ImageData, opts: dict) -> dict:
    k = model.config.latent_dim
    # the widget's first z (aecourse.widgets.class_explorer)
    z0 = torch.randn(k, generator=torch.Generator().manual_seed(opts["seed"]))
    return {
        "z0": _rounded(z0),
        "dims": list(range(min(k, opts["units"]))),
        "limit": opts["limit"],
        "latent_dim": k,
        "classes": list(test.classes)[: model.config.num_classes],
    }


_DATA: dict[str, Callable[..., dict]] = {
    "plane": _plane, "traversal": _traversal, "codes": _codes,
    "noise": _noise, "class": _class,
}


def explorer_data(
    explorer: Explorer, model: nn.Module, test: data.ImageData
) -> dict:
    """The JSON of one explorer: its kind, model file and starting data."""
    c, s = model.config.in_channels, model.config.image_size
    _, example, name = graph(model)
    return {
        "kind": explorer.kind,
        "model": f"{explorer.model}.onnx",
        "input": name,
        "input_shape": list(example.shape),
        "image_shape": [c, s, s],
        **_DATA[explorer.kind](model, test, explorer.options),
    }


def export_all(
    out_dir: str | Path,
    names: list[str] | None = None,
    *,
    weights_dir: str | Path | None = None,
) -> list[Path]:
    """Export the explorers ``names`` (default: all of EXPLORERS) and their
    models into ``out_dir``; returns the files written."""
    names = list(EXPLORERS) if names is None else names
    unknown = sorted(set(names) - set(EXPLORERS))
    if unknown:
        raise ValueError(
            f"unknown explorers {unknown}; expected some of {list(EXPLORERS)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = data.load("fashion-mnist", "test")
    written = []
    for name in names:
        explorer = EXPLORERS[name]
        model = load_pretrained(explorer.model, weights_dir=weights_dir)
        onnx_path = out_dir / f"{explorer.model}.onnx"
        if onnx_path not in written:
            written.append(export_onnx(model, onnx_path))
        spec = explorer_data(explorer, model, test)
        json_path = out_dir / f"{name}.json"
        json_path.write_text(json.dumps(spec, separators=(",", ":")))
        written.append(json_path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m aecourse.export",
        description="Export the book's explorers (ONNX decoders + JSON).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write into")
    parser.add_argument(
        "--explorers", nargs="+", choices=list(EXPLORERS), default=None,
        help="default: all",
    )
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    for path in export_all(args.out_dir, args.explorers):
        print(f"{path}: {path.stat().st_size / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
