"""The ``torch.nn.Module`` classes of :mod:`focal_ref.torch`: hold validated hyperparameters and call
the functional losses (Lin et al. 2017, https://arxiv.org/abs/1708.02002)."""

from __future__ import annotations

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
    """:func:`focal_ref.torch.sigmoid_focal_loss` of logits as a Module; ``reduction`` defaults to ``"mean"``.

    Args:
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: check the values at every call (synchronises).
        fused: run through ``torch.compile``.

    Raises:
        TypeError, ValueError: a hyperparameter of the wrong type or out of range.

    Example:
        >>> import torch
        >>> from focal_ref.torch import SigmoidFocalLoss
        >>> print(f"{float(SigmoidFocalLoss()(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))):.6f}")
        0.008722
    """

    def __init__(
        self,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        validate: bool = False,
        fused: bool = False,
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

    def _function(self) -> Callable[..., torch.Tensor]:
        return _losses().sigmoid_focal_loss


class BinaryFocalLoss(SigmoidFocalLoss):
    """Binary focal loss of probabilities, or of logits with ``from_logits=True``; as Keras's class.

    ``BinaryFocalLoss(from_logits=True)`` is :class:`SigmoidFocalLoss`: it computes
    :func:`focal_ref.torch.sigmoid_focal_loss` of the logits (full accuracy as p -> 1). With the default
    ``from_logits=False`` it computes :func:`focal_ref.torch.binary_focal_loss` of probabilities.

    Args:
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        from_logits: the input is logits (True) or probabilities (False, the default).
        validate: check the values at every call (synchronises).

    Raises:
        TypeError, ValueError: a hyperparameter of the wrong type or out of range.

    Example:
        >>> import torch
        >>> from focal_ref.torch import BinaryFocalLoss
        >>> print(f"{float(BinaryFocalLoss()(torch.tensor([0.9]), torch.tensor([1.0]))):.6f}")
        0.000263
    """

    def __init__(
        self,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        reduction: Reduction = "mean",
        from_logits: bool = False,
        validate: bool = False,
    ) -> None:
        super().__init__(alpha=alpha, gamma=gamma, reduction=reduction, validate=validate)
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
