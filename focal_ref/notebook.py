"""A helper for the book's notebooks: ``glue`` that also works where MyST-NB is not installed.

The book quotes computed numbers through ``myst_nb.glue``. In a fresh Colab runtime MyST-NB is absent
(and not worth installing: it pulls in Sphinx); there the glued values are simply not recorded, and a
value glued with ``display=True`` is shown as a normal output.
"""

from __future__ import annotations


def glue(name: str, variable, display: bool = True) -> None:
    """``myst_nb.glue(name, variable, display)`` when MyST-NB is importable; otherwise show or skip the value."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(variable)
        return
    myst_glue(name, variable, display=display)
