"""The course's figures: image grids, latent maps, decoded latent planes, traversals, curves.

Every function returns a ``matplotlib.figure.Figure``. When no ``ax`` is given the figure is
new and already closed in pyplot, so a notebook shows it exactly once: when it is the value
of the cell (end the line with ``;`` to hide it, or ``display(fig)`` it mid-cell), never
twice. Pass ``ax`` to draw into a figure of your own. Tensors may live on any device;
they are detached and copied to the CPU here. Images are (B, C, H, W) floats in [0, 1]
with 1 (grey) or 3 (RGB) channels.

A ``decode`` argument is any callable z (N, latent_dim) -> images (N, C, H, W) in [0, 1].
``AE.decode`` is one; ``VAE.decode`` returns logits, so wrap models with
``image_decoder(model)`` (their ``decode_images``), which also moves z to the model's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchvision.utils import make_grid

from aecourse.data import CLASS_NAMES, check_images

Decode = Callable[[Tensor], Tensor]

IMAGE_CMAP = "gray"  # every image is drawn in grey levels with vmin=0, vmax=1
PAD_VALUE = 1.0  # white lines between tiles of a grid
TILE_INCHES = 0.7  # printed size of one tile (one 28x28 image) in a new figure
MAX_INCHES = 12.0  # widest new figure
DEFAULT_EXTENT = (-3.0, 3.0, -3.0, 3.0)  # (z1_min, z1_max, z2_min, z2_max): +-3 sd of N(0, I)
MAX_TRAVERSAL_DIMS = 16  # rows of a traversal when dims are not given
_HISTORY_SKIP = ("epoch", "seconds", "images_per_second")  # History keys that are not losses


# --------------------------------------------------------------------------- helpers
def _new_figure(
    figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kwargs: Any
) -> tuple[Figure, Any]:
    """A new figure and its axes, closed in pyplot (no second copy in notebooks, no leak)."""
    import matplotlib.pyplot as plt  # pyplot resolves the backend: Jupyter's inline formatter

    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", **kwargs)
    plt.close(fig)
    return fig, axes


def _figure_for(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """The caller's ax and its figure, or a new figure with one axes."""
    return (ax.figure, ax) if ax is not None else _new_figure(figsize)


