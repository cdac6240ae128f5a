"""MyST Markdown as Colab Markdown: glued values, captions, included code and links (see the package)."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .include import literalinclude

RECORD = "application/papermill.record/"
# Directives shown as a quote headed by their title (or name).
ADMONITIONS = set(
    "note tip hint important warning caution attention danger error seealso admonition dropdown margin "
    "sidebar topic epigraph card".split()
)
_DIRECTIVE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_ROLE = re.compile(r"(?<![\\\w])\{(?P<name>[a-z][\w:-]*)\}(?P<ticks>`+)(?P<body>.+?)(?P=ticks)", re.S)
_ROLE_OR_CODE = re.compile(_ROLE.pattern + r"|(?P<code>(?P<open>`+)[^`].*?(?P=open))", re.S)
_TARGET = re.compile(r"^\(([\w:.-]+)\)=[ \t]*$", re.M)
_TITLED = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)


@dataclass
class Site:
    """Where the rendered book and the repository live, and the labels every page defines."""

    root: Path
    site_url: str
    colab_url: str
    raw_url: str = ""  # the repository's files, https://raw.githubusercontent.com/ORG/REPO/BRANCH/
    titles: dict[str, str] = field(default_factory=dict)  # docname (book/01_x) -> page title
    notebooks: set[str] = field(default_factory=set)  # docnames that are notebooks
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (docname, link text)
    figures: dict[str, list[str]] = field(default_factory=dict)  # docname -> its figures' labels, in order
    first_figure: dict[str, int] = field(default_factory=dict)  # docname -> number of its first figure

    @classmethod
    def from_config(cls, root: Path) -> Site:
        import yaml

        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        repo = config["repository"]
        org, name = repo["url"].rstrip("/").removesuffix(".git").split("/")[-2:]
        site_url = (config.get("html", {}).get("baseurl") or f"https://{org}.github.io/{name}/").rstrip("/")
        colab = config.get("launch_buttons", {}).get("colab_url", "https://colab.research.google.com")
        colab_url = f"{colab.rstrip('/')}/github/{org}/{name}/blob/{repo.get('branch', 'main')}/colab"
        raw_url = f"https://raw.githubusercontent.com/{org}/{name}/{repo.get('branch', 'main')}/"
        site = cls(root, site_url + "/", colab_url + "/", raw_url)
        for path in sorted((root / "book").rglob("*")):
            if path.suffix in (".ipynb", ".md") and ".ipynb_checkpoints" not in path.parts:
                site._index(path)
        site._number_figures(root / "_toc.yml")
        return site

    def _number_figures(self, toc_path: Path) -> None:
        """Figures are numbered through the book in the table of contents' order, as Sphinx does
        ("Fig. 3" is the third figure of the book); a page outside the table counts from 1."""
        import yaml

        def files(node) -> list[str]:
            if isinstance(node, dict):
                own = [node["file"]] if "file" in node else []
                own += [node["root"]] if "root" in node else []
                return own + [
                    f for key, value in node.items() if key not in ("file", "root") for f in files(value)
                ]
            return [f for item in node for f in files(item)] if isinstance(node, list) else []

        order = files(yaml.safe_load(toc_path.read_text(encoding="utf-8"))) if toc_path.exists() else []
        count = 0
        for doc in [d.removesuffix(".ipynb").removesuffix(".md") for d in order]:
            if doc in self.figures:
                self.first_figure[doc] = count + 1
                count += len(self.figures[doc])
        for doc, names in self.figures.items():
            for number, label in enumerate(names, start=self.first_figure.get(doc, 1)):
                if label:
                    self.labels.setdefault(label, (doc, f"Fig. {number}"))

    def _index(self, path: Path) -> None:
        doc = path.relative_to(self.root).with_suffix("").as_posix()
        if path.suffix == ".ipynb":
            self.notebooks.add(doc)
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            text = "\n\n".join(_text(c) for c in cells if c["cell_type"] == "markdown")
        else:
            text = path.read_text(encoding="utf-8")
        heading = re.search(r"^# +(.+)$", text, re.M)
        self.titles[doc] = heading.group(1).strip() if heading else doc
        for match in _TARGET.finditer(text):
            after = re.search(r"^#+ +(.+)$", text[match.end() :], re.M)
            self.labels[match.group(1)] = (doc, after.group(1).strip() if after else match.group(1))
        blocks = re.finditer(
            r"^ {0,3}(?:`{3,}|:{3,})\{(?:glue:figure|figure)\}.*\n((?:[ \t]*:[\w-]+:.*\n)*)", text, re.M
        )
        self.figures[doc] = [
            (re.findall(r":name: *([\w:.-]+)", block.group(1)) or [""])[0] for block in blocks
        ]

    def page(self, doc: str) -> str:
        return f"{self.site_url}{doc}.html"

    def doc_link(self, doc: str) -> str:
        """The Colab edition of a notebook page, the rendered page for any other page."""
        if doc in self.notebooks:
            return self.colab_url + Path(doc).relative_to("book").as_posix() + ".ipynb"
        return self.page(doc)


def _text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


# ----------------------------------------------------------------------------------------------
# glue records


def glue_records(nb: dict) -> dict[str, tuple[int, dict, bool]]:
    """name -> (index of the code cell, mime bundle without the record prefix, whether it was displayed)."""
    records = {}
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if output.get("output_type") == "display_data" and scrap:
                data = {k.removeprefix(RECORD): v for k, v in output["data"].items()}
                shown = not any(k.startswith(RECORD) for k in output["data"])
                records[scrap["name"]] = (index, data, shown)
    return records


def format_plain_text(text: str, spec: str) -> str:
    """MyST-NB's formatting of a glued ``text/plain`` value (``myst_nb.core.variables``)."""
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = text
    if spec == "":
        return str(value)
    kind = spec[-1]
    if kind == "s":
        value = str(value)
    elif kind in "bcdoxX":
        value = int(value)
    elif kind in "eEfFgGn%":
        value = float(value)
    return format(value, spec)


