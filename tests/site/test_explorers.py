"""The latent explorers of the built site, driven in headless Chromium and
compared with the PyTorch models.

For each explorer on a page: move its controls as a reader would (set a
slider, click on the latent map or on a cell of a code grid), wait for the
redraw, read the drawn image back from its canvas (8-bit grey levels) and
compare it with the PyTorch model's output for the same input, computed here
from ``aecourse.load_pretrained``: the largest difference may be TOLERANCE
levels of 255. The latent the test compares with is the one it set (slider
values as the page holds them, the click's position on the map), checked
against the one the page says it drew.

Then the figures of the closing summary: per page with explorers, the bytes
they add (runtime, decoders, data, script) and the time from the explorer's
start to its first decoded image, with a cold browser cache. No figure is
asserted on: speed depends on the machine.

The last test shows that the comparison fails for a wrong exported decoder.
A picture of each explorer, after the moves, is kept in
_build/screenshots/explorers/.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch

from aecourse import plot
from aecourse.export import EXPLORERS, export_onnx
from aecourse.pretrained import load_pretrained

from conftest import serve, site_explorers

# The drawn image against round(255 * PyTorch's image): onnxruntime-web and
# PyTorch differ by float32 rounding (~1e-6), which can move a pixel across
# an 8-bit step (1 level); 2 levels leave room for one more such step.
TOLERANCE = 2  # of 255
TIMEOUT_S = 120  # the longest wait for an explorer to draw
POLL_S = 20  # one wait in the browser (below the driver's script timeout)

# Wait (up to POLL_S) until the explorer `name` has drawn more than `draws`
# images and has no decode running or waiting (or it failed); its state.
WAIT_FOR_DRAW = """
const [name, draws, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const root = document.querySelector(`.aecourse-explorer[data-explorer="${name}"]`);
const deadline = Date.now() + %d;
(function poll() {
  if (!root) { done({error: "no explorer " + name + " on the page"}); return; }
  const d = root.dataset;
  const idle = Number(d.draws || 0) > draws && d.busy !== "1";
  if (d.error || idle || Date.now() > deadline) {
    done({draws: Number(d.draws || 0), error: d.error || null,
          latent: d.latent ? JSON.parse(d.latent) : null,
          start: Number(d.loadStartMs), first: Number(d.firstImageMs),
          done: Boolean(d.error || idle)});
  } else {
    setTimeout(poll, 20);
  }
})();
""" % (1000 * POLL_S)

ROOT = 'document.querySelector(`.aecourse-explorer[data-explorer="${arguments[0]}"]`)'

# Set one of the explorer's inputs (by aria-label) as a reader would, and
# return the value it holds then (a range input snaps to its step).
SET_INPUT = """
const root = %s;
const input = root.querySelector(`[aria-label="${arguments[1]}"]`);
input.value = arguments[2];
input.dispatchEvent(new Event(input.tagName === "SELECT" ? "change" : "input",
                              {bubbles: true}));
return input.value;
""" % ROOT

# The grey levels (R of RGBA) of the explorer's image canvases, one list each.
READ_CANVASES = """
const root = %s;
return Array.from(root.querySelectorAll("canvas.aecourse-image")).map((c) => {
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  return Array.from(data.filter((_, i) => i %% 4 === 0));
});
""" % ROOT


def wait(driver, name: str, draws: int) -> dict:  # noqa: ANN001
    """The explorer's state once it has drawn more than `draws` images and is
    idle, or failed, or after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        state = driver.execute_async_script(WAIT_FOR_DRAW, name, draws)
        if state["done"] or time.monotonic() > deadline:
            return state


def start(driver, server: str, page: str, name: str) -> dict:  # noqa: ANN001
    """Open the page, bring the explorer into view, wait for its first image."""
    from selenium.common.exceptions import TimeoutException

    try:
        driver.get(server + page)
    except TimeoutException:
        # the page's load event is late on a machine under heavy load; what
        # counts here is the explorer's own first image, waited for below
        pass
    deadline = time.monotonic() + TIMEOUT_S
    while not driver.execute_script(f"return {ROOT} !== null", name):
        assert time.monotonic() < deadline, f"no explorer {name} on {page}"
        time.sleep(0.5)
    driver.execute_script(
        f"{ROOT}.scrollIntoView({{block: 'center'}})", name
    )
    state = wait(driver, name, 0)
    assert not state["error"], f"{name} on {page}: {state['error']}"
    assert state["draws"] >= 1, f"{name} on {page}: no image within {TIMEOUT_S} s"
    return state


def redraw(driver, name: str, draws: int) -> dict:  # noqa: ANN001
    state = wait(driver, name, draws)
    assert not state["error"], f"{name}: {state['error']}"
    assert state["draws"] > draws, f"{name}: no redraw within {TIMEOUT_S} s"
    return state


def images(driver, name: str) -> list[np.ndarray]:  # noqa: ANN001
    """The explorer's canvases as 8-bit (H, W) arrays."""
    return [
        np.array(levels, dtype=np.int64).reshape(28, 28)
        for levels in driver.execute_script(READ_CANVASES, name)
    ]


def error_levels(drawn: np.ndarray, expected: torch.Tensor) -> int:
    """Largest difference in 8-bit levels between a drawn (H, W) image and
    the model's image (1, 1, H, W) in [0, 1]."""
    levels = torch.round(255 * expected.clamp(0, 1)).to(torch.int64)
    return int(np.abs(drawn - levels[0, 0].numpy()).max())


def spec_of(site: Path, name: str) -> dict:
    return json.loads((site / "_static" / "explorers" / f"{name}.json").read_text())


def decode(model_name: str, value: torch.Tensor) -> torch.Tensor:
    model = load_pretrained(model_name)
    with torch.no_grad():
        return plot.image_decoder(model)(value)


def click(driver, element, fx: float, fy: float) -> None:  # noqa: ANN001
    """Click at the fractions (fx, fy) of an element's width and height."""
    from selenium.webdriver import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    box = element.rect
    dx = round((fx - 0.5) * box["width"])
    dy = round((fy - 0.5) * box["height"])
    ActionChains(driver).move_to_element_with_offset(element, dx, dy).click().perform()


def drive_plane(driver, site: Path, name: str, state: dict) -> list[int]:  # noqa: ANN001
    """Two slider moves and a click on the map; the error of each redraw."""
    spec, model = spec_of(site, name), EXPLORERS[name].model
    x0, x1, y0, y1 = spec["extent"]
    errors = []
    draws = state["draws"]
    z = [0.0, 0.0]
    for i, (label, low, high) in enumerate([("z[0]", x0, x1), ("z[1]", y0, y1)]):
        z[i] = float(driver.execute_script(SET_INPUT, name, label, low + 0.3 * (high - low)))
        state = redraw(driver, name, draws)
        draws = state["draws"]
    # the slider values as the page holds them are the point drawn
    assert state["latent"] == pytest.approx(z, abs=1e-9)
    errors.append(error_levels(images(driver, name)[0], decode(model, torch.tensor([z]))))

    # a click on the map moves the point there
    latent_map = driver.find_element("css selector", f'[data-explorer="{name}"] canvas.aecourse-map')
    fx, fy = 0.8, 0.25
    click(driver, latent_map, fx, fy)
    state = redraw(driver, name, draws)
    expected = [x0 + fx * (x1 - x0), y0 + (1 - fy) * (y1 - y0)]
    pixel = [(x1 - x0) / latent_map.rect["width"], (y1 - y0) / latent_map.rect["height"]]
    for got, want, step in zip(state["latent"], expected, pixel):
        assert abs(got - want) <= 1.5 * step, (state["latent"], expected)
    drawn = torch.tensor([state["latent"]], dtype=torch.float32)
    errors.append(error_levels(images(driver, name)[0], decode(model, drawn)))
    return errors


def drive_traversal(driver, site: Path, name: str, state: dict) -> list[int]:  # noqa: ANN001
    spec = spec_of(site, name)
    z = list(spec["z0"])
    draws = state["draws"]
    for d, value in zip(spec["dims"][:2], (2.5, -1.7)):
        z[d] = float(driver.execute_script(SET_INPUT, name, f"z[{d}]", value))
        state = redraw(driver, name, draws)
        draws = state["draws"]
    assert state["latent"] == pytest.approx(z, abs=1e-9)
    expected = decode(EXPLORERS[name].model, torch.tensor([z]))
    return [error_levels(images(driver, name)[0], expected)]


def drive_codes(driver, site: Path, name: str, state: dict) -> list[int]:  # noqa: ANN001
    spec = spec_of(site, name)
    grid = [row[:] for row in spec["grids"][0]]
    g = len(grid)
    # choose cell (2, 5) with a click on the image, then set its code
    overlay = driver.find_element("css selector", f'[data-explorer="{name}"] canvas.aecourse-overlay')
    row, col = 2, 5
    click(driver, overlay, (col + 0.5) / g, (row + 0.5) / g)
    code = (grid[row][col] + spec["codebook_size"] // 3) % spec["codebook_size"]
    grid[row][col] = int(driver.execute_script(SET_INPUT, name, "code", code))
    assert grid[row][col] == code
    state = redraw(driver, name, state["draws"])
    assert state["latent"] == grid
    expected = decode(EXPLORERS[name].model, torch.tensor([grid]))
    return [error_levels(images(driver, name)[0], expected)]


def drive_noise(driver, site: Path, name: str, state: dict) -> list[int]:  # noqa: ANN001
    spec = spec_of(site, name)
    model = load_pretrained(EXPLORERS[name].model)
    errors = []
    draws = state["draws"]
    for kind, level, index in (("mask", 0.3, 3), ("gaussian", 0.7, 5)):
        driver.execute_script(SET_INPUT, name, "noise", kind)
        label = spec["levels"][kind][0]
        level = float(driver.execute_script(SET_INPUT, name, label, level))
        index = int(driver.execute_script(SET_INPUT, name, "image", index))
        state = redraw(driver, name, draws)
        draws = state["draws"]
        assert state["latent"] == {"kind": kind, "level": pytest.approx(level), "index": index}
        clean, noisy, denoised = images(driver, name)
        # the clean image is the test image, exactly
        pixels = np.frombuffer(base64.b64decode(spec["images"]), dtype=np.uint8)
        test_x = pixels.reshape(-1, 28, 28)[index]
        assert np.array_equal(clean, test_x)
        if kind == "mask":  # each pixel kept or zeroed
            kept = noisy == clean
            assert np.all(kept | (noisy == 0))
        # the noisy image as drawn is what the DAE saw
        x = torch.from_numpy(noisy).float().div(255)[None, None]
        with torch.no_grad():
            expected = model(x).x_hat
        errors.append(error_levels(denoised, expected))
    return errors


def decode_class(model_name: str, z_y: list[float]) -> torch.Tensor:
    """A conditional VAE's image (1, C, H, W) of the explorer's input: z followed
    by the one-hot label."""
    model = load_pretrained(model_name)
    k = model.config.latent_dim
    z_y = torch.tensor([z_y], dtype=torch.float32)
    with torch.no_grad():
        return model.decode_images(z_y[:, :k], y=z_y[:, k:].argmax(1))


def drive_class(driver, site: Path, name: str, state: dict) -> list[int]:  # noqa: ANN001
    """Choose a class, move a slider, draw a new z; the error of each image."""
    spec, model = spec_of(site, name), EXPLORERS[name].model
    z, n = list(spec["z0"]), len(spec["classes"])
    one_hot = [1.0 if c == 7 else 0.0 for c in range(n)]
    errors = []
    draws = state["draws"]
    assert driver.execute_script(SET_INPUT, name, "class y", "7") == "7"
    state = redraw(driver, name, draws)
    draws = state["draws"]
    z[1] = float(driver.execute_script(SET_INPUT, name, "z[1]", 2.0))
    state = redraw(driver, name, draws)
    draws = state["draws"]
    assert state["latent"] == pytest.approx(z + one_hot, abs=1e-6)
    errors.append(error_levels(images(driver, name)[0], decode_class(model, state["latent"])))
    # a new z, the class kept
    driver.find_element("css selector", f'[data-explorer="{name}"] button').click()
    state = redraw(driver, name, draws)
    k = len(z)
    assert state["latent"][k:] == one_hot and state["latent"][:k] != pytest.approx(z)
    errors.append(error_levels(images(driver, name)[0], decode_class(model, state["latent"])))
    return errors


DRIVERS = {
    "plane": drive_plane, "traversal": drive_traversal,
    "codes": drive_codes, "noise": drive_noise, "class": drive_class,
}


def check_explorer(driver, server: str, site: Path, page: str, name: str) -> list[int]:  # noqa: ANN001
    """Start the explorer, check its first image, move its controls; returns the
    error (levels of 255) of every image compared."""
    state = start(driver, server, page, name)
    spec = spec_of(site, name)
    errors = []
    if spec["kind"] in ("plane", "traversal", "codes"):  # the starting image
        first = {
            "plane": lambda: torch.tensor([spec["start"]]),
            "traversal": lambda: torch.tensor([spec["z0"]]),
            "codes": lambda: torch.tensor(spec["grids"][:1]),
        }[spec["kind"]]()
        errors.append(error_levels(images(driver, name)[0], decode(EXPLORERS[name].model, first)))
    if spec["kind"] == "class":  # z0 with the first class
        first = spec["z0"] + [1.0] + [0.0] * (len(spec["classes"]) - 1)
        errors.append(error_levels(images(driver, name)[0], decode_class(EXPLORERS[name].model, first)))
    return errors + DRIVERS[spec["kind"]](driver, site, name, state)


def test_every_explorer_is_on_a_page(site: Path) -> None:
    on_pages = {name for _, name in site_explorers(site)}
    assert on_pages == set(EXPLORERS), f"explorers missing from the pages: {set(EXPLORERS) - on_pages}"


def test_explorer(explorer, site: Path, server: str, driver, explorer_summary) -> None:  # noqa: ANN001
    page, name = explorer
    errors = check_explorer(driver, server, site, page, name)
    # a picture of the explorer after the moves, beside test_site's screenshots
    shot = site.parent / "screenshots" / "explorers" / f"{name}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    root = driver.find_element("css selector", f'[data-explorer="{name}"]')
    shot.write_bytes(root.screenshot_as_png)
    explorer_summary.append(
        f"{name} on {page}: {len(errors)} images compared with PyTorch, "
        f"largest error {max(errors)}/255 (tolerance {TOLERANCE}/255), "
        f"picture {shot.relative_to(site.parent.parent)}"
    )
    assert max(errors) <= TOLERANCE, f"{name} on {page}: errors {errors} (levels of 255)"


# The explorers' own downloads on a page, from the browser's resource timing.
RESOURCES = """
return performance.getEntriesByType("resource").map(
  (r) => [r.name, r.encodedBodySize, r.decodedBodySize]);
"""


def test_explorer_page_weight(explorer_page: str, site: Path, server: str, driver, explorer_summary) -> None:  # noqa: ANN001
    """Each explorer of the page draws its first image from a cold cache, all
    from the site itself; the bytes they add and the times are reported."""
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    names = [n for p, n in site_explorers(site) if p == explorer_page]
    times = []
    for i, name in enumerate(names):
        if i == 0:
            state = start(driver, server, explorer_page, name)
        else:  # the same page, scrolled on
            driver.execute_script(f"{ROOT}.scrollIntoView({{block: 'center'}})", name)
            state = wait(driver, name, 0)
            assert not state["error"] and state["draws"] >= 1, state
        times.append(f"{name} {state['first'] - state['start']:.0f} ms "
                     f"({state['first']:.0f} ms after navigation)")
    resources = driver.execute_script(RESOURCES)
    # the explorers' runtime, decoders and data come from the site, never a CDN
    # (the page's Colab badge is the one off-site resource, as in test_site)
    offsite = [
        url for url, _, _ in resources
        if not url.startswith(server) and re.search(r"ort[.-]|onnx|explorer", url)
    ]
    assert not offsite, f"explorer files from outside the site: {offsite}"
    paths = [(urlsplit(url).path.lstrip("/"), size) for url, size, _ in resources]
    added = [
        (path, size)
        for path, size in paths
        if path.startswith(("_static/onnxruntime/", "_static/explorers"))
    ]
    total = sum(size for _, size in added)
    zipped = sum(len(gzip.compress((site / path).read_bytes(), 6)) for path, _ in added)
    files = ", ".join(f"{Path(path).name} {size / 1e3:.0f} kB" for path, size in added)
    explorer_summary.append(
        f"{explorer_page}: +{total / 1e6:.2f} MB ({zipped / 1e6:.2f} MB gzipped): {files}; "
        f"first image: {'; '.join(times)}"
    )


def test_the_check_fails_for_a_wrong_decoder(site: Path, driver, tmp_path: Path, explorer_summary) -> None:  # noqa: ANN001
    """A copy of the site whose vae-2d.onnx comes from a slightly wrong
    decoder (the last layer's bias moved by 0.1 logits): the comparison
    above must tell it from the shipped decoder."""
    found = [(p, n) for p, n in site_explorers(site) if n == "vae-2d-plane"]
    assert found, "no page with the vae-2d-plane explorer"
    page, name = found[0]
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    model = load_pretrained("vae-2d")
    with torch.no_grad():
        model.decoder.net[-1].bias += 0.1
    export_onnx(model, copy / "_static" / "explorers" / "vae-2d.onnx")
    with serve(copy) as server:
        errors = check_explorer(driver, server, copy, page, name)
    explorer_summary.append(
        f"{name} with a wrong decoder (bias + 0.1 logits): errors {errors} (levels of 255), "
        f"caught: {max(errors) > TOLERANCE}"
    )
    assert max(errors) > TOLERANCE, f"a wrong decoder passed the check: errors {errors}"