def _tensor(x: object, name: str) -> Tensor:
    """x (a Tensor or NumPy array) detached, on the CPU."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x.detach().cpu()


def _images(x: object, name: str = "x") -> np.ndarray:
    """Validated images as a float32 array (B, C, H, W) with C in {1, 3}."""
    x = _tensor(x, name)
    check_images(x, name=name)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(x.shape)}")
    return x.float().numpy()


def _tile(images: np.ndarray, nrow: int, padding: int = 0) -> np.ndarray:
    """Images (B, C, H, W) -> one mosaic (H', W') or (H', W', 3) by torchvision's make_grid:
    nrow images per row, each framed by `padding` pixels of PAD_VALUE."""
    x = torch.from_numpy(images)
    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=PAD_VALUE)  # (3, H', W')
    if len(x) == 1:  # make_grid returns a lone image without its frame
        grid = F.pad(grid, (padding,) * 4, value=PAD_VALUE)
    return grid[0].numpy() if x.shape[1] == 1 else grid.permute(1, 2, 0).numpy()


def _show(ax: Axes, mosaic: np.ndarray, *, ticks: bool = False, **kwargs: Any) -> None:
    """Draw a mosaic in grey levels on [0, 1]; image grids get no ticks or frame."""
    ax.imshow(mosaic, cmap=IMAGE_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest", **kwargs)
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)


def _grid_size(
    rows: int, cols: int, h: int, w: int, extra: tuple[float, float] = (0.0, 0.3)
) -> tuple[float, float]:
    """Figure size for a mosaic of rows x cols tiles of h x w pixels (+ room for labels)."""
    width = min(cols * TILE_INCHES * w / 28, MAX_INCHES)
    height = width * (rows * h) / (cols * w)
    return width + extra[0], height + extra[1]


def _device_of(decode: Callable[..., Any]) -> torch.device | None:
    """The device of the module behind decode (a Module or a Module's bound method), else None."""
    owner = getattr(decode, "__self__", decode)
    if isinstance(owner, nn.Module):
        param = next(owner.parameters(), None)
        return param.device if param is not None else None
    return None


def _decoded(
    decode: Decode, z: Tensor, device: torch.device | None = None, name: str = "decode(z)"
) -> np.ndarray:
    """Run decode without gradients on z moved to the decoder's device when it can be told
    (decode is a module or its method), else to ``device`` (where the caller's latents were)."""
    owner = _device_of(decode)
    device = owner if owner is not None else device
    with torch.no_grad():
        x_hat = decode(z if device is None else z.to(device))
    x_hat = getattr(x_hat, "x_hat", x_hat)  # a model's forward result
    try:
        images = _images(x_hat, name)
    except ValueError as err:
        raise ValueError(
            f"{err}. A decoder that returns logits (VAE.decode) needs a sigmoid: use "
            "aecourse.plot.image_decoder(model)"
        ) from None
    if len(images) != len(z):
        raise ValueError(f"{name} must return one image per latent ({len(z)}), got {len(images)}")
    return images


def _latent(z: object, name: str) -> Tensor:
    """A single latent vector as a (D,) float tensor (accepts (D,) or (1, D))."""
    z = _tensor(z, name)
    if z.ndim == 2 and z.shape[0] == 1:
        z = z[0]
    if z.ndim != 1 or not z.is_floating_point():
        raise ValueError(
            f"{name} must be one float latent vector of shape (D,) or (1, D), got {z.dtype} {tuple(z.shape)}"
        )
    return z


def _check_extent(extent: Sequence[float]) -> tuple[float, float, float, float]:
    if len(extent) != 4:
        raise ValueError(f"extent must be (z1_min, z1_max, z2_min, z2_max), got {extent!r}")
    x0, x1, y0, y1 = (float(v) for v in extent)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"extent must satisfy z1_min < z1_max and z2_min < z2_max, got {extent!r}")
    return x0, x1, y0, y1


def extent_of(z: object, quantile: float = 0.01, margin: float = 0.05) -> tuple[float, float, float, float]:
    """(z1_min, z1_max, z2_min, z2_max) covering 2-D latents z (N, 2) between the given
    quantiles (outliers left out), widened by a margin (fraction of the range)."""
    z = _points(z, "z")
    low = torch.quantile(z, quantile, dim=0)
    high = torch.quantile(z, 1 - quantile, dim=0)
    pad = (high - low).clamp(min=1e-3) * margin
    (x0, y0), (x1, y1) = (low - pad).tolist(), (high + pad).tolist()
    return x0, x1, y0, y1


def _points(z: object, name: str) -> Tensor:
    z = _tensor(z, name)
    if z.ndim != 2 or z.shape[1] != 2 or z.shape[0] == 0:
        raise ValueError(
            f"{name} must be 2-D latents of shape (N, 2), got {tuple(z.shape)} "
            "(project wider latents to two dimensions first, e.g. with PCA)"
        )
    return z.float()


def _labels(y: object, n: int, classes: Sequence[str] | None) -> tuple[Tensor, Sequence[str]]:
    y = _tensor(y, "y")
    if y.ndim != 1 or len(y) != n or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"y must be integer class labels of shape ({n},), got {y.dtype} {tuple(y.shape)}")
    classes = CLASS_NAMES if classes is None else tuple(classes)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise ValueError(
            f"y must hold labels in [0, {len(classes)}) for the {len(classes)} classes, "
            f"got values in [{int(y.min())}, {int(y.max())}] (pass classes=...)"
        )
    return y.long(), classes


