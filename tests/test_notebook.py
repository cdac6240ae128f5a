"""focal_ref.notebook.glue: MyST-NB's glue when it is installed, a plain display (or nothing) otherwise."""

import sys

import IPython.display

from focal_ref.notebook import glue


def test_glue_without_myst_nb_shows_or_skips_the_value(monkeypatch):
    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes `from myst_nb import glue` raise ImportError
    monkeypatch.setattr(IPython.display, "display", shown.append)
    glue("hidden", 1.25, display=False)
    glue("shown", 2.5)
    assert shown == [2.5]


def test_glue_with_myst_nb_records_the_value(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append((name, value, display)))
    glue("key", 0.5, display=False)
    assert calls == [("key", 0.5, False)]
