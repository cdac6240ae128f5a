"""Progress bars for the training loops: shown where someone watches, never in an executed notebook's outputs.

``progress=None`` (the default of both trainings) decides by where the code runs:

* ``FOCAL_REF_PROGRESS=1`` / ``=0`` in the environment: always / never (the override);
* an interactive terminal (stdout is a TTY), Google Colab, a Jupyter server's kernel (JupyterLab, Notebook:
  the server sets ``JPY_SESSION_NAME``) or a VS Code notebook (``VSCODE_PID`` / ``VSCODE_CWD``): a
  ``tqdm.auto`` bar (a widget in a notebook, text in a terminal);
* anything else -- nbval, ``jupyter execute``, a book build (a kernel run by nbclient, with no server), a
  script with redirected output, pytest: no bar, so stored outputs stay clean.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["someone_watching", "progress_bar"]

_NOTEBOOK_FRONTENDS = ("JPY_SESSION_NAME", "VSCODE_PID", "VSCODE_CWD")


def someone_watching() -> bool:
    """Whether a progress bar would be seen live (see the module docstring).

    Returns:
        True in a terminal, Colab, a Jupyter server's kernel or VS Code; False in an executed notebook,
        under pytest or with ``FOCAL_REF_PROGRESS=0``.

    Example:
        >>> someone_watching()  # doctest runs with captured output, in no notebook
        False
    """
    forced = os.environ.get("FOCAL_REF_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if "google.colab" in sys.modules:
        return True
    if "ipykernel" in sys.modules:
        return any(name in os.environ for name in _NOTEBOOK_FRONTENDS)
    return sys.stdout.isatty()


def progress_bar(
    iterable: Iterable[Any], progress: bool | None, total: int, desc: str | None = None
) -> Iterable[Any]:
    """``iterable`` in a ``tqdm.auto`` bar when ``progress`` is True, or None and :func:`someone_watching`.

    Args:
        iterable: the loop.
        progress: True, False, or None for "when someone is watching".
        total: the number of items.
        desc: the bar's label.

    Returns:
        The iterable itself, or a tqdm bar over it.

    Example:
        >>> steps = range(3)
        >>> progress_bar(steps, False, 3) is steps
        True
    """
    if progress is None:
        progress = someone_watching()
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc)
