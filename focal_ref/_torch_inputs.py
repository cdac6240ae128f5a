"""Input conversion and checks of :mod:`focal_ref.torch` (no device synchronisation unless validating)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from ._checks import (
    check_axis,
    check_binary_alpha,
    check_class_alpha,
    check_gamma,
    check_ignore_index,
    check_reduction,
    check_same_shape,
    softmax_target_kind,
)
from ._torch_kernels import compute_dtype


def float_input(value: Any, name: str) -> torch.Tensor:
    """The logits (or probs) as a floating tensor; lists and arrays are converted, integers rejected."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def no_target_grad(targets: torch.Tensor, name: str = "targets") -> None:
    if targets.requires_grad:
        raise ValueError(
            f"{name} must not require grad: focal_ref.torch differentiates with respect to the "
            f"logits/probs only; pass {name}.detach()"
        )


def raw_targets(targets: Any) -> torch.Tensor:
    tensor = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
    if tensor.is_complex():
        raise TypeError(f"targets must be real, got dtype {tensor.dtype}")
    no_target_grad(tensor)
    return tensor


def require(condition: torch.Tensor, message: str) -> None:
    """A value check; ``bool()`` synchronises with the device, hence only under ``validate=True``."""
    if not bool(condition.all()):
        raise ValueError(message)


def check_unit_interval(values: torch.Tensor, name: str) -> None:
    require((values >= 0) & (values <= 1), f"{name} must lie in [0, 1] (and not be NaN)")


def check_finite(values: torch.Tensor, name: str) -> None:
    require(torch.isfinite(values), f"{name} must be finite; got NaN or inf")


def check_dim(dim: Any) -> int:
    """A class axis given to a constructor (before the logits' rank is known): any integer type."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    return int(dim)


def sigmoid_inputs(logits, targets, alpha, gamma, reduction, validate, name="logits", ignore_index=None):
    """(x, y as given, alpha, gamma, reduction) for the elementwise losses; ``ignore_index`` entries
    pass the target check."""
    x = float_input(logits, name)
    y = raw_targets(targets).to(device=x.device)  # converted to the compute dtype inside the Function
    check_same_shape(x.shape, y.shape, name)
    alpha, gamma, reduction = check_binary_alpha(alpha), check_gamma(gamma), check_reduction(reduction)
    if validate:
        (check_finite if name == "logits" else check_unit_interval)(x, name)
        values = y.to(compute_dtype(x.dtype))
        if ignore_index is not None:
            values = torch.where(values == ignore_index, 0.0, values)
        check_unit_interval(values, "targets")
    return x, y, alpha, gamma, reduction


def sigmoid_extras(
    x: torch.Tensor, y: torch.Tensor, weight: Any, pos_weight: Any, ignore_index: Any, validate: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """API decision 2: (targets with ignored entries set to 0, effective weight or None, pos_weight or None,
    keep mask or None). The effective weight is ``weight`` times the keep mask (0 where ignored)."""
    compute = compute_dtype(x.dtype)
    tensors: list[torch.Tensor | None] = []
    for value, name in ((weight, "weight"), (pos_weight, "pos_weight")):
        if value is None:
            tensors.append(None)
            continue
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if tensor.is_complex() or tensor.dtype == torch.bool:
            raise TypeError(f"{name} must be real numbers, got dtype {tensor.dtype}")
        no_target_grad(tensor, name)
        try:
            shape = torch.broadcast_shapes(tensor.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(
                f"{name} of shape {tuple(tensor.shape)} does not broadcast to the logits' {tuple(x.shape)}"
            )
        tensor = tensor.to(device=x.device, dtype=compute)
        if validate:
            require(torch.isfinite(tensor) & (tensor >= 0), f"{name} must be finite and >= 0")
        tensors.append(tensor)
    weight, pos_weight = tensors
    keep: torch.Tensor | None = None
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real):
            raise TypeError(f"ignore_index must be a real number or None, got {type(ignore_index).__name__}")
        ignore_index = float(ignore_index)
        if not math.isfinite(ignore_index) or 0.0 <= ignore_index <= 1.0:
            raise ValueError(
                f"ignore_index must be a finite number outside [0, 1] (e.g. -1), got {ignore_index}"
            )
        keep = torch.ne(y, float(ignore_index))
        y = torch.where(keep, y, torch.zeros((), dtype=y.dtype, device=y.device))
        mask = keep.to(compute)
        weight = mask if weight is None else weight * mask
    return y, weight, pos_weight, keep


def softmax_inputs(
    logits, targets, alpha, gamma, reduction, dim, ignore_index, validate, name
) -> tuple[torch.Tensor, int, str, torch.Tensor, Any, float, str, torch.Tensor | None]:
    """(x, dim, kind, target, alpha, gamma, reduction, keep) for the softmax losses.

    ``target`` is the class-index tensor (int64) or the probabilities as given (bool one-hot rows too, as
    the reference accepts them; converted inside); ``keep`` marks non-ignored samples (or is None).
    """
    x = float_input(logits, name)
    dim = check_axis(dim, x.ndim, "dim")
    gamma, reduction = check_gamma(gamma), check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    raw = raw_targets(targets)
    kind = softmax_target_kind(x.shape, raw.shape, dim, name)
    num_classes = x.shape[dim]
    alpha = check_class_alpha(alpha, num_classes)
    if validate:
        (check_finite if name == "logits" else check_unit_interval)(x, name)
    if kind == "indices":
        if raw.is_floating_point() or raw.dtype == torch.bool:
            raise TypeError(
                f"targets of shape {tuple(raw.shape)} are class indices and must be integers, "
                f"got dtype {raw.dtype}"
            )
        index = raw.to(device=x.device, dtype=torch.long)
        keep = None if ignore_index is None else index != ignore_index
        if validate:
            in_range = (index >= 0) & (index < num_classes)
            require(
                in_range if keep is None else in_range | ~keep,
                f"targets must be class indices in [0, {num_classes}) (or ignore_index={ignore_index})",
            )
        return x, dim, kind, index, alpha, gamma, reduction, keep
    if ignore_index is not None:
        raise ValueError(
            "ignore_index applies only to integer class-index targets, not to probability targets"
        )
    y = raw.to(device=x.device)  # converted to the compute dtype inside the Function
    if validate:
        check_unit_interval(y.to(compute_dtype(x.dtype)), "targets")
    return x, dim, kind, y, alpha, gamma, reduction, None