def image_decoder(model: nn.Module) -> Decode:
    """A model's ``decode_images`` as a callable latents -> images in [0, 1] for these plots
    and widgets: AE and DAE z -> ``decode(z)`` clamped to [0, 1] (for the linear AE); VAE
    z -> the Bernoulli means ``sigmoid(decode(z))``; VQVAE indices (B, h, w) -> the decoded
    codes. Inputs go to the model's device, outputs come back on it; the model runs in eval
    mode without gradients and its mode is restored.
    """
    if not callable(getattr(model, "decode_images", None)):
        raise ValueError(
            f"expected a model with decode_images (AE, DAE, VAE, VQVAE), got {type(model).__name__}"
        )

    def decode(z: Tensor) -> Tensor:
        param = next(model.parameters(), None)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model.decode_images(z if param is None else z.to(param.device))
        finally:
            model.train(was_training)

    return decode


# --------------------------------------------------------------------------- image figures
def image_grid(
    x: Tensor, nrow: int = 8, *, title: str | None = None, ax: Axes | None = None, padding: int = 2
) -> Figure:
    """Images x (B, C, H, W) in [0, 1] as one tiled image, ``nrow`` images per row
    (torchvision's make_grid convention), framed by ``padding`` white pixels."""
    images = _images(x)
    if nrow < 1 or padding < 0:
        raise ValueError(f"expected nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    b, _, h, w = images.shape
    cols = min(nrow, b)
    fig, ax = _figure_for(ax, _grid_size(math.ceil(b / cols), cols, h, w))
    _show(ax, _tile(images, nrow, padding))
    if title:
        ax.set_title(title)
    return fig


def reconstructions(
    x: Tensor | Sequence[Tensor],
    x_hat: Tensor | None = None,
    n: int = 8,
    *,
    titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Labelled rows of n images: ``reconstructions(x, x_hat)`` for input and reconstruction,
    or ``reconstructions([x, x_noisy, x_hat], titles=("clean", "noisy", "denoised"))``.

    titles defaults to ("input", "reconstruction") for two rows and no labels otherwise.
    Every row is (B, C, H, W) in [0, 1] with the same C, H, W; the first n of each are shown.
    """
    if isinstance(x, (Tensor, np.ndarray)):
        if x_hat is None:
            raise ValueError("expected x and x_hat, or a sequence of rows as x; got x alone")
        rows = [x, x_hat]
    else:
        if x_hat is not None:
            raise ValueError("expected either x and x_hat, or a sequence of rows as x, not both")
        rows = list(x)
    if not rows:
        raise ValueError("expected at least one row of images, got none")
    if titles is None:
        titles = ("input", "reconstruction") if len(rows) == 2 else ("",) * len(rows)
    if len(titles) != len(rows):
        raise ValueError(f"expected one title per row ({len(rows)}), got {len(titles)}: {tuple(titles)}")
    if n < 1:
        raise ValueError(f"expected n >= 1 images per row, got {n}")
    arrays = [_images(r, f"row {i} ({titles[i] or 'untitled'})") for i, r in enumerate(rows)]
    if len({a.shape[1:] for a in arrays}) > 1:
        shapes = [a.shape[1:] for a in arrays]
        raise ValueError(f"expected rows of images of one shape (C, H, W), got {shapes}")
    n = min(n, *(len(a) for a in arrays))
    _, _, h, w = arrays[0].shape
    label_room = 1.0 if any(titles) else 0.0
    size = _grid_size(len(rows), n, h, w, (label_room, 0.1 * len(rows) + (0.3 if title else 0.0)))
    fig, axes = _new_figure(size, nrows=len(rows), squeeze=False)
    for ax, images, label in zip(axes[:, 0], arrays, titles):
        _show(ax, _tile(images[:n], n, padding=2))
        ax.text(-0.01, 0.5, label, transform=ax.transAxes, ha="right", va="center")  # row label
    if title:
        fig.suptitle(title)
    return fig


def decoded_plane(
    decode: Decode,
    *,
    extent: Sequence[float] | None = None,
    steps: int = 15,
    z: Tensor | None = None,
    y: Tensor | None = None,
    classes: Sequence[str] | None = None,
    overlay: str = "beside",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Decode a regular steps x steps grid of 2-D latents into a mosaic whose axes are the
    latent coordinates (z[0] to the right, z[1] up).

    decode is called once with a (steps * steps, 2) tensor. extent is (z1_min, z1_max,
    z2_min, z2_max): given, or else covering z when given (``extent_of``), or else +-3.
    With encoded latents z (N, 2) and labels y (N,), overlay="beside" draws their latent
    map next to the mosaic and overlay="on" scatters them over it.
    """
    if steps < 2:
        raise ValueError(f"expected steps >= 2, got {steps}")
    if overlay not in ("beside", "on"):
        raise ValueError(f"overlay must be 'beside' or 'on', got {overlay!r}")
    if (z is None) != (y is None):
        raise ValueError("expected both z and y (the latent map to show with the plane), or neither")
    if extent is None:
        extent = extent_of(z) if z is not None else DEFAULT_EXTENT
    x0, x1, y0, y1 = _check_extent(extent)
    beside = z is not None and overlay == "beside"
    if beside and ax is not None:
        raise ValueError("overlay='beside' draws two axes and takes no ax; pass overlay='on' or no ax")

    z1 = torch.linspace(x0, x1, steps)
    z2 = torch.linspace(y1, y0, steps)  # top row first: z[1] grows upwards
    grid = torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], dim=-1).reshape(-1, 2)  # (steps^2, 2)
    images = _decoded(decode, grid)  # (steps^2, C, H, W)
    dx, dy = (x1 - x0) / (steps - 1), (y1 - y0) / (steps - 1)
    edges = (x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2)  # tile centres sit on the grid

    if ax is not None:
        fig, plane_ax = ax.figure, ax
    elif beside:
        fig, (map_ax, plane_ax) = _new_figure((11.0, 5.0), ncols=2)
        latent_map(z, y, classes=classes, ax=map_ax, title="encoded images")
        map_ax.set_xlim(edges[:2])
        map_ax.set_ylim(edges[2:])
    else:
        fig, plane_ax = _new_figure((6.0, 6.0))
    _show(plane_ax, _tile(images, steps), ticks=True, extent=edges, aspect="auto")
    if z is not None and not beside:
        latent_map(z, y, classes=classes, ax=plane_ax, alpha=0.35)
        plane_ax.set_xlim(edges[:2])
        plane_ax.set_ylim(edges[2:])
    plane_ax.set_xlabel("z[0]")
    plane_ax.set_ylabel("z[1]")
    plane_ax.set_title("decoded latent plane" if title is None else title)
    return fig


