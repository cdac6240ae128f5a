"""The ``torch.nn.Module`` classes of :mod:`focal_ref.torch`: hold validated hyperparameters and call
the functional losses (Lin et al. 2017, https://arxiv.org/abs/1708.02002)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ._checks import (
    check_binary_alpha,
    check_class_alpha_spec,
    check_gamma,
    check_ignore_index,
    check_reduction,
)
from ._torch_inputs import check_dim

if TYPE_CHECKING:
    from .torch import ClassAlpha, Reduction

# focal_ref.torch imports this module at its end, after its functions exist; importing them from here at
# module level would be circular when this module is imported first (as the doctest collector does).
# _losses() looks them up at call time instead.


def _losses() -> Any:
    from . import torch as losses

    return losses


def _check_extra(value: Any, name: str) -> torch.Tensor | None:
    """``weight`` / ``pos_weight`` given to a constructor: None, or a tensor of real values, finite, >= 0.

    Numbers, lists and arrays become tensors of the default float dtype (integers too); a tensor is kept as
    given (``BCEWithLogitsLoss`` keeps its own), its values checked once here (a sync). Its shape is checked
    against the logits at each call.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number or tensor of them, got bool")
    try:
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{name} must be a real number or tensor of them, got {type(value).__name__}"
        ) from exc
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be real numbers, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    if tensor.requires_grad:
        raise ValueError(
            f"{name} must not require grad (it is a buffer, as in BCEWithLogitsLoss): pass .detach()"
        )
    if tensor.device.type != "meta" and not bool((torch.isfinite(tensor) & (tensor >= 0)).all()):
        raise ValueError(f"{name} must be finite and >= 0")
    return tensor


