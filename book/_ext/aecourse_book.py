"""Sphinx additions local to the aecourse book (loaded through _config.yml's local_extensions).

1. A bibliography style, `authoryear`: pybtex's `plain` with labels such as
   "Kingma and Welling 2013", so that the bibliography matches the author-year citations
   in the text (`bibtex_reference_style: author_year`).

2. Launch buttons (Colab, Binder) only on notebook pages, an .ipynb or a MyST source
   paired with the .ipynb beside it (the theme then links the .ipynb): on a text page
   they would send Colab a .md file it cannot open. In the student edition
   (`aecourse_student_notebooks` set, scripts/build_student.py) they open the page's
   student notebook in that folder instead, and pages without one get none.

3. Sphinx 7 writes an inline script twice when an extension adds it after the builder
started (sphinx-doc/sphinx#13402, fixed in Sphinx 8.2): sphinx-thebe's
`const THEBE_JS_URL = ...` then appears twice on every page, and the second copy is a
JavaScript error ("Identifier 'THEBE_JS_URL' has already been declared").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Surname YEAR", "A and B YEAR" or "A et al. YEAR"; a, b... tell equal ones apart."""

    def format_labels(self, sorted_entries: list) -> Iterator[str]:
        labels = [self._label(entry) for entry in sorted_entries]
        repeated, seen = Counter(labels), Counter()
        for label in labels:
            if repeated[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label

    @staticmethod
    def _label(entry: Any) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.prelast_names + p.last_names).replace("{", "").replace("}", "") for p in people]
        if len(names) > 2:
            who = f"{names[0]} et al."
        else:
            who = " and ".join(names) or entry.key
        return f"{who} {entry.fields.get('year', '')}".strip()


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabels


register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def drop_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep the first of several identical <script> entries of a page."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _is_notebook_page(app: Any, pagename: str, context: dict) -> bool:
    """An .ipynb page, or a MyST page with its paired .ipynb beside the source."""
    if context.get("page_source_suffix") == ".ipynb":
        return True
    return Path(app.env.doc2path(pagename)).with_suffix(".ipynb").is_file()


def drop_launch_buttons_off_notebooks(
    app: Any, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """Remove the theme's launch-button group from pages that are not notebooks."""
    buttons = context.get("header_buttons")
    if isinstance(buttons, list) and not _is_notebook_page(app, pagename, context):
        buttons[:] = [b for b in buttons if b.get("label") != "launch-buttons"]


def student_launch_url(url: str, pagename: str, student: str) -> str:
    """A launch URL of the page `pagename` (its .ipynb or .md, as the theme wrote it)
    pointed at the student notebook `student` (a path from the repository root)."""
    page = re.escape(pagename) + r"\.(?:ipynb|md)"
    new, count = re.subn(rf"(?<=[/=]){page}(?=$|[?&#])", student, url)
    if count != 1:
        raise ValueError(f"launch URL {url!r} does not name the page {pagename!r} once")
    return new


def student_launch_buttons(
    app: Any, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    """In the student edition: launch buttons open the page's student notebook."""
    folder = app.config.aecourse_student_notebooks
    buttons = context.get("header_buttons")
    if not folder or not isinstance(buttons, list):
        return
    folder = PurePosixPath(folder.strip("/"))
    page = PurePosixPath(pagename)
    # notebooks/NN_name -> notebooks/student/NN_name.ipynb; other pages have none
    student = f"{folder / page.name}.ipynb"
    if page.parent != folder.parent or not (Path(app.srcdir) / student).is_file():
        buttons[:] = [b for b in buttons if b.get("label") != "launch-buttons"]
        return
    for group in buttons:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("url"):
                button["url"] = student_launch_url(button["url"], pagename, student)


def setup(app: Any) -> dict[str, Any]:
    # the folder of the student notebooks; empty (the main edition): launch buttons
    # open the page's own notebook
    app.add_config_value("aecourse_student_notebooks", "", "html")
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    # both after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", student_launch_buttons, priority=800)
    app.connect("html-page-context", drop_launch_buttons_off_notebooks, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
