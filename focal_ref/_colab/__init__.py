"""The Colab editions of the book's notebooks: one source (``book/``), two faithful renderings.

Jupyter Book (MyST-NB) renders the committed, executed notebooks of ``book/``; Colab shows a notebook as
it is, so it would show MyST markup as raw text and none of the figures (they are glued with
``display=False``). :func:`build` writes, for every ``book/<path>.ipynb``, a Colab edition
``colab/<path>.ipynb`` made only from that notebook, its stored outputs and the package source:

- ``{glue:text}`key:fmt``, ``{glue:md}`` and ``{glue}`` roles and directives are replaced by the glued
  value, formatted as MyST-NB formats it (the stored ``application/papermill.record/*`` outputs);
- a ``{glue:figure}`` block becomes its caption in Markdown ("**Fig. N** ...", numbered through the book
  in the table of contents' order, as the site numbers it); the figure itself is an ``image/png`` output
  of the code cell that glued it (what that cell shows when it runs in Colab: ``focal_ref.notebook.glue``
  displays figures when MyST-NB is absent). Other glue records are dropped;
- ``literalinclude`` (with ``:pyobject:``, found with :mod:`ast`, and ``:lines:``) becomes a code block;
- ``tab-set``/``tab-item`` become headed sections; admonitions and other directives become quotes;
- ``{doc}`` links open the sibling Colab edition (or the rendered page, for a page that is not a notebook),
  ``{ref}``/``{numref}`` link to the rendered page's anchor. The site is ``html.baseurl`` of
  ``_config.yml`` when set, else the GitHub Pages address of its ``repository.url``
  (``https://github.com/ORG/REPO`` -> ``https://ORG.github.io/REPO/``);
- code cells hidden in the book (``remove-input``, ``remove-cell``, ``hide-input``, ``hide-cell``) and the
  install cell stay (they must run) but open collapsed (Colab's ``cellView: form`` with a ``# @title``).

The output is deterministic (sorted JSON, as nbformat writes it). ``scripts/make_colab.py`` runs it;
``tests/test_colab.py`` checks that the committed editions equal a fresh generation. :func:`setup` is a
Sphinx extension that points the book's Colab launch buttons at these editions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .markdown import RECORD, Page, Site, _lines, _text, glue_records, render_markdown

_PATH_LITERAL = re.compile(r"""["']([\w.-]+(?:/[\w.-]+)*\.\w+)["']""")  # a quoted relative file name
HIDDEN_TAGS = ("remove-input", "remove-cell", "hide-input", "hide-cell")
NO_OUTPUT_TAGS = ("remove-output", "remove-cell")


# ----------------------------------------------------------------------------------------------
# notebooks


def _titled(source: str, figures: list[str]) -> str:
    """The source with a Colab form title (shown while the cell is collapsed) above it, unchanged.

    The title is the cell's leading comment (its first line when that ends a sentence, else the comment
    joined and cut to about 100 characters), else what the cell does: draw a figure, record values.
    """
    if re.match(r"^#\s*@title", source):
        return source
    lines = source.splitlines()
    comment = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    if comment and re.search(r"[.!?)]$", comment[0]):
        title = comment[0]
    elif comment:
        title = " ".join(comment)
        title = title if len(title) <= 100 else title[: title.rfind(" ", 0, 97)] + " …"
    elif figures:
        title = f"Draw {' and '.join(figures)} (code hidden on the rendered page)"
    elif all(line.startswith("glue") for line in lines if line.strip()):
        title = "Record the values the text quotes (hidden on the rendered page)"
    else:
        title = "Helper code (hidden on the rendered page)"
    return f"# @title {title}\n{source}"


def _code_cell(cell: dict, page: Page, index: int) -> dict:
    tags = cell.get("metadata", {}).get("tags", [])
    source = _text(cell)
    metadata = {k: v for k, v in cell.get("metadata", {}).items() if k not in ("execution", "collapsed")}
    figures = [n for n, (at, data, _) in page.records.items() if at == index and "image/png" in data]
    install = index == 0 and "FOCAL_REF_SOURCE" in source  # the install cell (book/_install_cell.py)
    if install or any(t in tags for t in HIDDEN_TAGS):
        metadata["cellView"] = "form"
        source = _titled(source, [page.figure_numbers.get(name, "the figure below") for name in figures])
    outputs = []
    for output in cell.get("outputs", []):
        scrap = output.get("metadata", {}).get("scrapbook")
        if scrap:
            if scrap["name"] in figures:  # shown by the fallback glue when the cell runs in Colab
                data = {k.removeprefix(RECORD): v for k, v in output["data"].items()}
                outputs.append({"output_type": "display_data", "metadata": {}, "data": data})
            elif not any(k.startswith(RECORD) for k in output["data"]):  # glued with display=True
                outputs.append({**output, "metadata": {}})
        elif not any(t in tags for t in NO_OUTPUT_TAGS):
            outputs.append(output)
    return {**cell, "metadata": metadata, "source": _lines(source), "outputs": outputs}


def _data_cell(site: Site, path: Path, sources: list[str]) -> dict | None:
    """A hidden cell that fetches the data files the page reads from beside it (``results/x.json``).

    Colab opens a notebook alone, without the folder it sits in. Such a file is found as a string literal
    in a code cell naming an existing file of the notebook's folder. It is fetched from the repository
    (``FOCAL_REF_DATA``, the URL of ``book/``, overrides the source, as ``FOCAL_REF_SOURCE`` does for pip).
    """
    folder = path.parent
    names = sorted(
        {name for source in sources for name in _PATH_LITERAL.findall(source) if (folder / name).is_file()}
    )
    if not names:
        return None
    where = folder.relative_to(site.root / "book").as_posix()
    prefix = "" if where == "." else where + "/"
    code = f"""# @title Fetch the stored results this page reads (Colab opens a notebook without its folder)
import os, urllib.request

base = os.environ.get("FOCAL_REF_DATA", "{site.raw_url}book/")
for path in {names!r}:
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        urllib.request.urlretrieve(base + "{prefix}" + path, path)
"""
    metadata = {"cellView": "form", "tags": ["colab-data"]}
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": "colab-data",
        "metadata": metadata,
        "outputs": [],
        "source": _lines(code),
    }


