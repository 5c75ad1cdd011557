"""The Sphinx extension that puts the explorers on the site's pages
(book/_ext/aecourse_explorers.py), on small doctrees."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.utils import new_document

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "aecourse_explorers", ROOT / "book" / "_ext" / "aecourse_explorers.py"
)
ext = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ext)


def page(*metadata: dict) -> nodes.document:
    """A doctree with one notebook code cell per metadata dict."""
    document = new_document("page", get_default_settings())
    section = nodes.section()
    document += section
    for meta in metadata:
        cell = nodes.container(nb_element="cell_code", cell_metadata=meta)
        cell += nodes.literal_block("", "widgets.latent_plane_explorer(...)")
        section += cell
    return document


def app(confdir: Path) -> SimpleNamespace:
    return SimpleNamespace(
        confdir=str(confdir), config=SimpleNamespace(explorers_dir="exported")
    )


def test_an_explorer_follows_its_cell(tmp_path: Path) -> None:
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "ae-2d-plane.json").write_text("{}")
    doctree = page({"tags": ["remove-output"]}, {"explorer": "ae-2d-plane"})
    ext.add_explorers(app(tmp_path), doctree)
    section = doctree[0]
    kinds = [type(child).__name__ for child in section.children]
    assert kinds == ["container", "container", "raw"]
    html = section[2].astext()
    assert 'data-explorer="ae-2d-plane"' in html and "<noscript>" in html


def test_an_explorer_that_was_not_exported_is_a_warning(tmp_path: Path, monkeypatch) -> None:
    warnings = []
    monkeypatch.setattr(ext.logger, "warning", lambda msg, **kw: warnings.append(msg))
    doctree = page({"explorer": "no-such-explorer"})
    ext.add_explorers(app(tmp_path), doctree)
    assert len(warnings) == 1 and "no-such-explorer" in warnings[0]
    assert not list(doctree.findall(nodes.raw))


@pytest.mark.parametrize("name", ['x" onload="alert(1)', "<b>"])
def test_names_are_escaped(name: str) -> None:
    html = ext.explorer_html(name)
    assert name not in html
    assert f'data-explorer="{ext.html.escape(name, quote=True)}"' in html