def _inline(data: dict) -> str:
    """A glued value pasted into running text, by MyST-NB's render priority."""
    if "text/markdown" in data:
        return "".join(data["text/markdown"]).strip()
    if "text/latex" in data:
        return "".join(data["text/latex"]).strip()
    if "image/png" in data:
        return f"![](data:image/png;base64,{''.join(data['image/png']).strip()})"
    if "text/html" in data:
        return "".join(data["text/html"]).strip()
    return format_plain_text("".join(data.get("text/plain", "")), "")


# ----------------------------------------------------------------------------------------------
# Markdown


@dataclass
class Page:
    """One notebook being converted: its path, its glue records and what has been placed so far."""

    site: Site
    path: Path
    records: dict[str, tuple[int, dict, bool]]
    figures: list[str] = field(default_factory=list)
    figure_numbers: dict[str, str] = field(default_factory=dict)  # glue key -> "Fig. N"
    heading: int = 1

    @property
    def doc(self) -> str:
        return self.path.relative_to(self.site.root).with_suffix("").as_posix()

    def record(self, key: str) -> dict:
        if "::" in key:  # a value glued in another notebook: path relative to this page
            other, key = key.split("::", 1)
            target = (self.path.parent / other).with_suffix(".ipynb")
            records = glue_records(json.loads(target.read_text(encoding="utf-8")))
        else:
            records = self.records
        if key not in records:
            raise KeyError(f"{self.doc}: nothing is glued as {key!r}")
        return records[key][1]

    def resolve(self, target: str) -> str:
        """A ``{doc}`` target (relative or absolute docname) as a docname such as ``book/02_x``."""
        if target.startswith("/"):
            return target.strip("/")
        base = self.path.relative_to(self.site.root).parent
        parts: list[str] = []
        for part in (base / target).as_posix().split("/"):
            if part == "..":
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        return "/".join(parts).removesuffix(".ipynb").removesuffix(".md")


def render_role(page: Page, name: str, body: str) -> str:
    site = page.site
    if name in ("glue:text", "glue:md", "glue", "glue:any"):
        key, _, spec = body.rpartition(":") if name == "glue:text" and ":" in body else (body, "", "")
        if name == "glue:md":
            key = body.rsplit(":", 1)[0] if body.endswith((":myst", ":commonmark", ":gfm")) else body
            return "".join(page.record(key)["text/markdown"]).strip()
        if name == "glue:text":
            return format_plain_text("".join(page.record(key)["text/plain"]), spec)
        return _inline(page.record(body))
    titled = _TITLED.match(body)
    text, target = (
        (" ".join(titled.group("text").split()), titled.group("target")) if titled else (None, body)
    )
    if name == "doc":
        doc = page.resolve(target)
        return f"[{text or site.titles.get(doc, doc)}]({site.doc_link(doc)})"
    if name in ("ref", "numref"):
        doc, label_text = site.labels.get(target, (page.doc, target))
        if name == "numref" and text:
            label_text = text.replace("%s", label_text.split()[-1]).replace(
                "{number}", label_text.split()[-1]
            )
        elif text:
            label_text = text
        return f"[{label_text}]({site.page(doc)}#{target})"
    if name == "math":
        return f"${body}$"
    if name in ("sub", "sup", "kbd"):
        return f"<{name}>{body}</{name}>"
    if name == "download":
        doc_dir = page.path.relative_to(site.root).parent
        return f"[{text or target}]({site.page((doc_dir / target).as_posix()).removesuffix('.html')})"
    if name == "eq":
        return f"[({body})]({site.page(page.doc)}#equation-{body})"
    return text if text is not None else body  # {term}, {abbr}, {guilabel}, ...


