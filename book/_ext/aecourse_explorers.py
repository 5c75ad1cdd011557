"""The latent explorers on the published pages (loaded through _config.yml).

A notebook code cell that shows an ipywidgets explorer in a live kernel names
the explorer of the static site in its metadata:

    ```{code-cell} ipython3
    :tags: [remove-output]
    :explorer: ae-2d-plane

    widgets.latent_plane_explorer(...)
    ```

After such a cell this extension puts ``<div class="aecourse-explorer"
data-explorer="ae-2d-plane">``, and adds book/_static/explorers.js to that
page only; the script runs the explorer in the reader's browser with
onnxruntime-web. Without JavaScript the div says so, and the page's static
figure stays what the reader sees. In Jupyter and Colab the metadata is
invisible and the cell's widget runs as before.

Each name must have been exported (``python -m aecourse.export DIR``, which
`make book` runs into the folder ``explorers_dir`` names); a missing one is
a warning, so an error of the book build.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

CLASS = "aecourse-explorer"
NO_SCRIPT = (
    "This explorer runs in your browser and needs JavaScript; the figure "
    "after it shows the same as a static picture."
)


def explorer_html(name: str) -> str:
    """The placeholder of one explorer, filled by explorers.js."""
    name = html.escape(name, quote=True)
    return (
        f'<div class="{CLASS}" data-explorer="{name}">'
        f'<noscript><p class="aecourse-explorer-note">{NO_SCRIPT}</p>'
        "</noscript></div>"
    )


def add_explorers(app: Any, doctree: nodes.document) -> None:
    """After every code cell with ``explorer`` metadata, its placeholder."""
    folder = Path(app.confdir) / app.config.explorers_dir
    for cell in list(doctree.findall(nodes.container)):
        if cell.get("nb_element") != "cell_code":
            continue
        name = (cell.get("cell_metadata") or {}).get("explorer")
        if name is None:
            continue
        if not isinstance(name, str) or not (folder / f"{name}.json").is_file():
            logger.warning(
                f"no explorer {name!r} in {folder} (the names that "
                "`python -m aecourse.export` writes; `make book` runs it)",
                location=cell,
            )
            continue
        raw = nodes.raw("", explorer_html(name), format="html")
        cell.parent.insert(cell.parent.index(cell) + 1, raw)


def add_script(
    app: Any, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """explorers.js on the pages that have an explorer, and only there."""
    if doctree is None:
        return
    for raw in doctree.findall(nodes.raw):
        if f'class="{CLASS}"' in raw.astext():
            app.add_js_file("explorers.js", defer="defer")
            return


def setup(app: Any) -> dict[str, Any]:
    # where `python -m aecourse.export` wrote the explorers (confdir-relative)
    app.add_config_value("explorers_dir", "", "env")
    app.connect("doctree-read", add_explorers)
    app.connect("html-page-context", add_script)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
