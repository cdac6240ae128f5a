"""The Colab editions (colab/): generated from the book, free of MyST-only markup, and runnable in Colab.

The fast tests check that every edition equals a fresh generation from its book notebook (so nobody edits
one by hand and none drifts), that no Markdown cell holds MyST-only syntax, that every figure of the book
is an image output, and the Sphinx hook that points the Colab launch buttons at the editions.

The slow tests execute every edition as a reader in Colab would: in a venv holding only a Colab-like
stack (torch, TensorFlow, Keras, JAX, NumPy, SciPy, matplotlib, sympy, scikit-learn, tqdm, ipykernel; no
MyST-NB, no Jupyter Book), each notebook alone in an empty temporary directory, its first cell installing
focal_ref (a wheel built from this checkout) through ``FOCAL_REF_SOURCE``; they check that each runs, that
the install cell prints nothing and that every figure is shown. The venv is built once per stack (pins
from requirements.txt) in ``.venv-colab/`` and reused; each notebook's kernel runs in its own small venv
on top of it, so every install cell really installs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from focal_ref._colab import RECORD, build, colab_launch_url, editions
from focal_ref._colab.markdown import Page, Site, format_plain_text, render_markdown

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-colab"
# Colab's own stack, pinned as in requirements.txt (names as they are spelled there).
COLAB_STACK = [
    "numpy",
    "scipy",
    "torch",
    "tensorflow-cpu",
    "keras",
    "jax",
    "jaxlib",
    "matplotlib",
    "sympy",
    "mpmath",
    "scikit-learn",
    "tqdm",
    "ipykernel",
]
# What executes the notebooks (Colab's own frontend plays this part there), pinned to this environment.
RUNNER = ["nbclient", "nbformat", "jupyter_client"]


def _stack_pins() -> list[str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    missing = [name for name in COLAB_STACK if name not in pins]
    assert not missing, f"requirements.txt pins none of {missing}"
    return [f"{name}=={pins[name]}" for name in COLAB_STACK] + [
        f"{name}=={md.version(name)}" for name in RUNNER
    ]


def colab_venv() -> Path:
    """The Colab-like venv's python, built once per pin set (a stamp file holds the pins' hash)."""
    pins = _stack_pins()
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()
    python = VENV / "bin" / "python"
    stamp = VENV / ".stack-sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
    stamp.write_text(digest + "\n")
    return python


def _venv_with_lock() -> Path:
    """:func:`colab_venv`, once for all pytest-xdist workers (a file lock around the build)."""
    import fcntl

    tag = hashlib.sha1(bytes(VENV)).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"focal_ref-colab-venv-{tag}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return colab_venv()


# ----------------------------------------------------------------------------------------------
# the editions are generated, complete and free of MyST markup


BOOK_NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
MYST_ONLY = ["{glue", "{doc}", "{ref}", "{numref}", ":::", "literalinclude", "{tab-set}", "{tab-item}"]


def _edition(book_path: Path) -> Path:
    return ROOT / "colab" / book_path.relative_to(ROOT / "book")


def _cells(path: Path, kind: str) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == kind]


def _images(nb_path: Path) -> list[str]:
    return [
        "".join(o["data"]["image/png"]).strip()
        for c in _cells(nb_path, "code")
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]


def test_every_edition_equals_a_fresh_generation():
    stale = build(ROOT, check=True)
    assert not stale, "Colab editions out of date; run `python scripts/make_colab.py`: " + ", ".join(
        str(p.relative_to(ROOT)) for p in stale
    )
    assert sorted(editions(ROOT)) == [_edition(p) for p in BOOK_NOTEBOOKS]


@pytest.mark.parametrize("book_path", BOOK_NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "book").as_posix())
def test_edition_has_no_myst_markup_and_every_figure(book_path):
    import nbformat

    edition = _edition(book_path)
    nbformat.validate(nbformat.read(edition, as_version=4))
    for index, cell in enumerate(_cells(edition, "markdown")):
        text = "".join(cell["source"])
        found = [token for token in MYST_ONLY if token in text]
        assert not found, f"{edition.name}, Markdown cell {index}: MyST-only {found}: {text[:200]!r}"
    figures = [
        "".join(o["data"][RECORD + "image/png"]).strip()
        for c in _cells(book_path, "code")
        for o in c.get("outputs", [])
        if RECORD + "image/png" in o.get("data", {})
    ]
    assert set(figures) <= set(_images(edition)), (
        f"{edition.name}: a figure of the book is not an image output"
    )
    captions = [c for c in _cells(edition, "markdown") if "".join(c["source"]).startswith("**Fig. ")]
    assert len(captions) == len(figures)
    first = _cells(edition, "code")[0]
    assert first["metadata"].get("cellView") == "form"


def test_glued_text_is_formatted_as_myst_nb_formats_it():
    """Every ``{glue:text}`` role of the book, through MyST-NB's own formatter and through ours."""
    from myst_nb.core.variables import format_plain_text as myst_format

    from focal_ref._colab.markdown import glue_records

    checked = 0
    for path in BOOK_NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        records = glue_records(nb)
        text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        for body in re.findall(r"\{glue:text\}`([^`]+)`", text):
            key, _, spec = body.rpartition(":") if ":" in body else (body, "", "s")
            plain = "".join(records[key][1]["text/plain"])
            assert format_plain_text(plain, spec) == myst_format(plain, spec), (path.name, body)
            checked += 1
    assert checked > 0