def convert(site: Site, path: Path) -> dict:
    """The Colab edition of one book notebook, as a notebook dict."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    page = Page(site, path, glue_records(nb))
    markdown = "\n".join(_text(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    first = site.first_figure.get(page.doc, 1)
    for number, name in enumerate(re.findall(r"\{glue:figure\}[ \t]*(\S+)", markdown), start=first):
        page.figure_numbers[name] = f"Fig. {number}"
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            cells.append(_code_cell(cell, page, index))
        elif cell["cell_type"] == "markdown":
            text = render_markdown(page, _text(cell))
            if text:
                ids = {"id": cell["id"]} if "id" in cell else {}
                cells.append({"cell_type": "markdown", **ids, "metadata": {}, "source": _lines(text)})
        else:
            cells.append(cell)
    data = _data_cell(site, path, [_text(c) for c in nb["cells"] if c["cell_type"] == "code"])
    if data:  # right after the install cell
        first = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
        cells.insert(first + 1, data)
    missing = [n for n, (_, data, _) in page.records.items() if "image/png" in data and n not in page.figures]
    if missing:
        raise ValueError(f"{page.doc}: figures glued but never placed with glue:figure: {missing}")
    banner = (
        f"\n\n> *Colab edition of [this page of the book]({site.page(page.doc)}), generated from "
        f"`{page.doc}.ipynb` by `scripts/make_colab.py`. Run the cells in order (Runtime → Run all); "
        "the first one installs `focal_ref`.*"
    )
    for cell in cells:
        if cell["cell_type"] == "markdown" and "".join(cell["source"]).startswith("# "):
            cell["source"] = _lines("".join(cell["source"]) + banner)
            break
    metadata = {k: nb["metadata"][k] for k in ("kernelspec", "language_info") if k in nb["metadata"]}
    metadata["colab"] = {"provenance": [], "toc_visible": True}
    return {
        "cells": cells,
        "metadata": metadata,
        "nbformat": 4,
        "nbformat_minor": nb.get("nbformat_minor", 5),
    }


def dumps(nb: dict) -> str:
    """A notebook as nbformat writes it (sorted keys, one-space indent, a final newline)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


class EditionError(ValueError):
    """Some notebooks could not be converted (a glue key, a figure or an included object is missing)."""


def editions(root: Path, errors: list[str] | None = None) -> dict[Path, str]:
    """Every Colab edition's path (under ``colab/``) and text, generated from ``book/``.

    A notebook that cannot be converted raises :class:`EditionError`, or, when ``errors`` is a list, is
    left out and described there.
    """
    site = Site.from_config(root)
    out = {}
    for path in sorted((root / "book").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or path.name.startswith("_"):
            continue
        try:
            out[root / "colab" / path.relative_to(root / "book")] = dumps(convert(site, path))
        except (KeyError, ValueError, OSError) as exc:
            if errors is None:
                raise EditionError(f"{path.relative_to(root)}: {exc}") from exc
            errors.append(f"{path.relative_to(root)}: {exc}")
    return out


def build(root: Path, check: bool = False) -> list[Path]:
    """Write ``colab/`` (removing stale editions); with ``check``, only list the editions that differ.

    Every notebook that can be converted is written; then :class:`EditionError` lists those that could not
    (their old editions are kept).
    """
    errors: list[str] = []
    wanted = editions(root, errors)
    failed = {root / "colab" / Path(e.split(":", 1)[0]).relative_to("book") for e in errors}
    stale = [p for p in sorted((root / "colab").rglob("*.ipynb")) if p not in wanted and p not in failed]
    changed = [p for p, text in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if not check:
        for path in changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted[path], encoding="utf-8")
        for path in stale:
            path.unlink()
    if errors:
        raise EditionError("cannot write these Colab editions:\n" + "\n".join(errors))
    return changed + stale


# ----------------------------------------------------------------------------------------------
# Sphinx: the Colab launch button opens the edition


def colab_launch_url(url: str) -> str:
    """A launch URL of ``.../blob/<branch>/book/<path>.ipynb`` -> ``.../blob/<branch>/colab/<path>.ipynb``."""
    return re.sub(r"(/github/[^/]+/[^/]+/blob/[^/]+/)book/", r"\1colab/", url, count=1)


def _point_launch_buttons(app, pagename, templatename, context, doctree) -> None:
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if group.get("label") == "launch-buttons" else []:
            if button.get("text") == "Colab" and "url" in button:
                button["url"] = colab_launch_url(button["url"])


def setup(app) -> dict:
    """A Sphinx extension (``focal_ref._colab`` in ``_config.yml``): Colab buttons open ``colab/``."""
    app.connect("html-page-context", _point_launch_buttons, priority=900)  # after sphinx-book-theme's 501
    return {"parallel_read_safe": True, "parallel_write_safe": True}
