"""The checker's regions and per-dtype tolerances: what a report's rows are and what "pass" means.

A region is a family of inputs that shows one kind of fault (see :mod:`focal_ref.testing`). The five
:data:`REGIONS` run by default; :data:`SECOND_DERIVATIVES` is opt-in (``regions=[...]``), since it needs a
framework that differentiates twice and runs several backward passes per case. The sigmoid check's
:data:`ARGUMENT_REGIONS` (``weight``, ``pos_weight``, ``ignore_index``) are opt-in too: they call the loss
with keyword arguments beyond the documented ``(logits, targets, *, alpha, gamma)`` (see
:mod:`focal_ref.testing.arguments`).
"""

from __future__ import annotations

MODERATE = "moderate logits"
SATURATED = "saturated logits"
SOFT = "soft labels"
LOW_GAMMA = "gamma < 1 near saturation"
GRADIENTS = "gradients"
SECOND_DERIVATIVES = "second derivatives"
WEIGHT = "weight"
POS_WEIGHT = "pos_weight"
IGNORE_INDEX = "ignore_index"

#: The regions a check runs by default, in report order.
REGIONS: tuple[str, ...] = (MODERATE, SATURATED, SOFT, LOW_GAMMA, GRADIENTS)
#: Regions run only when asked for by name (``regions=[..., SECOND_DERIVATIVES]``).
OPTIONAL_REGIONS: tuple[str, ...] = (SECOND_DERIVATIVES,)
#: Every region both checks know (the argument regions below are the sigmoid check's only).
ALL_REGIONS: tuple[str, ...] = REGIONS + OPTIONAL_REGIONS
#: The sigmoid family's keyword arguments (API decision 2), opt-in: ``regions=[*REGIONS, *ARGUMENT_REGIONS]``.
ARGUMENT_REGIONS: tuple[str, ...] = (WEIGHT, POS_WEIGHT, IGNORE_INDEX)
#: Every region the sigmoid check knows, in report order.
SIGMOID_REGIONS: tuple[str, ...] = ALL_REGIONS + ARGUMENT_REGIONS

EPS: dict[str, float] = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
# Below the floor a value is compared in absolute terms: near the subnormal range relative accuracy is lost.
_FLOOR = {"float64": 2.0**-960, "float32": 2.0**-100, "float16": 2.0**-14, "bfloat16": 2.0**-100}
_ULPS = {"float64": (64, 128), "float32": (64, 128), "float16": (4, 8), "bfloat16": (4, 8)}

#: dtype name -> (loss rtol, gradient rtol, floor)
TOLERANCES: dict[str, tuple[float, float, float]] = {
    name: (_ULPS[name][0] * eps, _ULPS[name][1] * eps, _FLOOR[name]) for name, eps in EPS.items()
}


def region_tolerance(region: str, dtype: str) -> float:
    """The rtol a region is held to in ``dtype``.

    Args:
        region: one of :data:`ALL_REGIONS`.
        dtype: a key of :data:`TOLERANCES`.

    Returns:
        The loss tolerance for the loss regions, the gradient tolerance for :data:`GRADIENTS` and for the
        :data:`ARGUMENT_REGIONS` (which compare losses, their reductions and gradients), and for
        :data:`SECOND_DERIVATIVES` twice the gradient tolerance.

    Raises:
        KeyError: for an unknown dtype.

    Example:
        >>> region_tolerance("gradients", "float32") == 128 * 2.0**-23
        True
    """
    loss_rtol, grad_rtol, _ = TOLERANCES[dtype]
    if region == GRADIENTS or region in ARGUMENT_REGIONS:
        return grad_rtol
    if region == SECOND_DERIVATIVES:
        return 2.0 * grad_rtol
    return loss_rtol


def dtype_name(dtype: object) -> str:
    """The dtype's short name (``"float32"``), from a string, a NumPy, torch or Keras dtype.

    Args:
        dtype: a float dtype or its name.

    Returns:
        One of the keys of :data:`TOLERANCES`.

    Raises:
        ValueError: for any other dtype.

    Example:
        >>> dtype_name("torch.float16")
        'float16'
    """
    name = str(dtype).split(".")[-1]
    if name not in EPS:
        raise ValueError(f"dtype must be one of {tuple(EPS)}, got {dtype!r}")
    return name