def _check_binary_ignore_index(ignore_index: Any) -> float | None:
    """The sigmoid family's ``ignore_index``: None, or a finite real number outside [0, 1] (e.g. -1)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Real):
        raise TypeError(f"ignore_index must be a real number or None, got {type(ignore_index).__name__}")
    value = float(ignore_index)
    if not math.isfinite(value) or 0.0 <= value <= 1.0:
        raise ValueError(
            f"ignore_index must be a finite number outside [0, 1] (e.g. -1), got {ignore_index!r}"
        )
    return value


class _FocalModule(torch.nn.Module):
    """Holds validated hyperparameters; ``forward(input, target)`` calls the functional loss."""

    _kwargs: dict[str, Any]

    def _function(self) -> Callable[..., torch.Tensor]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._function()(input, target, **self._kwargs)


class SigmoidFocalLoss(_FocalModule):
    r""":func:`focal_ref.torch.sigmoid_focal_loss` of logits as a Module; reduction defaults to ``"mean"``.

    .. math::

        \mathrm{FL}_i = w_i\,\alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE}_i,\qquad
        \mathrm{CE}_i = -[w_+ y_i \log p_i + (1-y_i)\log(1-p_i)]

    (Lin et al. 2017, https://arxiv.org/abs/1708.02002, with ``BCEWithLogitsLoss``'s ``weight`` and
    ``pos_weight``). ``weight`` and ``pos_weight`` are buffers, as in ``BCEWithLogitsLoss``: ``.to()`` moves
    and converts them and the ``state_dict`` holds them. With all three ``None`` the loss is the plain one.
    kornia's ``BinaryFocalLossWithLogits`` takes the same three arguments and gives the same values on hard
    labels, except that its (C,) weights act along dim 1 (here they broadcast from the right: pass
    (C, 1, 1) for a (N, C, H, W) map) and its ``"mean"`` keeps ignored elements in the count.

    Args:
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``; ``"mean"`` = sum_i FL_i / (number of non-ignored
            elements), unweighted in the count, 0.0 when every element is ignored.
        validate: check the values at every call (synchronises).
        fused: run through ``torch.compile`` (the plain loss only: with ``weight``, ``pos_weight`` or
            ``ignore_index`` the eager weighted path runs).
        weight: w_i >= 0, finite, a number or tensor broadcastable to the logits' shape: FL_i -> w_i FL_i.
        pos_weight: w_+ >= 0, finite, a number or tensor broadcastable to the logits (typically per class,
            shape (C,)): scales the positive term of CE, as ``BCEWithLogitsLoss(pos_weight=)``.
        ignore_index: a number outside [0, 1] (e.g. -1): elements whose target equals it give 0 (also in
            the gradient) and leave the mean's count.

    Raises:
        TypeError, ValueError: a hyperparameter of the wrong type or out of range (the message names it);
            the shapes of ``weight`` and ``pos_weight`` are checked against the logits at each call.

    Example:
        >>> import torch
        >>> from focal_ref.torch import SigmoidFocalLoss
        >>> print(f"{float(SigmoidFocalLoss()(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))):.6f}")
        0.008722
        >>> loss = SigmoidFocalLoss(pos_weight=torch.tensor([2.0, 1.0]), ignore_index=-1)
        >>> print(f"{float(loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, -1.0]]))):.6f}")
        0.000902
    """

    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(
        self,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        validate: bool = False,
        fused: bool = False,
        weight: torch.Tensor | float | None = None,
        pos_weight: torch.Tensor | float | None = None,
        ignore_index: float | None = None,
    ) -> None:
        super().__init__()
        self._kwargs = dict(
            alpha=check_binary_alpha(alpha),
            gamma=check_gamma(gamma),
            reduction=check_reduction(reduction),
            validate=bool(validate),
        )
        if fused:
            self._kwargs["fused"] = True
        ignore_index = _check_binary_ignore_index(ignore_index)
        if ignore_index is not None:
            self._kwargs["ignore_index"] = ignore_index
        self.register_buffer("weight", _check_extra(weight, "weight"))
        self.register_buffer("pos_weight", _check_extra(pos_weight, "pos_weight"))

    def _function(self) -> Callable[..., torch.Tensor]:
        return _losses().sigmoid_focal_loss

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._function()(input, target, weight=self.weight, pos_weight=self.pos_weight, **self._kwargs)


class BinaryFocalLoss(SigmoidFocalLoss):
    """Binary focal loss of probabilities, or of logits with ``from_logits=True``; as Keras's class.

    ``BinaryFocalLoss(from_logits=True)`` is :class:`SigmoidFocalLoss`: it computes
    :func:`focal_ref.torch.sigmoid_focal_loss` of the logits (full accuracy as p -> 1). With the default
    ``from_logits=False`` it computes :func:`focal_ref.torch.binary_focal_loss` of probabilities. Both take
    the math of :class:`SigmoidFocalLoss`, FL_i = w_i alpha_t (1-p_t)^gamma CE_i with
    CE_i = -[w_+ y_i log p_i + (1-y_i) log(1-p_i)] (https://arxiv.org/abs/1708.02002); ``weight`` and
    ``pos_weight`` are buffers.

    Args:
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"`` (the mean counts non-ignored elements).
        from_logits: the input is logits (True) or probabilities (False, the default).
        validate: check the values at every call (synchronises).
        weight: w_i >= 0, broadcastable to the input's shape: FL_i -> w_i FL_i.
        pos_weight: w_+ >= 0, broadcastable (typically per class): scales the positive term of CE.
        ignore_index: a number outside [0, 1]: elements with this target give 0 and leave the mean's count.

    Raises:
        TypeError, ValueError: a hyperparameter of the wrong type or out of range (the message names it).

    Example:
        >>> import torch
        >>> from focal_ref.torch import BinaryFocalLoss
        >>> print(f"{float(BinaryFocalLoss()(torch.tensor([0.9]), torch.tensor([1.0]))):.6f}")
        0.000263
        >>> loss = BinaryFocalLoss(weight=torch.tensor([2.0, 0.5]), reduction="sum")
        >>> print(f"{float(loss(torch.tensor([0.9, 0.2]), torch.tensor([1.0, 0.0]))):.6f}")
        0.003874
    """

    def __init__(
        self,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        from_logits: bool = False,
        validate: bool = False,
        weight: torch.Tensor | float | None = None,
        pos_weight: torch.Tensor | float | None = None,
        ignore_index: float | None = None,
    ) -> None:
        super().__init__(
            alpha=alpha,
            gamma=gamma,
            reduction=reduction,
            validate=validate,
            weight=weight,
            pos_weight=pos_weight,
            ignore_index=ignore_index,
        )
        self.from_logits = bool(from_logits)

    def _function(self) -> Callable[..., torch.Tensor]:
        return _losses().sigmoid_focal_loss if self.from_logits else _losses().binary_focal_loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, from_logits={self.from_logits}"


class SoftmaxFocalLoss(_FocalModule):
    """:func:`focal_ref.torch.softmax_focal_loss` of logits as a Module; ``reduction`` defaults to ``"mean"``.

    ``alpha`` is checked here as far as it can be without knowing C; its length is checked against the
    logits at the first call.

    Args:
        alpha: ``None``, one number in [0, 1], or a sequence of C per-class weights in [0, 1].
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        dim: the class axis (any integer type).
        ignore_index: with integer targets: samples with this label give 0 and leave the mean.
        validate: check the values at every call (synchronises).

    Raises:
        TypeError, ValueError: a hyperparameter of the wrong type or out of range.

    Example:
        >>> import torch
        >>> from focal_ref.torch import SoftmaxFocalLoss
        >>> print(f"{float(SoftmaxFocalLoss()(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]))):.6f}")
        0.004144
    """

    def __init__(
        self,
        alpha: ClassAlpha = None,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        dim: int = 1,
        ignore_index: int | None = None,
        validate: bool = False,
    ) -> None:
        super().__init__()
        self._kwargs = dict(
            alpha=check_class_alpha_spec(alpha),
            gamma=check_gamma(gamma),
            reduction=check_reduction(reduction),
            dim=check_dim(dim),
            ignore_index=check_ignore_index(ignore_index),
            validate=bool(validate),
        )

    def _function(self) -> Callable[..., torch.Tensor]:
        return _losses().softmax_focal_loss


class CategoricalFocalLoss(SoftmaxFocalLoss):
    """Categorical focal loss of probabilities, or of logits with ``from_logits=True``; as Keras's class.

    ``CategoricalFocalLoss(from_logits=True)`` is :class:`SoftmaxFocalLoss`: it computes
    :func:`focal_ref.torch.softmax_focal_loss` of the logits. With the default ``from_logits=False`` it
    computes :func:`focal_ref.torch.categorical_focal_loss` of probabilities (not renormalised).

    Args:
        alpha: ``None``, one number in [0, 1], or a sequence of C per-class weights in [0, 1].
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        dim: the class axis (any integer type).
        ignore_index: with integer targets: samples with this label give 0 and leave the mean.
        from_logits: the input is logits (True) or probabilities (False, the default).
        validate: check the values at every call (synchronises).

    Raises:
        TypeError, ValueError: a hyperparameter of the wrong type or out of range.

    Example:
        >>> import torch
        >>> from focal_ref.torch import CategoricalFocalLoss
        >>> print(f"{float(CategoricalFocalLoss()(torch.tensor([[0.8, 0.2]]), torch.tensor([0]))):.6f}")
        0.008926
    """

    def __init__(
        self,
        alpha: ClassAlpha = None,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        dim: int = 1,
        ignore_index: int | None = None,
        from_logits: bool = False,
        validate: bool = False,
    ) -> None:
        super().__init__(
            alpha=alpha,
            gamma=gamma,
            reduction=reduction,
            dim=dim,
            ignore_index=ignore_index,
            validate=validate,
        )
        self.from_logits = bool(from_logits)

    def _function(self) -> Callable[..., torch.Tensor]:
        return _losses().softmax_focal_loss if self.from_logits else _losses().categorical_focal_loss

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, from_logits={self.from_logits}"
