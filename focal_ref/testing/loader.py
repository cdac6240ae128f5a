"""Loading a callable by name, for ``python -m focal_ref check package.module:function``."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_callable"]


def load_callable(spec: str) -> Any:
    """``"package.module:attr.path"`` -> the object (``"package.module.function"`` also works).

    Args:
        spec: the module and the attribute path.

    Returns:
        The object.

    Raises:
        ValueError: if ``spec`` names no module or no attribute.
        ImportError: if the module cannot be found (anything the module raises while importing
            propagates unchanged).
        AttributeError: if the attribute does not exist.

    Example:
        >>> load_callable("math:sqrt")(4.0)
        2.0
    """
    if ":" in spec:
        module_name, _, attr_path = spec.partition(":")
    else:
        module_name, _, attr_path = spec.rpartition(".")
    if not module_name or not attr_path:
        raise ValueError(f"expected 'package.module:function', got {spec!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj
