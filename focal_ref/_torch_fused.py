"""The opt-in fused sigmoid kernel of :mod:`focal_ref.torch` (``fused=True``): one ``torch.compile`` loop."""

from __future__ import annotations

import os
import sys
import types
import warnings

import torch

from . import _torch_kernels as _k

COMPILED: dict = {}

_INTERNAL_DIRS = (
    os.path.dirname(os.path.abspath(__file__)),
    os.path.dirname(os.path.abspath(torch.__file__)),
)


def caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside focal_ref and torch: a warning points at the user."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_INTERNAL_DIRS):
        frame, level = frame.f_back, level + 1
    return level


def fused_sigmoid_kernel(x, y, alpha, gamma, need_grad):
    """:func:`focal_ref._torch_kernels.sigmoid_kernel` through ``torch.compile``: one fused loop.

    Compiled once per process (shapes dynamic), always with the gradient so that one graph serves
    both modes. If compiling fails (no C++ compiler, an unsupported platform), it warns once and runs
    the eager kernel from then on.
    """
    compiled = COMPILED.get("sigmoid")
    if compiled is None:
        compiled = COMPILED["sigmoid"] = torch.compile(_k.sigmoid_kernel, dynamic=True, fullgraph=True)
    if compiled is not False:
        try:
            return compiled(x, y, alpha, gamma, need_grad=True)
        except Exception as error:  # any compiler failure: fall back, do not fail the training step
            warnings.warn(
                f"focal_ref.torch: fused=True is unavailable here ({type(error).__name__}: {error}); "
                "using the eager kernel",
                RuntimeWarning,
                stacklevel=caller_stacklevel(),
            )
            COMPILED["sigmoid"] = False
    return _k.sigmoid_kernel(x, y, alpha, gamma, need_grad=need_grad)