def _page(tmp_path: Path, text: str) -> str:
    (tmp_path / "book" / "sub").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/org/proj\n  branch: main\nhtml:\n  baseurl: ''\n"
    )
    (tmp_path / "pkg.py").write_text(
        "import x\n\n\n@decorate\ndef f(a):\n    '''Doc.'''\n    return a\n\n\nclass C:\n"
        "    def m(self):\n        return 1\n"
    )
    figure = "```{glue:figure} z\n:name: fig-z\n\nA caption.\n```\n"
    other = {
        "cells": [{"cell_type": "markdown", "source": "(sec-x)=\n# Other page\n" + figure, "metadata": {}}]
    }
    toc = "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/other\n  - file: book/sub/page\n"
    (tmp_path / "_toc.yml").write_text(toc)
    (tmp_path / "book" / "other.ipynb").write_text(json.dumps(other))
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    record = {
        "output_type": "display_data",
        "metadata": {"scrapbook": {"name": "n", "mime_prefix": RECORD}},
        "data": {RECORD + "text/plain": "12345.678"},
    }
    path = tmp_path / "book" / "sub" / "page.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "", "outputs": [record]}]}))
    site = Site.from_config(tmp_path)
    page = Page(site, path, {"n": (0, {"text/plain": "12345.678"}, False)})
    return render_markdown(page, text)


def test_markdown_roles_directives_and_links(tmp_path):
    text = (
        "# Title\n\nWe have {glue:text}`n:,.1f` and {glue:text}`n:.2e`; see "
        "{doc}`the other\npage <../other>`,"
        " {doc}`../intro`, {ref}`sec-x` and `{glue:text}` in code.\n\n"
        "::::{tab-set}\n:::{tab-item} First\n"
        "```{literalinclude} ../../pkg.py\n:pyobject: f\n:lines: 2-4\n```\n"
        ":::\n:::{tab-item} Second\n```{literalinclude} ../../pkg.py\n:pyobject: C.m\n```\n:::\n::::\n\n"
        "```{note}\nMind {glue:text}`n:.0f`.\n```\n\n```python\n{glue:text}`n` stays in code\n```\n(lbl)=\n"
        "```{glue:figure} n\n:name: fig-n\n:alt: words\n\n"
        "Caption {glue:text}`n:.0f`, after {numref}`fig-z`.\n```\n"
    )
    out = _page(tmp_path, text)
    assert "We have 12,345.7 and 1.23e+04" in out
    assert (
        "[the other page](https://colab.research.google.com/github/org/proj/blob/main/colab/other.ipynb)"
        in out
    )
    assert "[Intro](https://org.github.io/proj/book/intro.html)" in out
    assert "[Other page](https://org.github.io/proj/book/other.html#sec-x)" in out
    assert "`{glue:text}` in code" in out
    assert "## First\n\n```python\ndef f(a):\n    '''Doc.'''\n    return a\n```" in out
    assert "## Second\n\n```python\n    def m(self):\n        return 1\n```" in out
    assert "> **Note**\n>\n> Mind 12346." in out
    assert "```python\n{glue:text}`n` stays in code\n```" in out
    assert "(lbl)=" not in out and ":::" not in out
    # figures are numbered through the book in the table of contents' order, as Sphinx numbers them
    assert (
        "**Fig. 2** Caption 12346, after [Fig. 1](https://org.github.io/proj/book/other.html#fig-z)." in out
    )


def test_launch_button_opens_the_colab_edition():
    from focal_ref._colab import _point_launch_buttons

    url = "https://colab.research.google.com/github/org/proj/blob/main/book/tuning/01_x.ipynb"
    assert colab_launch_url(url) == url.replace("/main/book/", "/main/colab/")
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [{"text": "Colab", "url": url}]}]}
    _point_launch_buttons(None, "book/tuning/01_x", "page.html", context, None)
    assert context["header_buttons"][0]["buttons"][0]["url"].endswith("/blob/main/colab/tuning/01_x.ipynb")


def test_fallback_glue_shows_figures_but_not_hidden_values(monkeypatch):
    import IPython.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from focal_ref.notebook import glue

    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)
    monkeypatch.setattr(IPython.display, "display", shown.append)
    fig = plt.figure()
    glue("value", 0.5, display=False)
    glue("figure", fig, display=False)
    glue("shown", "text")
    plt.close(fig)
    assert shown == [fig, "text"]


# ----------------------------------------------------------------------------------------------
# the editions run in a Colab-like environment