def traversal(
    decode: Decode,
    z0: Tensor,
    *,
    dims: Sequence[int] | None = None,
    values: Tensor | Sequence[float] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Latent traversal: row i decodes z0 with dimension dims[i] set to each of ``values``
    (default torch.linspace(-3, 3, 9)), all other dimensions kept at z0.

    z0: (D,) or (1, D). dims defaults to the first min(D, 16) dimensions.
    """
    device = z0.device if isinstance(z0, Tensor) else None
    z0 = _latent(z0, "z0")
    d = len(z0)
    dims = list(range(min(d, MAX_TRAVERSAL_DIMS))) if dims is None else [int(i) for i in dims]
    if not dims or any(not 0 <= i < d for i in dims):
        raise ValueError(f"dims must be a non-empty list of latent dimensions in [0, {d}), got {dims}")
    values = torch.linspace(-3, 3, 9) if values is None else torch.as_tensor(values, dtype=z0.dtype)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {tuple(values.shape)}")
    z = z0.repeat(len(dims), len(values), 1)  # (rows, cols, D)
    for r, i in enumerate(dims):
        z[r, :, i] = values
    images = _decoded(decode, z.reshape(-1, d), device)  # (rows * cols, C, H, W)
    _, _, h, w = images.shape
    fig, ax = _figure_for(ax, _grid_size(len(dims), len(values), h, w, (0.6, 0.8)))
    _show(ax, _tile(images, len(values), padding=2))
    _label_tiles(ax, [f"{v:.3g}" for v in values.tolist()], [f"z[{i}]" for i in dims], h, w)
    ax.set_xlabel("value of the latent dimension")
    ax.set_title("latent traversal" if title is None else title)
    return fig


def _label_tiles(
    ax: Axes, col_labels: Sequence[str], row_labels: Sequence[str], h: int, w: int, padding: int = 2
) -> None:
    """Tick labels at the centres of a padded mosaic's columns and rows."""
    ax.set_xticks([padding + k * (w + padding) + (w - 1) / 2 for k in range(len(col_labels))], col_labels)
    ax.set_yticks([padding + r * (h + padding) + (h - 1) / 2 for r in range(len(row_labels))], row_labels)
    ax.tick_params(length=0, labelsize="small")


def interpolation(
    decode: Decode,
    z_a: Tensor,
    z_b: Tensor,
    steps: int = 10,
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Decode z = (1 - t) z_a + t z_b for ``steps`` values of t from 0 to 1, one row per pair.

    z_a, z_b: (D,) for one row, or (P, D) for P rows.
    """
    device = z_a.device if isinstance(z_a, Tensor) else None
    z_a, z_b = _tensor(z_a, "z_a"), _tensor(z_b, "z_b")
    if z_a.shape != z_b.shape or z_a.ndim not in (1, 2) or not z_a.is_floating_point():
        raise ValueError(
            "z_a and z_b must be float latents of one shape, (D,) or (P, D), "
            f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if steps < 2:
        raise ValueError(f"expected steps >= 2 (the two endpoints at least), got {steps}")
    z_a, z_b = z_a.reshape(-1, z_a.shape[-1]), z_b.reshape(-1, z_b.shape[-1])  # (P, D)
    t = torch.linspace(0, 1, steps, dtype=z_a.dtype)[None, :, None]  # (1, steps, 1)
    z = (1 - t) * z_a[:, None] + t * z_b[:, None]  # (P, steps, D); exact at t = 0 and t = 1
    images = _decoded(decode, z.reshape(-1, z_a.shape[-1]), device)
    _, _, h, w = images.shape
    fig, ax = _figure_for(ax, _grid_size(len(z_a), steps, h, w, (0.0, 0.8)))
    _show(ax, _tile(images, steps, padding=2))
    labels = ["z_a", *[""] * (steps - 2), "z_b"]
    _label_tiles(ax, labels, [""] * len(z_a), h, w)
    if title:
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------- latent spaces and codes
def latent_map(
    z: Tensor,
    y: Tensor,
    *,
    classes: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    s: float = 3.0,
    alpha: float = 0.5,
) -> Figure:
    """Scatter of 2-D latents z (N, 2) coloured by class y (N,), one collection per class
    present, with a legend of the class names (default: Fashion-MNIST's CLASS_NAMES)."""
    z = _points(z, "z")
    y, classes = _labels(y, len(z), classes)
    fig, ax = _figure_for(ax, (7.5, 5.5))
    colours = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]  # distinct colours
    for k in torch.unique(y).tolist():
        points = z[y == k]
        ax.scatter(points[:, 0], points[:, 1], s=s, alpha=alpha, color=colours(k % colours.N),
                   label=classes[k], linewidths=0, rasterized=len(z) > 2000)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small",
                       markerscale=max(1.0, 6.0 / math.sqrt(s)))
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    if title:
        ax.set_title(title)
    return fig


def codebook_histogram(
    indices: Tensor, codebook_size: int, *, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Bar chart of how often each of the codebook_size codes occurs in indices (any shape),
    sorted from most to least used, with usage and perplexity (metrics.codebook_usage) in the title."""
    from aecourse.metrics import codebook_usage

    indices = _tensor(indices, "indices")
    usage, perplexity = codebook_usage(indices, codebook_size)  # validates dtype and range
    counts = torch.bincount(indices.flatten().long(), minlength=codebook_size)
    counts = counts.sort(descending=True).values.numpy()  # (K,)
    fig, ax = _figure_for(ax, (8.0, 3.5))
    ax.bar(np.arange(codebook_size), counts, width=1.0, color="0.3")
    ax.set_xlim(-0.5, codebook_size - 0.5)
    ax.set_xlabel("code, most used first")
    ax.set_ylabel("count")
    head = f"{title}: " if title else ""
    ax.set_title(f"{head}{usage:.0%} of {codebook_size} codes used, perplexity {perplexity:.1f}")
    return fig


# --------------------------------------------------------------------------- curves
def curve(
    xs: Sequence[float] | Tensor,
    series: Mapping[str, Sequence[float] | Tensor],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    ax: Axes | None = None,
    logx: bool = False,
) -> Figure:
    """Line plot of several named series over shared xs, e.g. PSNR against noise level
    (``curve(sigmas, {"noisy": a, "denoised": b}, xlabel="sigma", ylabel="PSNR (dB)")``)."""
    xs = np.asarray(_tensor(xs, "xs") if isinstance(xs, Tensor) else xs, dtype=float)
    if xs.ndim != 1 or len(xs) == 0:
        raise ValueError(f"xs must be a non-empty 1-D sequence, got shape {xs.shape}")
    if not isinstance(series, Mapping) or not series:
        raise ValueError(f"series must be a non-empty dict name -> ys, got {type(series).__name__}")
    fig, ax = _figure_for(ax, (6.0, 4.0))
    for name, ys in series.items():
        ys = np.asarray(_tensor(ys, name) if isinstance(ys, Tensor) else ys, dtype=float)
        if ys.shape != xs.shape:
            raise ValueError(f"series {name!r} must have one value per x ({len(xs)}), got shape {ys.shape}")
        ax.plot(xs, ys, marker="o", markersize=4, label=name)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return fig


def _history_records(history: object) -> list[Mapping[str, Any]]:
    """Per-epoch dicts from a model card (dict with "train_history"), a History or a list of dicts."""
    if isinstance(history, Mapping):
        if "train_history" not in history:
            raise ValueError(f"expected a model card with 'train_history', got keys {sorted(history)}")
        history = history["train_history"]
    records = list(history) if isinstance(history, Sequence) and not isinstance(history, str) else None
    if not records or not all(isinstance(r, Mapping) and "epoch" in r for r in records):
        raise ValueError(
            "expected a non-empty list of per-epoch dicts with an 'epoch' key "
            "(a History or a card's train_history)"
        )
    return records


def training_curves(
    history: object, terms: Sequence[str] | None = None, *, title: str | None = None
) -> Figure:
    """Per-epoch training losses, one panel per term, from ``fit``'s History, a model card
    (``load_card(name)``) or its ``train_history`` list. terms defaults to "loss" followed by
    every other numeric entry except epoch and timing."""
    records = _history_records(history)
    available = [k for k, v in records[0].items() if k not in _HISTORY_SKIP and isinstance(v, (int, float))]
    if terms is None:
        terms = sorted(available, key=lambda k: k != "loss")  # "loss" first, then in card order
    missing = [t for t in terms if t not in available]
    if not terms or missing:
        raise ValueError(f"terms must be among {available}, got {list(terms)}")
    ncols = min(len(terms), 4)
    nrows = math.ceil(len(terms) / ncols)
    fig, axes = _new_figure((3.2 * ncols, 2.6 * nrows), nrows=nrows, ncols=ncols, squeeze=False)
    epochs = [r["epoch"] for r in records]
    for ax, term in zip(axes.flat, terms):
        ax.plot(epochs, [r.get(term, np.nan) for r in records], marker="o", markersize=3)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(terms):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig
