"""The book: its notebooks, its install cell and the rendered site.

* Every page in ``_toc.yml`` exists; every notebook is committed executed and starts with the canonical
  install cell (``book/_install_cell.py``), whose default source is the repository URL of ``_config.yml``.
* The install cell's logic, run for real in a fresh virtual environment: it installs focal_ref from a
  local copy of this checkout when focal_ref is not importable, and does not call pip when it is.
* The site, built with the README's strict command (``jupyter-book build . -W -n --keep-going``): no
  warnings, nothing loaded from the internet, every image present, a Colab link on every notebook page,
  and, in headless Chromium, every formula typeset by the local MathJax without an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "_toc.yml"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
INSTALL_CELL = (ROOT / "book" / "_install_cell.py").read_text(encoding="utf-8")
REPO_URL = CONFIG["repository"]["url"].rstrip("/")


def _toc_files(toc_path: Path = TOC) -> list[str]:
    """Every document in the table of contents, in reading order (paths without suffix)."""
    toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def _source(doc: str) -> Path:
    matches = [ROOT / f"{doc}{suffix}" for suffix in (".ipynb", ".md") if (ROOT / f"{doc}{suffix}").exists()]
    assert len(matches) == 1, f"{doc}: expected exactly one of {doc}.ipynb / {doc}.md, found {matches}"
    return matches[0]


TOC_FILES = _toc_files()
NOTEBOOKS = [doc for doc in TOC_FILES if not (ROOT / f"{doc}.md").exists()]


# ----------------------------------------------------------------------------------------------
# the table of contents and the notebooks


def test_toc_lists_the_book():
    assert TOC_FILES[0] == "book/intro"
    assert len(TOC_FILES) == len(set(TOC_FILES)), "a page is listed twice in _toc.yml"
    for doc in TOC_FILES:
        _source(doc)


@pytest.mark.parametrize("doc", NOTEBOOKS)
def test_notebook_is_executed_and_starts_with_the_install_cell(doc):
    path = ROOT / f"{doc}.ipynb"
    assert path.exists(), f"{path.relative_to(ROOT)} is listed in _toc.yml but does not exist"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"

    first = nb.cells[0]
    assert first.cell_type == "code"
    assert first.source.rstrip("\n") == INSTALL_CELL.rstrip("\n"), (
        f"{doc}: the first cell must be exactly book/_install_cell.py"
    )
    tags = set(first.metadata.get("tags", []))
    assert {"remove-input", "remove-output"} <= tags and "remove-cell" not in tags, (
        f"{doc}: the install cell runs (Colab, nbval) but is removed from the page: tags remove-input and "
        f"remove-output, got {sorted(tags)}"
    )

    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    unexecuted = [
        i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.execution_count is None
    ]
    assert not unexecuted, f"{doc}: cells {unexecuted} are not executed (commit notebooks executed)"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{doc}: run it top to bottom once (execution counts {counts})"
    )
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{doc}: stored outputs contain an error: {errors[0].get('ename')}"

    # Exactly one H1, in the first markdown cell (the cell after the install cell).
    h1_cells = [
        i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown" and _h1_count(cell.source)
    ]
    assert h1_cells == [1] and _h1_count(nb.cells[1].source) == 1, f"{doc}: H1 headings in cells {h1_cells}"


def _h1_count(markdown: str) -> int:
    count, fence = 0, None
    for line in markdown.splitlines():
        stripped = line.strip()
        marker = re.match(r"^(`{3,}|~{3,}|:{3,})", stripped)
        if marker:
            if fence is None:
                fence = marker.group(1)[0]
            elif stripped[0] == fence and not stripped.strip(fence).strip():
                fence = None
            continue
        if fence is None and re.match(r"^# \S", line):
            count += 1
    return count


def test_glue_keys_are_unique_across_the_book():
    owners: dict[str, str] = {}
    clashes = []
    for doc in NOTEBOOKS:
        path = ROOT / f"{doc}.ipynb"
        if not path.exists():
            continue  # reported by the test above
        nb = nbformat.read(path, as_version=4)
        keys = {
            output.metadata["scrapbook"]["name"]
            for cell in nb.cells
            if cell.cell_type == "code"
            for output in cell.outputs
            if "scrapbook" in output.get("metadata", {})
        }
        for key in sorted(keys):
            if key in owners:
                clashes.append(f"{key!r} in {owners[key]} and {doc}")
            owners[key] = doc
    assert not clashes, "glue keys must be unique across the book: " + "; ".join(clashes)


def test_install_cell_default_source_is_the_configured_repository():
    match = re.search(r'"FOCAL_REF_SOURCE",\s*"focal_ref\[book\] @ git\+([^"]+)"', INSTALL_CELL)
    assert match, "the install cell must default to focal_ref[book] @ git+<repository url>"
    assert match.group(1).removesuffix(".git") == REPO_URL
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


# ----------------------------------------------------------------------------------------------
# the install cell, run for real


def _fresh_venv(tmp_path: Path) -> Path:
    """A new venv (with pip) that sees numpy and setuptools of this environment but not focal_ref.

    The cell then runs pip for real: pip builds focal_ref from the given source and resolves its numpy
    dependency against the numpy it finds installed. PIP_NO_INDEX makes sure nothing is downloaded, so
    the bundled setuptools of the venv (older than the one pyproject.toml's backend needs, and without
    bdist_wheel) is replaced by this environment's, and the build runs without isolation.
    """
    import importlib.metadata as md

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for stale in ["setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth"]:
        for path in purelib.glob(stale + "*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    deps = tmp_path / "deps"
    deps.mkdir()
    # numpy: focal_ref's dependency; setuptools (and, for a setuptools older than 70.1, wheel and
    # packaging): the build backend named in pyproject.toml.
    for name in ["numpy", "setuptools", "wheel", "packaging"]:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            assert name not in ("numpy", "setuptools"), f"{name} is not installed"
            continue
        tops = {f.parts[0] for f in dist.files if f.parts[0] != ".."}
        site_dir = Path(dist.locate_file(""))
        for top in sorted(tops):
            src = site_dir / top
            if top.endswith(".dist-info"):
                shutil.copytree(src, deps / top)  # pip wants the metadata in a real folder, not a link
            elif src.exists():
                (deps / top).symlink_to(src, target_is_directory=src.is_dir())
    (purelib / "_focal_ref_test_deps.pth").write_text(f"{deps}\n")
    return python


def _run_cell(python: Path, source: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "FOCAL_REF_SOURCE": source,
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's inverted spelling: 0 turns build isolation off
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONNOUSERSITE": "1",
    }
    return subprocess.run(
        [str(python), "-c", INSTALL_CELL], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_install_cell_installs_from_a_local_checkout_and_only_when_needed(tmp_path):
    import focal_ref

    python = _fresh_venv(tmp_path)
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "focal_ref", source / "focal_ref", ignore=shutil.ignore_patterns("__pycache__"))
    missing = str(tmp_path / "no-such-checkout")
    work = tmp_path / "work"
    work.mkdir()

    # Not importable: the cell calls pip (a source that does not exist makes pip fail).
    first = _run_cell(python, missing, work)
    assert first.returncode != 0 and "no-such-checkout" in first.stderr + first.stdout, first.stderr

    # Not importable, a real source: installed, and it computes what this checkout computes.
    second = _run_cell(python, str(source), work)
    assert second.returncode == 0, second.stderr
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import focal_ref; print(focal_ref.__file__); "
            "print(repr(float(focal_ref.sigmoid_focal_loss([2.0, -1.0], [1.0, 0.0], reduction='sum'))))",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"},
    )
    assert probe.returncode == 0, probe.stderr
    where, value = probe.stdout.split()
    assert Path(where).resolve().is_relative_to((tmp_path / "venv").resolve())
    assert float(value) == float(focal_ref.sigmoid_focal_loss([2.0, -1.0], [1.0, 0.0], reduction="sum"))

    # Importable: the cell does nothing (pip on the missing source would fail).
    third = _run_cell(python, missing, work)
    assert third.returncode == 0, third.stderr
    assert third.stdout == third.stderr == ""


# ----------------------------------------------------------------------------------------------
# the rendered site


@pytest.fixture(scope="session")
def site(tmp_path_factory, request) -> Path:
    """Build the book once per test session (once for all xdist workers) with the README's strict command.

    ``FOCAL_REF_SITE=<folder with index.html>`` uses a site built beforehand instead (to look at pages
    while some other page's build warning is being fixed); CI leaves it unset.
    """
    prebuilt = os.environ.get("FOCAL_REF_SITE")
    if prebuilt:
        assert (Path(prebuilt) / "index.html").is_file(), f"FOCAL_REF_SITE={prebuilt} holds no built site"
        return Path(prebuilt)
    if hasattr(request.config, "workerinput"):
        shared = tmp_path_factory.getbasetemp().parent  # one folder per session, shared by the workers
    else:
        shared = tmp_path_factory.mktemp("site")
    out = shared / "book_site"
    with FileLock(str(shared / "book_site.lock")):
        record = shared / "book_site.json"
        if not record.exists():
            jupyter_book = Path(sys.executable).with_name("jupyter-book")
            command = [str(jupyter_book) if jupyter_book.exists() else "jupyter-book"]
            command += [
                "build",
                str(ROOT),
                "-W",
                "-n",
                "--keep-going",
                "--toc",
                str(TOC),
                "--path-output",
                str(out),
            ]
            result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
            record.write_text(json.dumps({"rc": result.returncode, "log": result.stdout + result.stderr}))
    built = json.loads(record.read_text())
    log = built["log"]
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert built["rc"] == 0 and not warnings, "the strict build failed:\n" + (
        "\n".join(warnings) or log[-3000:]
    )
    return out / "_build" / "html"


def _page(site: Path, doc: str) -> Path:
    return site / f"{doc}.html"


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _is_remote(url: str | None) -> bool:
    return bool(url) and (url.startswith("//") or urlparse(url).scheme in {"http", "https"})


def test_site_has_every_page(site):
    for doc in TOC_FILES:
        assert _page(site, doc).exists(), f"{doc} was not rendered"
    assert (site / "index.html").exists()


def test_site_pastes_values_not_python_reprs(site):
    # a glued object without a text form pastes as "<IPython.core.display.Markdown object>" (or
    # "<... object at 0x...>") under {glue:text}: plumbing on show
    offenders = []
    for doc in TOC_FILES:
        for pasted in _soup(_page(site, doc)).select(".pasted-text, .pasted-inline"):
            text = pasted.get_text()
            if "object>" in text or " object at 0x" in text:
                offenders.append(f"{doc}: {text}")
    assert not offenders, offenders


def test_site_loads_nothing_from_the_internet(site):
    offenders = []
    for page in sorted(site.rglob("*.html")):
        soup = _soup(page)
        for tag in soup.find_all("script", src=True):
            if _is_remote(tag["src"]):
                offenders.append(f"{page.relative_to(site)}: <script src={tag['src']}>")
        for tag in soup.find_all("link", href=True):
            rel = " ".join(tag.get("rel", []))
            if any(r in rel for r in ("stylesheet", "preload", "modulepreload", "icon")) and _is_remote(
                tag["href"]
            ):
                offenders.append(f"{page.relative_to(site)}: <link rel={rel} href={tag['href']}>")
        for tag in soup.find_all(["img", "iframe", "source"], src=True):
            if _is_remote(tag["src"]):
                offenders.append(f"{page.relative_to(site)}: <{tag.name} src={tag['src']}>")
        for script in soup.find_all("script", src=False):
            offenders += [
                f"{page.relative_to(site)}: inline script loads {url}"
                for url in re.findall(r"https?://[^\s\"']+\.(?:js|css)\b", script.get_text())
            ]
    for css in sorted(site.rglob("*.css")):
        for url in re.findall(
            r"(?:@import\s+(?:url\()?|url\()\s*['\"]?(https?://[^'\")\s]+)", css.read_text("utf-8", "replace")
        ):
            offenders.append(f"{css.relative_to(site)}: {url}")
    assert not offenders, "resources from the internet:\n" + "\n".join(offenders)


def test_site_serves_mathjax_locally(site):
    page = _soup(_page(site, "book/intro"))
    mathjax = [tag["src"] for tag in page.find_all("script", src=True) if "mathjax" in tag["src"].lower()]
    assert mathjax == ["../_static/mathjax/tex-chtml.js"], mathjax
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_site_images_exist(site):
    missing = []
    for page in sorted(site.rglob("*.html")):
        for img in _soup(page).find_all("img"):
            src = img.get("src", "")
            if src.startswith("data:"):
                continue
            target = (page.parent / unquote(urlparse(src).path)).resolve()
            if not src or not target.is_file():
                missing.append(f"{page.relative_to(site)}: {src!r}")
    assert not missing, "images that do not exist:\n" + "\n".join(missing)


def test_site_notebook_pages_link_to_colab(site):
    """Each notebook page's Colab button opens its Colab edition (colab/<path under book/>, written by
    scripts/make_colab.py; the focal_ref._colab hook rewrites the button), which exists in the checkout."""
    owner_repo = urlparse(REPO_URL).path.strip("/")
    branch = CONFIG["repository"]["branch"]
    prefix = f"{CONFIG['launch_buttons']['colab_url']}/github/{owner_repo}/blob/{branch}/"
    for doc in NOTEBOOKS:
        edition = "colab/" + doc.removeprefix("book/") + ".ipynb"
        assert (ROOT / edition).is_file(), f"{doc}: no Colab edition {edition}"
        expected = prefix + edition
        links = [a["href"] for a in _soup(_page(site, doc)).find_all("a", href=True)]
        assert expected in links, f"{doc}: no Colab link {expected}"


def test_site_renders_markdown_tables(site):
    """A Markdown table printed by a cell renders as <table>, not as raw "| a | b |" text (MyST-NB renders
    text/markdown outputs as CommonMark, which has no tables, unless the notebook asks for GFM)."""
    raw = []
    for doc in TOC_FILES:
        soup = _soup(_page(site, doc))
        for tag in soup.select("pre, code, script, style"):
            tag.decompose()
        raw += [
            f"{doc}: {line.strip()[:60]}"
            for line in soup.get_text("\n").splitlines()
            if re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*", line)
        ]
    assert not raw, "Markdown tables shown as raw text:\n" + "\n".join(raw)


def _math_count(page: Path) -> int:
    """Formulas Sphinx left for MathJax: each span/div of class "math" holds one \\(...\\) or \\[...\\]."""
    return len(_soup(page).select("span.math, div.math"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not on PATH (apt-get install chromium); the rendered-math check needs a real browser",
)
def test_site_math_typesets_in_chromium(site, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    pages = [_page(site, doc) for doc in TOC_FILES if _math_count(_page(site, doc))]
    assert pages, "no page has math: the check would test nothing"

    def dump_dom(index_page):
        index, page = index_page
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            f"--user-data-dir={tmp_path / f'chromium-profile-{index}'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=180).stdout

    with ThreadPoolExecutor(max_workers=2) as pool:
        doms = list(pool.map(dump_dom, enumerate(pages)))

    problems = []
    for page, dom in zip(pages, doms, strict=True):
        expected = _math_count(page)
        typeset = dom.count("<mjx-container")
        name = page.relative_to(site)
        if typeset != expected:
            problems.append(f"{name}: {typeset} mjx-container for {expected} formulas")
        if "<mjx-merror" in dom:  # the element; MathJax's stylesheet names mjx-merror too
            errors = re.findall(r'data-mjx-error="([^"]*)"', dom)
            problems.append(f"{name}: MathJax errors {errors or ['<mjx-merror>']}")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------------------
# the nbval sanitize file


def test_nbval_sanitize_hides_only_what_cannot_be_deterministic():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((ROOT / "book" / "nbval_sanitize.cfg").read_text(encoding="utf-8"))
    assert patterns, "no regex/replace pairs found"

    def sanitize(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    same = [
        ("<Figure size 600x400 with 1 Axes>", "<Figure size 640x480 with 2 Axes>"),
        ("[<matplotlib.lines.Line2D at 0x7f3a2b4c5d6e>]", "[<matplotlib.lines.Line2D at 0x7f00aa11bb22>]"),
        ("0.98916273371502", "0.98916273371507"),  # a glued float's last digits
        ("1/1 ━━━━━━━━━━━━━━━━━━━━ 0s 35ms/step", "1/1 ━━━━━━━━━━━━━━━━━━━━ 1s 541ms/step"),
    ]
    for a, b in same:
        assert sanitize(a) == sanitize(b), (a, b)
    different = [
        ("share of the total CE: 87.7 %", "share of the total CE: 87.8 %"),
        ("mean CE = 0.0110", "mean CE = 0.0111"),
        ("0.98916273", "0.98916274"),  # 8 decimals are still compared
        ("tensor([0.1250, 0.5000])", "tensor([0.1250, 0.5001])"),
    ]
    for a, b in different:
        assert sanitize(a) != sanitize(b), (a, b)
