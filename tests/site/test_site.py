"""The built book in a real browser: every page loads without a console error, its internal
links and images resolve, and its maths is typeset by MathJax (the local copy, offline).

A full-page screenshot of each page is saved under _build/screenshots/ (beside the site).
Run by `make test` after the book build, or alone with `make test-site`.
"""

from __future__ import annotations

import base64
import html.parser
import functools
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

# Raw TeX that MathJax would have replaced, had it run.
RAW_TEX = ("$$", "\\begin{", "\\[", "\\(")
MAX_SCREENSHOT_HEIGHT = 16000  # px; longer pages are cut there
WINDOW_WIDTH = 1280  # px, as in the browser's --window-size

WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const deadline = Date.now() + 45000;
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("typeset"), (e) => done("MathJax failed: " + e));
  } else if (!document.querySelector(".math")) {
    done("no maths");
  } else if (Date.now() > deadline) {
    done("MathJax never started");
  } else {
    setTimeout(poll, 100);
  }
})();
"""

WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
window.scrollTo(0, document.body.scrollHeight);
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => {
  window.scrollTo(0, 0);
  done(images.filter((img) => img.getAttribute("src"))
             .map((img) => [img.currentSrc || img.src, img.complete && img.naturalWidth > 0]));
});
"""

PAGE_FACTS = """
const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const texts = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (!node.parentElement.closest(skip)) texts.push(node.nodeValue);
}
const maths = Array.from(document.querySelectorAll(".math"));
return {
  title: document.title,
  text: texts.join(" "),
  links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.href),
  maths: maths.length,
  untypeset: maths.filter((m) => !m.querySelector("mjx-container"))
                  .map((m) => m.textContent.trim().slice(0, 80)),
};
"""

# Code blocks and cell outputs that scroll sideways at the window's width: the reader would
# see them cut at the right edge. Each as [overflow in px, its longest line].
OVERFLOWING_BLOCKS = """
return Array.from(document.querySelectorAll("article pre"))
  .filter((pre) => pre.scrollWidth > pre.clientWidth + 1)
  .map((pre) => [pre.scrollWidth - pre.clientWidth,
                 pre.textContent.split("\\n").reduce((a, b) => (b.length > a.length ? b : a), "")]);
"""


class _Anchors(html.parser.HTMLParser):
    """Collects the ids (and <a name>s) of one HTML file: the targets of #fragments."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value and (key == "id" or (key == "name" and tag == "a")):
                self.ids.add(value)


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def _offline_miss(message: str) -> bool:
    """A console message saying a host could not be resolved (no network here)."""
    return "Failed to load resource: net::ERR_NAME_NOT_RESOLVED" in message


def _broken_links(links: list[str], base: str, site: Path) -> list[str]:
    """Links into the site whose file, or #anchor in that file, does not exist."""
    broken = []
    for link in links:
        if not link.startswith(base):
            continue  # external: Colab, Binder, GitHub, arXiv...
        parts = urlsplit(link)
        rel = unquote(parts.path)[len(urlsplit(base).path):]
        target = site / rel
        if rel == "" or rel.endswith("/"):
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{link} (no file {target.relative_to(site)})")
        elif parts.fragment and target.suffix == ".html":
            if unquote(parts.fragment) not in _anchors(target):
                broken.append(f"{link} (no #{unquote(parts.fragment)} in {target.relative_to(site)})")
    return broken


def _screenshot(driver, path: Path) -> None:  # noqa: ANN001
    """Full-page PNG: the viewport is stretched to the page's height for one capture."""
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"
    )
    metrics = {"width": WINDOW_WIDTH, "height": min(height, MAX_SCREENSHOT_HEIGHT),
               "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def test_site_has_pages(site: Path) -> None:
    pages = sorted(p.name for p in site.rglob("*.html"))
    assert "index.html" in pages and len(pages) > 3, f"no book pages under {site}: {pages}"


# Sphinx's redirect page (the site's index.html): <meta http-equiv="Refresh" content="0; url=...">
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="\d+; url=([^"]+)"', re.IGNORECASE)


def test_page(page: str, site: Path, server: str, driver, summary: list[str]) -> None:  # noqa: ANN001
    driver.get_log("browser")  # drop what earlier pages left in the log
    driver.get(server + page)
    target = REDIRECT.search((site / page).read_text(encoding="utf-8"))
    if target is not None:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        # Wait until the browser has left the redirect page: its DOM is torn down by the
        # navigation. The target is a page of the site, checked by its own test.
        relative = str(Path(page).parent / target.group(1)).removeprefix("./")
        assert (site / relative).is_file(), f"{page} redirects to {relative}, not a file of the site"
        expected = server + relative
        try:
            WebDriverWait(driver, 30).until(expected_conditions.url_to_be(expected))
        except TimeoutException:
            pytest.fail(f"{page} should redirect to {expected}, stayed at {driver.current_url}")
        summary.append(f"ok   {page}: redirects to {expected}")
        return
    mathjax = driver.execute_async_script(WAIT_FOR_MATHJAX)
    images = driver.execute_async_script(WAIT_FOR_IMAGES)
    facts = driver.execute_script(PAGE_FACTS)
    shot = site.parent / "screenshots" / Path(page).with_suffix(".png")
    _screenshot(driver, shot)
    console = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    # The check runs offline: an off-site resource (the Colab badge) cannot resolve here.
    # Only that is forgiven; every error of the site's own pages and scripts counts.
    console = [m for m in console if not (_offline_miss(m) and not m.startswith(server))]
    images = [(src, ok) for src, ok in images if src.startswith(server) or not src.startswith("http")]

    problems = [f"console error: {m}" for m in console]
    if mathjax.startswith("MathJax"):
        problems.append(mathjax)
    if facts["untypeset"]:
        shown = ", ".join(repr(m) for m in facts["untypeset"][:3])
        problems.append(f"{len(facts['untypeset'])} of {facts['maths']} maths not typeset: {shown}...")
    problems += [f"raw TeX {tex!r} in the page text" for tex in RAW_TEX if tex in facts["text"]]
    problems += [f"image did not load: {src}" for src, ok in images if not ok]
    problems += [f"broken link: {b}" for b in _broken_links(facts["links"], server, site)]
    problems += [
        f"code or output {px} px wider than the column ({len(line)} characters): {line.strip()[:60]!r}"
        for px, line in driver.execute_script(OVERFLOWING_BLOCKS)
    ]
    problems += [
        f"Colab link to a file Colab cannot open: {link}"
        for link in facts["links"]
        if "colab.research.google.com/github/" in link and not urlsplit(link).path.endswith(".ipynb")
    ]

    summary.append(
        f"{'FAIL' if problems else 'ok  '} {page}: {facts['title'].split(' — ')[0]!r}, {len(facts['links'])} links, "
        f"{len(images)} images, {facts['maths']} maths ({mathjax}), screenshot {shot.relative_to(site.parent.parent)}"
    )
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def test_overflow_check_fails_on_a_wide_code_block(server: str, driver) -> None:  # noqa: ANN001
    """The overflow check above can fail: a 200-character line in a page's article."""
    wide = "x = " + "1 + " * 49 + "1"
    page = f"<html><body><article><pre>{wide}</pre><pre>ok</pre></article></body></html>"
    driver.get("data:text/html;charset=utf-8," + quote(page))
    blocks = driver.execute_script(OVERFLOWING_BLOCKS)
    assert [line for _, line in blocks] == [wide]
