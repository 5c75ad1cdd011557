"""Fixtures for the checks of the built book: a local web server and headless Chromium.

The browser check runs only when AECOURSE_SITE_DIR names a built site (`make test` and
`make test-site` set it to _build/html), so a plain `pytest tests` never needs one.
CHROME_BIN and CHROMEDRIVER choose the browser and its driver (default: Debian's
/usr/bin/chromium and /usr/bin/chromedriver).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SITE_ENV = "AECOURSE_SITE_DIR"
_SUMMARY: list[str] = []  # one line per page checked, printed at the end of the run
EXPLORER_SUMMARY: list[str] = []  # the explorers' figures, printed after those


def site_dir() -> Path | None:
    """The built site named by AECOURSE_SITE_DIR, or None when the check is not asked for."""
    value = os.environ.get(SITE_ENV)
    return Path(value).resolve() if value else None


def site_pages(root: Path | None) -> list[str]:
    """Every HTML page of the site, skipping Sphinx's asset folders (_static, _sources...)."""
    if root is None or not root.is_dir():
        return []
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if not p.relative_to(root).parts[0].startswith("_")
    )


EXPLORER = re.compile(r'<div class="aecourse-explorer" data-explorer="([^"]+)"')


def site_explorers(root: Path | None) -> list[tuple[str, str]]:
    """(page, explorer name) of every explorer placeholder on the site's pages."""
    return [
        (page, name)
        for page in site_pages(root)
        for name in EXPLORER.findall((root / page).read_text(encoding="utf-8"))
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize a test that takes `page` over every page of the built site, one that
    takes `explorer` over every (page, explorer name), one that takes `explorer_page`
    over every page with an explorer."""
    root = site_dir()
    if "page" in metafunc.fixturenames:
        metafunc.parametrize("page", site_pages(root))
    if "explorer" in metafunc.fixturenames:
        found = site_explorers(root)
        metafunc.parametrize("explorer", found, ids=[f"{p}:{n}" for p, n in found])
    if "explorer_page" in metafunc.fixturenames:
        metafunc.parametrize("explorer_page", sorted({p for p, _ in site_explorers(root)}))


@pytest.fixture(scope="session")
def summary() -> list[str]:
    """Lines that a test appends here are printed in pytest's closing summary."""
    return _SUMMARY


@pytest.fixture(scope="session")
def explorer_summary() -> list[str]:
    """The explorers' figures (bytes, times, errors), printed in the closing summary."""
    return EXPLORER_SUMMARY


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A browser that leaves a page mid-download (a test moving on while the
        explorers' runtime loads) closes its connection: not an error of the site."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def site() -> Path:
    path = site_dir()
    if path is None:
        pytest.skip(f"the browser check runs with {SITE_ENV} set (make test-site)")
    if not (path / "index.html").is_file():
        pytest.fail(f"{SITE_ENV}={path} has no index.html: build the book first (make book)")
    return path


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve a folder on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def server(site: Path) -> Iterator[str]:
    """Serve the site on 127.0.0.1 at a free port; yields the base URL."""
    with serve(site) as url:
        yield url


@pytest.fixture(scope="session")
def driver(site: Path) -> Iterator[object]:
    """Headless Chromium through chromedriver, with the browser console log enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
    chromedriver = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
    for name, path in (("CHROME_BIN", chrome), ("CHROMEDRIVER", chromedriver)):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} not found: install Debian's chromium and chromium-driver, or set {name}")

    profile = tempfile.TemporaryDirectory(prefix="aecourse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1280,900",
        f"--user-data-dir={profile.name}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager is never asked to download anything.
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    browser.set_page_load_timeout(60)
    browser.set_script_timeout(60)
    yield browser
    browser.quit()
    profile.cleanup()


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if _SUMMARY:
        terminalreporter.section("pages checked in Chromium")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
    if EXPLORER_SUMMARY:
        terminalreporter.section("explorers in Chromium (page weight, time to first image)")
        for line in EXPLORER_SUMMARY:
            terminalreporter.write_line(line)
