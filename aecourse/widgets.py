"""Interactive explorers for the notebooks: move a slider and the decoder runs again.

Each function returns an ipywidgets box; make it the value of a cell to show it in Jupyter
or Colab. Pictures are PNG bytes in ``ipywidgets.Image`` widgets, updated by ``observe``
callbacks, so a box can be built and driven from plain Python (set a slider's ``value``
and the picture changes) without a browser. The published book is static: there the
sliders do not run, which is why every chapter also shows the same idea as a figure
(``aecourse.plot``), and the book's site runs the same explorers in the reader's browser
(``aecourse.export``, book/_static/explorers.js). ipywidgets is imported on first use.

decode/denoise callables follow ``aecourse.plot``: latents (N, latent_dim) -> images
(N, C, H, W) in [0, 1]; wrap a model with ``aecourse.plot.image_decoder(model)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.image
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from aecourse import plot

if TYPE_CHECKING:
    import ipywidgets

SCALE = 8  # decoded images are shown `SCALE` times their size (28 px -> 224 px), pixels kept sharp
CELL_COLOUR = (0.91, 0.35, 0.05)  # RGB of the frame around the chosen cell of a code grid
MAX_POINTS = 5000  # latent map points drawn behind the marker (a fixed random subset beyond this)
NOISE_LEVELS = {  # kind -> (slider label, largest level, starting level)
    "gaussian": ("sigma", 1.0, 0.5),
    "mask": ("mask p", 0.9, 0.5),
}


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError as err:
        raise ImportError("aecourse.widgets needs ipywidgets: pip install ipywidgets") from err
    return ipywidgets


def _figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _image_png(image: np.ndarray, scale: int = SCALE) -> bytes:
    """One image (C, H, W) in [0, 1] as PNG bytes, enlarged `scale` times by pixel repetition."""
    pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)  # (H, W) or (H, W, 3)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, pixels, cmap=plot.IMAGE_CMAP, vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def _slider(widgets: Any, description: str, value: float, low: float, high: float) -> Any:
    return widgets.FloatSlider(
        value=value, min=low, max=high, step=(high - low) / 100, description=description,
        continuous_update=True, readout_format=".2f",
    )


def latent_plane_explorer(
    decode: plot.Decode,
    *,
    extent: Sequence[float] | None = None,
    z: Tensor | None = None,
    y: Tensor | None = None,
    classes: Sequence[str] | None = None,
) -> ipywidgets.VBox:
    """Two sliders (z[0], z[1]) -> the decoded image of that 2-D latent, shown next to the
    latent map of z (N, 2) coloured by y (N,) with a cross at the current point, when given.

    extent (z1_min, z1_max, z2_min, z2_max) bounds the sliders: given, else covering z, else +-3.
    Returns an ipywidgets.VBox.
    """
    widgets = _ipywidgets()
    if (z is None) != (y is None):
        raise ValueError("expected both z and y (the latent map behind the marker), or neither")
    if extent is None:
        extent = plot.extent_of(z) if z is not None else plot.DEFAULT_EXTENT
    x0, x1, y0, y1 = plot._check_extent(extent)
    z1 = _slider(widgets, "z[0]", (x0 + x1) / 2, x0, x1)
    z2 = _slider(widgets, "z[1]", (y0 + y1) / 2, y0, y1)
    decoded = widgets.Image(format="png")
    pictures = [decoded]
    marker = None
    if z is not None:
        points = plot._points(z, "z")
        labels, classes = plot._labels(y, len(points), classes)
        if len(points) > MAX_POINTS:  # a fixed subset keeps each redraw fast
            keep = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:MAX_POINTS]
            points, labels = points[keep], labels[keep]
        fig = Figure(figsize=(6.0, 4.5), layout="constrained")
        ax = fig.add_subplot()
        plot.latent_map(points, labels, classes=classes, ax=ax)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        (marker,) = ax.plot([], [], marker="X", markersize=14, color="black", markeredgecolor="white")
        latent = widgets.Image(format="png")
        pictures.insert(0, latent)

    def update(change: object = None) -> None:
        point = torch.tensor([[z1.value, z2.value]], dtype=torch.float32)  # (1, 2)
        decoded.value = _image_png(plot._decoded(decode, point)[0])
        if marker is not None:
            marker.set_data([z1.value], [z2.value])
            latent.value = _figure_png(fig)

    z1.observe(update, names="value")
    z2.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([z1, z2]), widgets.HBox(pictures)])


def noise_explorer(
    denoise: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    kinds: Sequence[str] = ("gaussian", "mask"),
    seed: int = 0,
) -> ipywidgets.VBox:
    """Corruption kind (dropdown) and level (slider) -> clean | noisy | denoised, with the
    PSNR of the noisy and of the denoised image against the clean one.

    denoise: images (1, C, H, W) -> images in [0, 1] (a DAE, its forward's x_hat is used).
    x: one image (C, H, W) or a batch (B, C, H, W), then with an image slider. The noise uses
    ``aecourse.models.dae.gaussian_noise`` (sigma in [0, 1]) and ``mask_pixels`` (fraction
    in [0, 0.9]) with a generator seeded by ``seed`` at every redraw, so a level always shows
    the same noise. Returns an ipywidgets.VBox.
    """
    widgets = _ipywidgets()
    from aecourse.metrics import psnr
    from aecourse.models.dae import gaussian_noise, mask_pixels

    corruptions = {"gaussian": gaussian_noise, "mask": mask_pixels}
    kinds = tuple(kinds)
    if not kinds or any(k not in corruptions for k in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {tuple(corruptions)}, got {kinds}")
    device = plot._device_of(denoise)
    if device is None:  # a plain function: the noise is drawn where the images are
        device = x.device if isinstance(x, Tensor) else torch.device("cpu")
    x = plot._tensor(x, "x")
    if x.ndim == 3:
        x = x[None]  # (1, C, H, W)
    plot._images(x)  # validates: (B, C, H, W) in [0, 1], 1 or 3 channels
    x = x.to(device)

    kind = widgets.Dropdown(options=kinds, value=kinds[0], description="noise")
    label, high, start = NOISE_LEVELS[kinds[0]]
    level = _slider(widgets, label, start, 0.0, high)
    index = widgets.IntSlider(value=0, min=0, max=len(x) - 1, description="image")
    picture = widgets.Image(format="png")
    scores = widgets.HTML()
    fig = Figure(figsize=(6.0, 2.4), layout="constrained")
    axes = fig.subplots(1, 3)
    shown = []
    for ax in axes:
        plot._show(ax, np.zeros(x.shape[2:]) if x.shape[1] == 1 else np.zeros((*x.shape[2:], 3)))
        shown.append(ax.images[0])
    busy = [False]  # set while the kind's slider range changes, to redraw once

    def update(change: object = None) -> None:
        if busy[0]:
            return
        clean = x[index.value : index.value + 1]  # (1, C, H, W)
        generator = torch.Generator(device=device).manual_seed(seed)
        noisy = corruptions[kind.value](clean, level.value, generator)
        with torch.no_grad():
            denoised = denoise(noisy)
        denoised = getattr(denoised, "x_hat", denoised)
        named = ((clean, "x"), (noisy, "noisy"), (denoised, "denoise(x)"))
        images = [plot._images(t, name)[0] for t, name in named]  # (C, H, W) each
        if images[2].shape != images[0].shape:
            raise ValueError(
                f"denoise must return images of the input's shape {images[0].shape}, got {images[2].shape}"
            )
        db_noisy, db_denoised = psnr(noisy, clean), psnr(denoised.to(device), clean)
        titles = ("clean", f"noisy: {db_noisy:.1f} dB", f"denoised: {db_denoised:.1f} dB")
        for ax, artist, image, title in zip(axes, shown, images, titles):
            artist.set_data(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
            ax.set_title(title, fontsize="medium")
        picture.value = _figure_png(fig)
        scores.value = (f"PSNR against the clean image: noisy <b>{db_noisy:.2f} dB</b>, "
                        f"denoised <b>{db_denoised:.2f} dB</b>")

    def change_kind(change: object) -> None:
        label, high, _ = NOISE_LEVELS[kind.value]
        busy[0] = True
        try:
            level.description = label
            level.value = min(level.value, high)  # before max, so max never cuts a value
            level.max, level.step = high, high / 100
        finally:
            busy[0] = False
        update()

    kind.observe(change_kind, names="value")
    level.observe(update, names="value")
    index.observe(update, names="value")
    update()
    controls = [kind, level] + ([index] if len(x) > 1 else [])
    return widgets.VBox([widgets.HBox(controls), picture, scores])


def traversal_explorer(
    decode: plot.Decode,
    z0: Tensor,
    *,
    dims: Sequence[int] | None = None,
    limit: float = 3.0,
) -> ipywidgets.HBox:
    """One slider per latent dimension -> the decoded image of z0 with those values.

    z0: (D,) or (1, D). dims defaults to the first min(D, 16) dimensions (the others stay at
    z0). Each slider spans [-limit, limit], widened to include z0's value. A button resets
    every slider to z0. Returns an ipywidgets.HBox.
    """
    widgets = _ipywidgets()
    device = z0.device if isinstance(z0, Tensor) else None
    z0 = plot._latent(z0, "z0")
    d = len(z0)
    dims = list(range(min(d, plot.MAX_TRAVERSAL_DIMS))) if dims is None else [int(i) for i in dims]
    if not dims or len(dims) > plot.MAX_TRAVERSAL_DIMS or any(not 0 <= i < d for i in dims):
        raise ValueError(
            f"dims must be 1 to {plot.MAX_TRAVERSAL_DIMS} latent dimensions in [0, {d}), got {dims}"
        )
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit}")
    start = [float(z0[i]) for i in dims]
    sliders = [_slider(widgets, f"z[{i}]", v, min(-limit, v), max(limit, v)) for i, v in zip(dims, start)]
    picture = widgets.Image(format="png")
    reset = widgets.Button(description="reset to z0")
    busy = [False]  # set while reset moves every slider, to redraw once

    def update(change: object = None) -> None:
        if busy[0]:
            return
        z = z0.clone()
        z[dims] = torch.tensor([s.value for s in sliders], dtype=z.dtype)
        picture.value = _image_png(plot._decoded(decode, z[None], device)[0])

    def on_reset(button: object = None) -> None:
        busy[0] = True
        try:
            for slider, value in zip(sliders, start):
                slider.value = value
        finally:
            busy[0] = False
        update()

    for slider in sliders:
        slider.observe(update, names="value")
    reset.on_click(on_reset)
    update()
    return widgets.HBox([widgets.VBox(sliders), widgets.VBox([picture, reset])])


def code_grid_explorer(model: Any, indices: Tensor) -> ipywidgets.VBox:
    """A VQ-VAE's code grid, one cell at a time: choose a cell (row and column sliders)
    and set its code (a slider over the codebook); the decoded grid is redrawn with the
    chosen cell framed.

    model: a VQVAE (its ``decode_indices`` is used). indices: one code grid (h, w) or a
    batch (B, h, w), e.g. ``model.encode(x)``, then with an image slider choosing the
    grid to start from. A button resets the grid to that image's codes.
    Returns an ipywidgets.VBox.
    """
    widgets = _ipywidgets()
    config = getattr(model, "config", None)
    if not hasattr(model, "decode_indices") or not hasattr(config, "codebook_size"):
        raise ValueError(f"expected a VQVAE (decode_indices, config.codebook_size), got {type(model).__name__}")
    indices = plot._tensor(indices, "indices")
    if indices.ndim == 2:
        indices = indices[None]  # (1, h, w)
    g, k = config.grid, config.codebook_size
    if indices.ndim != 3 or indices.shape[1:] != (g, g) or indices.is_floating_point():
        raise ValueError(f"indices must be integer code grids ({g}, {g}) or (B, {g}, {g}), "
                         f"got {indices.dtype} {tuple(indices.shape)}")
    if indices.min() < 0 or indices.max() >= k:
        raise ValueError(f"indices must lie in [0, {k}), got values in "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    starts = indices.long().cpu()
    grid = starts[0].clone()  # (h, w), the grid shown
    decode = plot.image_decoder(model)

    image = widgets.IntSlider(value=0, min=0, max=len(starts) - 1, description="image")
    row = widgets.IntSlider(value=g // 2, min=0, max=g - 1, description="row")
    col = widgets.IntSlider(value=g // 2, min=0, max=g - 1, description="column")
    code = widgets.IntSlider(value=int(grid[g // 2, g // 2]), min=0, max=k - 1, description="code")
    reset = widgets.Button(description="reset to the image's codes")
    picture = widgets.Image(format="png")
    busy = [False]  # set while the code slider follows the chosen cell, to redraw once

    def update(change: object = None) -> None:
        if busy[0]:
            return
        grid[row.value, col.value] = code.value
        decoded = plot._decoded(decode, grid[None])[0]  # (C, H, W)
        pixels = np.repeat(decoded, 3, axis=0) if decoded.shape[0] == 1 else decoded
        # (3, H * SCALE, W * SCALE): enlarged here, to frame the cell in screen pixels
        pixels = pixels.repeat(SCALE, axis=1).repeat(SCALE, axis=2)
        side = pixels.shape[1] // g  # screen pixels per cell
        top, left = row.value * side, col.value * side
        frame = np.zeros(pixels.shape[1:], dtype=bool)
        frame[top : top + side, left : left + side] = True
        frame[top + 2 : top + side - 2, left + 2 : left + side - 2] = False
        pixels[:, frame] = np.array(CELL_COLOUR)[:, None]
        picture.value = _image_png(pixels, scale=1)

    def follow(change: object = None) -> None:
        busy[0] = True
        try:
            code.value = int(grid[row.value, col.value])
        finally:
            busy[0] = False
        update()

    def restart(change: object = None) -> None:
        grid.copy_(starts[image.value])
        follow()

    image.observe(restart, names="value")
    row.observe(follow, names="value")
    col.observe(follow, names="value")
    code.observe(update, names="value")
    reset.on_click(restart)
    update()
    controls = ([image] if len(starts) > 1 else []) + [row, col, code, reset]
    return widgets.VBox([widgets.HBox(controls[:-2]), widgets.HBox(controls[-2:]), picture])


def class_explorer(
    model: Any,
    *,
    classes: Sequence[str] | None = None,
    dims: Sequence[int] | None = None,
    limit: float = 3.0,
    seed: int = 0,
) -> ipywidgets.VBox:
    """A conditional VAE's garment on request: choose the class y (a dropdown), move latent
    sliders or draw a new z ~ N(0, I) (a button); the image decoded from (z, y) is redrawn.
    The same z with another class keeps the style and changes the garment.

    model: a conditional VAE (``config.num_classes > 0``; its ``decode_images(z, y=...)`` is
    used). classes: a name per class (default: Fashion-MNIST's when there are 10, else the
    numbers). dims: the latent dimensions with a slider (default the first min(D, 8)); each
    spans [-limit, limit], widened to include the drawn value. The n-th draw uses a
    generator seeded with ``seed + n``. Returns an ipywidgets.VBox.
    """
    widgets = _ipywidgets()
    from aecourse.data import CLASS_NAMES

    n = getattr(getattr(model, "config", None), "num_classes", 0)
    if not n or not hasattr(model, "decode_images"):
        raise ValueError(
            f"expected a conditional VAE (config.num_classes > 0), got {type(model).__name__}"
            + (" with num_classes=0" if hasattr(model, "config") else "")
        )
    if classes is None:
        classes = CLASS_NAMES if n == len(CLASS_NAMES) else [str(c) for c in range(n)]
    if len(classes) != n:
        raise ValueError(f"expected {n} class names, got {len(classes)}")
    d = model.config.latent_dim
    dims = list(range(min(d, 8))) if dims is None else [int(i) for i in dims]
    if not dims or any(not 0 <= i < d for i in dims) or len(set(dims)) != len(dims):
        raise ValueError(f"dims must be distinct latent dimensions in [0, {d}), got {dims}")
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit}")
    device = next(model.parameters()).device
    draws = [0]  # how many z were drawn
    z = torch.zeros(d)

    label = widgets.Dropdown(options=[(name, c) for c, name in enumerate(classes)], value=0,
                             description="class y")
    sliders = [_slider(widgets, f"z[{i}]", 0.0, -limit, limit) for i in dims]
    redraw = widgets.Button(description="draw a new z")
    picture = widgets.Image(format="png")
    busy = [False]  # set while a new z moves every slider, to redraw once

    def update(change: object = None) -> None:
        if busy[0]:
            return
        z[dims] = torch.tensor([s.value for s in sliders])
        y = torch.tensor([label.value], device=device)
        with torch.no_grad():
            image = model.decode_images(z[None].to(device), y=y)  # (1, C, H, W)
        picture.value = _image_png(image[0].float().cpu().numpy())

    def draw(button: object = None) -> None:
        generator = torch.Generator().manual_seed(seed + draws[0])
        draws[0] += 1
        z.copy_(torch.randn(d, generator=generator))
        busy[0] = True
        try:
            for slider, i in zip(sliders, dims):
                value = float(z[i])
                slider.min, slider.max = min(-limit, value), max(limit, value)
                slider.value = value
        finally:
            busy[0] = False
        update()

    label.observe(update, names="value")
    for slider in sliders:
        slider.observe(update, names="value")
    redraw.on_click(draw)
    draw()
    return widgets.VBox([widgets.HBox([label, redraw]),
                         widgets.HBox([widgets.VBox(sliders), picture])])