RUN_NOTEBOOK = """
import sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
where = {"metadata": {"path": sys.argv[3]}}
nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources=where).execute()
nbformat.write(nb, sys.argv[2])
"""


@pytest.fixture(scope="session")
def colab_stack(tmp_path_factory) -> tuple[Path, str]:
    """The Colab-like venv's site-packages, and focal_ref's wheel built from this checkout (with [book])."""
    python = _venv_with_lock()
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for name in ("myst_nb", "jupyter_book", "focal_ref", "kornia"):
        assert not (Path(site) / name).exists(), f"the Colab-like venv must not hold {name}"
    checkout = tmp_path_factory.mktemp("checkout")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "focal_ref", checkout / "focal_ref", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [str(python), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(checkout)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("focal_ref-*.whl")
    return Path(site), f"focal_ref[book] @ {wheel.as_uri()}"


def _kernel_env(stack: tuple[Path, str], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A new venv (without focal_ref) that sees the shared Colab-like stack, and the environment to run it.

    Its site-packages points at the shared stack through a .pth file, so the install cell's pip really
    installs focal_ref and kornia, into this venv alone.
    """
    site, source = stack
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(own) / "_colab_stack.pth").write_text(f"{site}\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "FOCAL_REF_SOURCE": source,
        "FOCAL_REF_DATA": (ROOT / "book").as_uri() + "/",  # the data cell's files, from this checkout
        "PYTHONNOUSERSITE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    for name in ("PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT"):
        if name in os.environ:
            env[name] = os.environ[name]
    return python, env


def _run_in_colab(edition: Path, stack: tuple[Path, str], tmp_path: Path) -> dict:
    """Execute one edition alone in an empty folder, in a kernel that sees the Colab-like stack only."""
    python, env = _kernel_env(stack, tmp_path)
    work = tmp_path / "content"
    work.mkdir()
    shutil.copy2(edition, work / edition.name)
    out = tmp_path / "executed.ipynb"
    run = subprocess.run(
        ["nice", "-n", "10", str(python), "-c", RUN_NOTEBOOK, str(work / edition.name), str(out), str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, f"{edition.name} failed in the Colab-like environment:\n{run.stderr[-6000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("book_path", BOOK_NOTEBOOKS, ids=lambda p: p.relative_to(ROOT / "book").as_posix())
def test_edition_runs_in_a_colab_like_environment(book_path, colab_stack, tmp_path):
    edition = _edition(book_path)
    nb = _run_in_colab(edition, colab_stack, tmp_path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["outputs"] == [], f"the install cell printed: {code[0]['outputs']}"
    shown = sum("image/png" in o.get("data", {}) for c in code for o in c["outputs"])
    assert shown >= len(_images(edition)), f"{edition.name}: {shown} figures shown, the book has more"


def test_install_cell_is_silent_on_success_and_raises_with_pips_output(colab_stack, tmp_path):
    cell = (ROOT / "book" / "_install_cell.py").read_text(encoding="utf-8")
    python, env = _kernel_env(colab_stack, tmp_path)

    def run(code: str, source: str) -> subprocess.CompletedProcess:
        run_env = {**env, "FOCAL_REF_SOURCE": source}
        return subprocess.run(
            [str(python), "-c", code], env=run_env, cwd=tmp_path, capture_output=True, text=True
        )

    missing = str(tmp_path / "no-such-checkout")
    failed = run(cell, missing)
    assert failed.returncode != 0 and failed.stdout == ""
    assert "RuntimeError: pip install" in failed.stderr, failed.stderr
    assert missing in failed.stderr.split("RuntimeError: pip install", 1)[1], (
        "the error must carry pip's output"
    )
    installed = run(cell, env["FOCAL_REF_SOURCE"])
    assert (installed.returncode, installed.stdout, installed.stderr) == (0, "", "")
    probe = run("import focal_ref, kornia", missing)
    assert probe.returncode == 0, probe.stderr
    again = run(cell, missing)  # importable now: the cell does nothing (pip on the missing source would fail)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_data_cell_fetches_the_files_a_page_reads_from_its_folder(tmp_path):
    from focal_ref._colab import _data_cell

    book = tmp_path / "repo" / "book"
    (book / "t" / "results").mkdir(parents=True)
    (book / "t" / "results" / "a.json").write_text('{"x": 1}')
    site = Site(tmp_path / "repo", "https://s/", "https://c/", "https://raw/")
    sources = ['data = load("results/a.json")\nother = load("missing.json")', "print('no file here')"]
    cell = _data_cell(site, book / "t" / "page.ipynb", sources)
    assert cell is not None and cell["metadata"]["cellView"] == "form"
    code = "".join(cell["source"])
    assert "['results/a.json']" in code and "missing" not in code
    assert _data_cell(site, book / "t" / "page.ipynb", sources[1:]) is None
    work = tmp_path / "content"
    work.mkdir()
    env = {**os.environ, "FOCAL_REF_DATA": book.as_uri() + "/"}
    run = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert (work / "results" / "a.json").read_text() == '{"x": 1}'