def render_roles(page: Page, text: str) -> str:
    """Every role outside inline code replaced (a code span is matched first, and kept as it is)."""

    def one(match: re.Match) -> str:
        if match.group("code"):
            return match.group(0)
        return render_role(page, match.group("name"), match.group("body"))

    return _ROLE_OR_CODE.sub(one, text)


def _split_block(lines: list[str], start: int) -> tuple[int, str, str, dict[str, str], list[str]]:
    """The directive opening at ``start``: (end index, name, argument, options, content lines)."""
    head = _DIRECTIVE.match(lines[start].rstrip("\n"))
    assert head
    fence = head.group("fence")
    end = start + 1
    while end < len(lines):
        stripped = lines[end].strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            break
        end += 1
    body = lines[start + 1 : end]
    options: dict[str, str] = {}
    while body and re.match(r"^\s*:[\w-]+:", body[0]):
        key, _, value = body.pop(0).strip()[1:].partition(":")
        options[key] = value.strip()
    while body and not body[0].strip():
        body.pop(0)
    return end, head.group("name"), head.group("arg").strip(), options, body


def render_markdown(page: Page, text: str) -> str:
    """MyST Markdown as plain (Colab) Markdown."""
    lines = _lines(text)
    out: list[str] = []
    prose: list[str] = []  # running text, rendered a paragraph at a time (a role may span lines)

    def flush() -> None:
        chunk = render_roles(page, "".join(prose))
        out.append(re.sub(r"^(\$\$)[ \t]*\([\w:.-]+\)[ \t]*$", r"\1", chunk, flags=re.M))
        prose.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^(#{1,6}) ", line)
        if heading:
            page.heading = len(heading.group(1))
        if not (
            _DIRECTIVE.match(line.rstrip("\n")) or _FENCE.match(line) or _TARGET.match(line.rstrip("\n"))
        ):
            if not re.match(r"^(%|\+\+\+)", line):  # a comment or a block break: nothing to show
                prose.append(line)
            i += 1
            continue
        flush()
        if _DIRECTIVE.match(line.rstrip("\n")):
            end, name, arg, options, body = _split_block(lines, i)
            out.append(render_directive(page, name, arg, options, "".join(body)).strip("\n") + "\n\n")
            i = end + 1
            continue
        fence = _FENCE.match(line)
        if fence:  # a plain code block: copied as it is
            close = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence.group("fence"))
                    and set(lines[j].strip()) == {fence.group("fence")[0]}
                ),
                len(lines) - 1,
            )
            out.extend(lines[i : close + 1])
            i = close + 1
            continue
        i += 1  # a label target: nothing to show
    flush()
    return re.sub(r"\n{3,}", "\n\n", "".join(out)).strip("\n")


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.strip("\n").split("\n"))


def render_directive(page: Page, name: str, arg: str, options: dict[str, str], body: str) -> str:
    if name == "glue:figure":
        page.record(arg)  # must exist; the image is the glue cell's output
        page.figures.append(arg)
        caption = render_markdown(page, body)
        number = page.site.first_figure.get(page.doc, 1) + len(page.figures) - 1
        return f"**Fig. {number}** {caption}".rstrip()
    if name in ("glue", "glue:", "glue:any", "glue:md"):
        data = page.record(arg)
        if "text/markdown" in data or "image/png" in data:
            return _inline(data)
        return "```\n" + "".join(data.get("text/plain", "")).rstrip("\n") + "\n```"
    if name == "glue:math":
        return "$$\n" + "".join(page.record(arg)["text/latex"]).strip().strip("$").strip() + "\n$$"
    if name == "literalinclude":
        code = literalinclude(page.path.parent / arg, options)
        language = options.get("language", "python" if arg.endswith(".py") else "")
        caption = f"**{options['caption']}**\n\n" if options.get("caption") else ""
        return f"{caption}```{language}\n{code}\n```"
    if name in ("code-block", "code", "code-cell", "sourcecode"):
        return f"```{arg}\n{body.rstrip()}\n```"
    if name == "math":
        return f"$$\n{body.strip()}\n$$"
    if name == "tab-set":
        return render_markdown(page, body)
    if name == "tab-item":
        level = min(page.heading + 1, 6)
        return f"{'#' * level} {render_roles(page, arg)}\n\n{render_markdown(page, body)}"
    if name in ("toctree", "tableofcontents"):
        return ""
    content = render_markdown(page, body)
    if name in ADMONITIONS or name.startswith("admonition"):
        title = render_roles(page, arg) if arg else name.capitalize()
        return _quote(f"**{title}**\n\n{content}" if content else f"**{title}**")
    return content  # div, container, table, raw html, ...
