"""The rendered site as a reader sees it, in headless Chromium (playwright), at 1280 px and at 390 px.

* at 1280 px no table, code block, output or figure overflows the content column (a wide table may
  scroll inside its own box); at 390 px figures fit the screen and wide tables scroll in their own box;
* no visible text is raw TeX, no code cell is shown above a page's H1, every <img> has an alt text that is
  not a file name;
* the text of every figure is at least 10 pt as displayed at 1280 px, from the saved figure's pixel size,
  its DPI and the font sizes the notebook gives matplotlib.

Each page is also saved as a screenshot at both widths under $FOCAL_REF_SCREENSHOTS (default: a temporary
folder) for a person to look at. Skipped, with the reason, where Chromium or playwright is missing.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_book import ROOT, TOC_FILES, site  # noqa: E402,F401  (site: the built book, a fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = {"desktop": 1280, "phone": 390}
MIN_PT = 10.0

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install chromium)")

# Runs in the page: every problem as a string.
MEASURE = r"""
(width) => {
  const problems = [];
  const main = document.querySelector('.bd-article') || document.querySelector('main') || document.body;
  const box = main.getBoundingClientRect();
  const right = Math.min(box.right, document.documentElement.clientWidth) + 1;
  const scroller = (el) => {
    for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
      const s = getComputedStyle(a).overflowX;
      if (s === 'auto' || s === 'scroll') return a;
    }
    return null;
  };
  const name = (el) => el.tagName.toLowerCase()
    + (el.className ? '.' + String(el.className).split(' ')[0] : '')
    + ' "' + (el.innerText || el.alt || '').slice(0, 40).replace(/\s+/g, ' ') + '"';
  const visible = (el) => el.offsetParent !== null && el.getBoundingClientRect().width > 0;
  // figures and images: always inside the column / the screen
  for (const img of main.querySelectorAll('img')) {
    if (!visible(img)) continue;
    const r = img.getBoundingClientRect();
    if (r.right > right)
      problems.push(`image too wide: ${name(img)} ${Math.round(r.right)} > ${Math.round(right)}`);
  }
  // tables and outputs: inside the column, or inside a box of their own that scrolls and fits
  for (const el of main.querySelectorAll('table, div.cell_output, div.output')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    const s = scroller(el);
    if (s) {
      if (s.getBoundingClientRect().right > right)
        problems.push(`scroll box wider than the column: ${name(el)}`);
    } else if (r.right > right || el.scrollWidth > el.clientWidth + 1) {
      problems.push(`overflows: ${name(el)} (${el.scrollWidth} > ${el.clientWidth})`);
    }
  }
  // code blocks: every line fits at desktop width
  if (width >= 1000) {
    for (const pre of main.querySelectorAll('div.cell_input pre, div.highlight pre')) {
      if (!visible(pre)) continue;
      if (pre.scrollWidth > pre.clientWidth + 1)
        problems.push(`code wider than its block: ${name(pre)} (${pre.scrollWidth} > ${pre.clientWidth})`);
    }
  }
  // raw TeX in the visible text (MathJax has typeset the formulas by now)
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style, .MathJax').forEach((n) => n.remove());
  const text = clone.innerText || '';
  const tex = text.match(/\\(frac|alpha|gamma|mathrm|text|sum|log|partial|begin)\b|\$\$|\\_/);
  const around = (i) => text.slice(Math.max(0, i - 30), i + 30).replace(/\s+/g, ' ');
  if (tex) problems.push(`raw TeX in the text: ...${around(tex.index)}...`);
  // no code cell above the H1
  const h1 = main.querySelector('h1');
  if (!h1) problems.push('no H1');
  for (const cell of main.querySelectorAll('div.cell_input')) {
    if (h1 && visible(cell) && (cell.compareDocumentPosition(h1) & Node.DOCUMENT_POSITION_FOLLOWING))
      problems.push(`code cell above the H1: ${name(cell)}`);
  }
  // alt text: present, and not a file name
  for (const img of main.querySelectorAll('img')) {
    const alt = (img.getAttribute('alt') || '').trim();
    const fileName = /\.(png|jpe?g|svg|gif)$/i.test(alt) || /^[\w\-/.]*[0-9a-f]{16,}/.test(alt);
    if (!alt || fileName || !alt.includes(' '))
      problems.push(`no descriptive alt: ${img.getAttribute('src')} alt=${JSON.stringify(alt)}`);
  }
  const figures = [...main.querySelectorAll('img')].filter(visible).map((img) => ({
    src: img.getAttribute('src'), width: img.getBoundingClientRect().width}));
  return {problems, figures};
}
"""


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("FOCAL_REF_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _visit(browser, page_path: Path, width: int, shot: Path):
    context = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.goto(page_path.as_uri(), wait_until="load")
    page.wait_for_function(
        "() => !window.MathJax || !MathJax.startup || MathJax.startup.promise.then(() => true)", timeout=20000
    )
    page.wait_for_timeout(300)
    result = page.evaluate(MEASURE, width)
    page.screenshot(path=str(shot), full_page=False)
    context.close()
    return result


@pytest.mark.parametrize("doc", TOC_FILES)
@pytest.mark.parametrize("view", list(WIDTHS))
def test_page_reads_well(site, browser, shots, doc, view):  # noqa: F811
    width = WIDTHS[view]
    result = _visit(browser, site / f"{doc}.html", width, shots / f"{doc.replace('/', '_')}-{width}.png")
    problems = result["problems"]
    if view == "phone":  # at 390 px only what must hold on a phone: figures fit, tables scroll, no raw TeX
        problems = [p for p in problems if not p.startswith("code wider")]
    assert not problems, f"{doc} at {width} px:\n" + "\n".join(problems)


# ----------------------------------------------------------------------------------------------
# the figures' text size


def _png_size_and_dpi(data: bytes) -> tuple[int, int, float | None]:
    width, height = struct.unpack(">II", data[16:24])
    dpi, pos = None, 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"pHYs":
            x_per_m, _, unit = struct.unpack(">IIB", data[pos + 8 : pos + 17])
            if unit == 1:
                dpi = x_per_m * 0.0254
        if kind == b"IDAT":
            break
        pos += 12 + length
    return width, height, dpi


def _smallest_font_pt(nb) -> float:
    """The smallest font size the notebook gives matplotlib: rcParams font.size (10 by default) and every
    explicit fontsize= / size= it passes."""
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    base = [float(v) for v in re.findall(r'"font\.size":\s*([0-9.]+)', code)] or [10.0]
    explicit = [float(v) for v in re.findall(r"\b(?:fontsize|labelsize|size)=([0-9.]+)", code)]
    named = {"small": 0.833, "x-small": 0.694, "xx-small": 0.579}
    scales = [named[v] for v in re.findall(r"fontsize=\"(small|x-small|xx-small)\"", code)]
    return min([min(base)] + explicit + [min(base) * s for s in scales])


def _glued_figures(nb) -> dict[str, bytes]:
    figures = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            data = out.get("data", {})
            png = data.get("image/png") or data.get("application/papermill.record/image/png")
            if name and png:
                figures[name] = base64.b64decode(png)
    return figures


@pytest.mark.parametrize("doc", [d for d in TOC_FILES if (ROOT / f"{d}.ipynb").exists()])
def test_figure_text_is_at_least_10pt_as_displayed(site, browser, shots, doc):  # noqa: F811
    nb = nbformat.read(ROOT / f"{doc}.ipynb", as_version=4)
    figures = _glued_figures(nb)
    if not figures:
        pytest.skip(f"{doc} has no figures")
    result = _visit(
        browser, site / f"{doc}.html", WIDTHS["desktop"], shots / f"{doc.replace('/', '_')}-fig.png"
    )
    shown = [f["width"] for f in result["figures"]]
    assert len(shown) >= len(figures), f"{doc}: {len(figures)} figures, {len(shown)} shown"
    font_pt = _smallest_font_pt(nb)
    problems = []
    for (name, png), css_width in zip(figures.items(), shown, strict=False):
        px_width, _, dpi = _png_size_and_dpi(png)
        if dpi is None or dpi < 199:
            problems.append(f"{name}: saved at {dpi} dpi (want >= 200 or SVG)")
            dpi = dpi or 100.0
        # a font of font_pt points is font_pt / 72 * dpi image pixels; shown at css_width / px_width
        shown_pt = font_pt / 72 * dpi * (css_width / px_width) * 72 / 96
        if shown_pt < MIN_PT:
            problems.append(
                f"{name}: {font_pt:g} pt text shown at {shown_pt:.1f} pt ({css_width:.0f} of {px_width} px)"
            )
    assert not problems, f"{doc}:\n" + "\n".join(problems)
