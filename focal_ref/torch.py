"""Focal loss for PyTorch (Lin et al. 2017, https://arxiv.org/abs/1708.02002), tested against the
float64 reference (:mod:`focal_ref`).

The same functions, keyword arguments and conventions as the reference: ``alpha`` weights the positive
class, reductions are ``"none"``, ``"mean"``, ``"sum"``, and the softmax class axis is ``dim`` (default
1, as in :func:`torch.nn.functional.cross_entropy`).

* Any device, any float dtype. float64 and float32 are computed natively; float16 and bfloat16 in
  float32, returned in the input's dtype. "mean" and "sum" are accumulated in float64.
* Log space throughout: -log p = relu(-x) + log1p(e^-|x|), 1 - p = sigmoid(-x), log-softmax with log1p
  for the dominant class. Loss, gradient and second derivative are finite for every finite logit and
  every gamma >= 0.
* Every way of differentiating works and gives the reference's numbers: ``backward()``, double
  backward (``create_graph=True``), ``torch.autograd.gradcheck``/``gradgradcheck``,
  ``torch.autograd.functional.hessian``, and ``torch.func.grad``, ``vmap``, ``jacrev``, ``jacfwd`` and
  ``jvp``. The default first-order path keeps one tensor, the closed-form derivative (4 bytes per
  element in float32, against ~24 for autograd of the textbook formula); the paths and what each keeps
  are listed in :mod:`focal_ref._torch_autograd`.
* On CPU the elementwise losses of more than 512k elements run in cache-sized blocks.
  ``sigmoid_focal_loss(..., fused=True)`` runs through ``torch.compile`` (opt-in).
* Targets are constants: targets that require grad raise ``ValueError``. Hyperparameters and shapes
  are validated eagerly (no device synchronisation); value checks run only with ``validate=True``.

About 450 lines, above the ~400 guide: seven public functions, each with its Google docstring and
doctest; the computation lives in the ``_torch_*`` modules: ``_torch_inputs`` (checks),
``_torch_kernels`` (loss and first derivative; the softmax ones in ``_torch_softmax``,
``_torch_softmax_index`` and ``_torch_two_class``, the CPU blocks in ``_torch_blocks``),
``_torch_hessian`` (second derivatives), ``_torch_autograd`` (the Functions), ``_torch_fused``, and
``_torch_modules`` (the ``nn.Module`` classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch

from . import _torch_autograd as _ag
from ._checks import check_beta, check_gamma
from ._torch_inputs import require, sigmoid_extras, sigmoid_inputs, softmax_inputs

Reduction = Literal["none", "mean", "sum"]
ClassAlpha = float | Sequence[float] | None

__all__ = [
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "binary_focal_loss",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
    "categorical_focal_loss",
    "sigmoid_focal_loss_star",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
    "BinaryFocalLoss",
    "CategoricalFocalLoss",
    "num_positives",
    "PositiveNormalizer",
]


def _keep_grad(keep: str) -> bool:
    """``keep`` as Spec.keep_grad: "derivative" keeps D, "inputs" keeps nothing and recomputes it."""
    if not isinstance(keep, str) or keep not in ("derivative", "inputs"):
        raise ValueError(f"keep must be 'derivative' or 'inputs', got {keep!r}")
    return keep == "derivative"


def _elementwise(
    family: str, x: torch.Tensor, y: torch.Tensor, reduction: str, **params: Any
) -> torch.Tensor:
    """An elementwise loss through the autograd Function, reduced, in the input's dtype."""
    mean_of = max(x.numel(), 1) if reduction == "mean" else 0  # the mean taken inside the Function
    spec = _ag.Spec(family, summed=reduction != "none", mean_of=mean_of, **params)
    return _ag.apply(x, y, spec).to(x.dtype)


def _weighted(
    family, x, y, reduction, alpha, gamma, weight, pos_weight, ignore_index, validate, keep_grad=True
) -> torch.Tensor:
    """The sigmoid/binary loss with API decision 2's weight, pos_weight and ignore_index."""
    y, weight, pos_weight, keep = sigmoid_extras(x, y, weight, pos_weight, ignore_index, validate)
    spec = _ag.Spec(family, alpha=alpha, gamma=gamma, summed=reduction != "none", keep_grad=keep_grad)
    loss = _ag.apply(x, y, spec, weight, pos_weight)
    if reduction == "mean":
        loss = loss / (max(x.numel(), 1) if keep is None else keep.sum().clamp_min(1))
    return loss.to(x.dtype)


def _per_sample(x: torch.Tensor, target: torch.Tensor, reduction: str, keep, **params: Any) -> torch.Tensor:
    """A per-sample (softmax) loss, reduced (summed in float64 inside the Function), in the input's dtype."""
    samples = x.numel() // max(x.shape[params["dim"]], 1)
    folded = (
        reduction == "mean" and keep is None and params["kind"] == "indices" and params["family"] == "softmax"
    )
    scale = 1.0 / max(samples, 1) if folded else 1.0
    # the other means without ignored samples are taken inside the Function (Spec.mean_of)
    mean_of = max(samples, 1) if reduction == "mean" and keep is None and not folded else 0
    spec = _ag.Spec(summed=reduction != "none", scale=scale, mean_of=mean_of, **params)
    loss = _ag.apply(x, target, spec)
    if reduction == "mean" and keep is not None:
        loss = loss / keep.sum().clamp_min(1)  # 0 / 1 = 0 when every sample is ignored
    return loss.to(x.dtype)


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    validate: bool = False,
    fused: bool = False,
    weight: torch.Tensor | float | None = None,
    pos_weight: torch.Tensor | float | None = None,
    ignore_index: float | None = None,
    keep: Literal["derivative", "inputs"] = "derivative",
) -> torch.Tensor:
    r"""Sigmoid focal loss of logits, elementwise (binary or multi-label).

    .. math::

        p = \sigma(x),\quad p_t = p\,y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y),\qquad
        \mathrm{FL} = \alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE},\quad
        \mathrm{CE} = -[y\log p + (1-y)\log(1-p)]

    (Lin et al. 2017, https://arxiv.org/abs/1708.02002, eq. 5, in the torchvision/Keras form for soft
    labels). The backward is the reference's closed form
    :math:`\alpha_t m^\gamma[\gamma(1-2y)\,r\,\mathrm{CE} + (p-y)]`, :math:`m = 1-p_t`,
    :math:`r = p(1-p)/m`, computed in the forward pass and kept as the only saved tensor.

    Args:
        logits: floating tensor of any shape (any device; float16/bfloat16 are computed in float32).
        targets: tensor of the same shape, values in [0, 1] (soft labels allowed); must not require grad.
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check that the logits are finite and the targets in [0, 1] (synchronises).
        fused: compute through ``torch.compile`` (one fused kernel; same formulas, same saved tensor).
            The first call compiles; falls back to eager with a warning if compiling fails.
        weight: per-element weights w_i >= 0, broadcastable to the logits' shape: FL_i -> w_i FL_i
            (the "mean" still divides by the number of non-ignored elements).
        pos_weight: w+ >= 0, broadcastable (typically per class): CE = -[w+ y log p + (1-y) log(1-p)],
            as ``BCEWithLogitsLoss(pos_weight=)``.
        ignore_index: a number outside [0, 1] (e.g. -1): elements whose target equals it give 0 (also
            in the gradient) and leave the mean's count (0.0 when all are ignored).
        keep: what backward gets from the forward pass: ``"derivative"`` (the default: D, 4 bytes per
            element in float32; backward hands it over) or ``"inputs"`` (nothing beyond the logits and
            targets autograd holds anyway; backward recomputes D, at a time cost the book's "Making it
            fast" chapter measures). Same values either way.

    Returns:
        A tensor of the logits' dtype: elementwise (``"none"``) or 0-d.

    Raises:
        TypeError: integer logits, complex targets, or a hyperparameter of the wrong type.
        ValueError: shapes differ, a hyperparameter is out of range, targets require grad, or (with
            ``validate``) a value check fails.

    Example:
        >>> import torch
        >>> from focal_ref.torch import sigmoid_focal_loss
        >>> x, y = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])
        >>> print(f"{float(sigmoid_focal_loss(x, y, reduction='sum')):.6f}")
        0.017444
    """
    x, y, alpha, gamma, reduction = sigmoid_inputs(
        logits, targets, alpha, gamma, reduction, validate, ignore_index=ignore_index
    )
    keep_grad = _keep_grad(keep)
    if weight is None and pos_weight is None and ignore_index is None:
        return _elementwise(
            "sigmoid", x, y, reduction, alpha=alpha, gamma=gamma, fused=bool(fused), keep_grad=keep_grad
        )
    return _weighted(
        "sigmoid", x, y, reduction, alpha, gamma, weight, pos_weight, ignore_index, validate, keep_grad
    )


def sigmoid_focal_loss_grad(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    validate: bool = False,
    weight: torch.Tensor | float | None = None,
    pos_weight: torch.Tensor | float | None = None,
    ignore_index: float | None = None,
) -> torch.Tensor:
    """Elementwise d FL_i / d x_i of :func:`sigmoid_focal_loss`, without autograd.

    Args:
        logits: as in :func:`sigmoid_focal_loss`.
        targets: as in :func:`sigmoid_focal_loss`.
        alpha: as in :func:`sigmoid_focal_loss`.
        gamma: as in :func:`sigmoid_focal_loss`.
        validate: as in :func:`sigmoid_focal_loss`.
        weight: as in :func:`sigmoid_focal_loss`.
        pos_weight: as in :func:`sigmoid_focal_loss`.
        ignore_index: as in :func:`sigmoid_focal_loss` (0 at ignored elements).

    Returns:
        A plain tensor of the logits' shape and dtype, detached from any graph.

    Raises:
        TypeError, ValueError: as :func:`sigmoid_focal_loss`.

    Example:
        >>> import torch
        >>> from focal_ref.torch import sigmoid_focal_loss_grad
        >>> print(f"{float(sigmoid_focal_loss_grad(torch.tensor([0.0]), torch.tensor([1.0]))[0]):.6f}")
        -0.074572
    """
    x, y, alpha, gamma, _ = sigmoid_inputs(
        logits, targets, alpha, gamma, "none", validate, ignore_index=ignore_index
    )
    y, weight, pos_weight, _ = sigmoid_extras(x, y, weight, pos_weight, ignore_index, validate)
    _, grad = _ag.kernel_grad(_ag.Spec("sigmoid", alpha=alpha, gamma=gamma), x, y, weight, pos_weight)
    return grad.to(x.dtype)


def binary_focal_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    validate: bool = False,
    weight: torch.Tensor | float | None = None,
    pos_weight: torch.Tensor | float | None = None,
    ignore_index: float | None = None,
) -> torch.Tensor:
    r"""Focal loss of probabilities p = sigma(x), elementwise: the formula of :func:`sigmoid_focal_loss`.

    Takes the math at face value, as the reference does: a probability of 0 on a positive (or 1 on a
    negative) gives +inf; terms with zero target weight (:math:`y\alpha_t` or :math:`(1-y)\alpha_t`)
    are 0. Prefer :func:`sigmoid_focal_loss`, which keeps full accuracy as p -> 1. Lin et al. 2017,
    https://arxiv.org/abs/1708.02002.

    Args:
        probs: floating tensor of probabilities in [0, 1]; the gradient is with respect to it.
        targets: tensor of the same shape, values in [0, 1]; must not require grad.
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check probs and targets lie in [0, 1] (synchronises).
        weight: as in :func:`sigmoid_focal_loss`.
        pos_weight: as in :func:`sigmoid_focal_loss`.
        ignore_index: as in :func:`sigmoid_focal_loss`.

    Returns:
        A tensor of the probs' dtype: elementwise (``"none"``) or 0-d.

    Raises:
        TypeError, ValueError: as :func:`sigmoid_focal_loss`.

    Example:
        >>> import torch
        >>> from focal_ref.torch import binary_focal_loss
        >>> print(f"{float(binary_focal_loss(torch.tensor([0.9]), torch.tensor([1.0]))[0]):.6f}")
        0.000263
    """
    p, y, alpha, gamma, reduction = sigmoid_inputs(
        probs, targets, alpha, gamma, reduction, validate, "probs", ignore_index=ignore_index
    )
    if weight is None and pos_weight is None and ignore_index is None:
        return _elementwise("binary", p, y, reduction, alpha=alpha, gamma=gamma)
    return _weighted("binary", p, y, reduction, alpha, gamma, weight, pos_weight, ignore_index, validate)


def sigmoid_focal_loss_star(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float = 2.0,
    beta: float = 1.0,
    alpha: float | None = 0.25,
    reduction: Reduction = "none",
    validate: bool = False,
) -> torch.Tensor:
    r"""FL*, the paper's alternative focal loss (Lin et al. 2017, https://arxiv.org/abs/1708.02002,
    Appendix A), elementwise.

    .. math::

        \mathrm{FL}^* = \alpha_t\,\mathrm{softplus}(-(\gamma x_t + \beta))/\gamma,\qquad x_t = (2y-1)\,x.

    Args:
        logits: floating tensor of any shape.
        targets: hard labels (0 or 1; checked only with ``validate=True``), the logits' shape.
        gamma: > 0.
        beta: any finite real number.
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check finite logits and hard targets (synchronises).

    Returns:
        A tensor of the logits' dtype: elementwise (``"none"``) or 0-d.

    Raises:
        TypeError, ValueError: as :func:`sigmoid_focal_loss`; ``gamma`` must be > 0.

    Example:
        >>> import torch
        >>> from focal_ref.torch import sigmoid_focal_loss_star
        >>> print(f"{float(sigmoid_focal_loss_star(torch.tensor([1.0]), torch.tensor([1.0]))[0]):.6f}")
        0.006073
    """
    gamma = check_gamma(gamma, positive=True)
    beta = check_beta(beta)
    x, y, alpha, _, reduction = sigmoid_inputs(logits, targets, alpha, gamma, reduction, validate)
    if validate:
        require((y == 0) | (y == 1), "targets must be hard labels (0 or 1) for FL*")
    return _elementwise("star", x, y, reduction, alpha=alpha, gamma=gamma, beta=beta)


def softmax_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    dim: int = 1,
    ignore_index: int | None = None,
    validate: bool = False,
    keep: Literal["derivative", "inputs"] = "derivative",
) -> torch.Tensor:
    r"""Softmax (multi-class) focal loss, one value per sample.

    .. math:: \mathrm{FL} = -\sum_c y_c\,\alpha_c\,(1-p_c)^\gamma \log p_c,\qquad p = \mathrm{softmax}(x)

    (Lin et al. 2017, https://arxiv.org/abs/1708.02002). The backward is the reference's closed form
    :math:`\partial\mathrm{FL}/\partial x_j = p_j\sum_{c\ne j} w_c g_c - w_j g_j u_j`
    (:math:`w_c = y_c\alpha_c`, :math:`u_c = 1-p_c`, :math:`g_c = u_c^\gamma(1+\gamma h_c)`,
    :math:`h_c = -p_c\log p_c/u_c`), computed in the forward pass and kept as the only saved tensor.

    Args:
        logits: floating tensor with the class axis ``dim`` of size C, e.g. (N, C) or (N, C, H, W).
        targets: integer class indices (the logits' shape without ``dim``) or probabilities (the logits'
            shape; one-hot, bool or soft, entries in [0, 1], not renormalised). Must not require grad.
        alpha: ``None`` (every class weight 1), one number in [0, 1], or a sequence of C weights in [0, 1].
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"`` (per sample), ``"mean"`` (over non-ignored samples; 0 if all are ignored)
            or ``"sum"``.
        dim: the class axis (any integer type).
        ignore_index: with integer targets only: those samples give 0 and leave the mean's denominator.
        validate: also check finite logits and targets in range (synchronises).
        keep: ``"derivative"`` (default) or ``"inputs"``, as in :func:`sigmoid_focal_loss`.

    Returns:
        Per-sample losses (the logits' shape without ``dim``) or a 0-d tensor, in the logits' dtype.

    Raises:
        TypeError: integer logits, float index targets, or a hyperparameter of the wrong type.
        ValueError: a target shape that fits neither kind, ``alpha`` of the wrong length, a bad
            hyperparameter, targets that require grad, or (with ``validate``) a value check.

    Example:
        >>> import torch
        >>> from focal_ref.torch import softmax_focal_loss
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> print(f"{float(softmax_focal_loss(logits, torch.tensor([0]))[0]):.6f}")
        0.004144
    """
    keep_grad = _keep_grad(keep)
    x, dim, kind, target, alpha, gamma, mode, kept = softmax_inputs(
        logits, targets, alpha, gamma, reduction, dim, ignore_index, validate, "logits"
    )
    return _per_sample(
        x, target, mode, kept, family="softmax", kind=kind, alpha=alpha, gamma=gamma, dim=dim,
        ignore_index=ignore_index, keep_grad=keep_grad,
    )  # fmt: skip


def softmax_focal_loss_grad(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    dim: int = 1,
    ignore_index: int | None = None,
    validate: bool = False,
) -> torch.Tensor:
    """d FL_n / d x_{n,j} of :func:`softmax_focal_loss` (reduction ``"none"``), without autograd.

    Args:
        logits: as in :func:`softmax_focal_loss`.
        targets: as in :func:`softmax_focal_loss`.
        alpha: as in :func:`softmax_focal_loss`.
        gamma: as in :func:`softmax_focal_loss`.
        dim: as in :func:`softmax_focal_loss`.
        ignore_index: as in :func:`softmax_focal_loss`.
        validate: as in :func:`softmax_focal_loss`.

    Returns:
        A plain tensor of the logits' shape and dtype, detached from any graph.

    Raises:
        TypeError, ValueError: as :func:`softmax_focal_loss`.

    Example:
        >>> import torch
        >>> from focal_ref.torch import softmax_focal_loss_grad
        >>> grad = softmax_focal_loss_grad(torch.tensor([[0.0, 0.0]]), torch.tensor([0]))
        >>> print(f"{float(grad[0, 0]):.6f}")
        -0.298287
    """
    x, dim, kind, target, alpha, gamma, _, _ = softmax_inputs(
        logits, targets, alpha, gamma, "none", dim, ignore_index, validate, "logits"
    )
    spec = _ag.Spec("softmax", kind=kind, alpha=alpha, gamma=gamma, dim=dim, ignore_index=ignore_index)
    return _ag.kernel_grad(spec, x, target)[1].to(x.dtype)


def categorical_focal_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: ClassAlpha = None,
    gamma: float = 2.0,
    reduction: Reduction = "none",
    dim: int = 1,
    ignore_index: int | None = None,
    validate: bool = False,
) -> torch.Tensor:
    r"""Softmax focal loss of probabilities, :math:`-\sum_c y_c\alpha_c(1-p_c)^\gamma\log p_c`, per sample.

    ``probs`` are used as given (entries in [0, 1], not renormalised; ``validate=True`` checks them); a
    zero probability on a class with positive target weight gives +inf. The gradient is with respect to
    ``probs``. Lin et al. 2017, https://arxiv.org/abs/1708.02002.

    Args:
        probs: floating tensor of probabilities with the class axis ``dim``.
        targets: as in :func:`softmax_focal_loss`.
        alpha: as in :func:`softmax_focal_loss`.
        gamma: as in :func:`softmax_focal_loss`.
        reduction: as in :func:`softmax_focal_loss`.
        dim: as in :func:`softmax_focal_loss`.
        ignore_index: as in :func:`softmax_focal_loss`.
        validate: as in :func:`softmax_focal_loss`.

    Returns:
        Per-sample losses or a 0-d tensor, in the probs' dtype.

    Raises:
        TypeError, ValueError: as :func:`softmax_focal_loss`.

    Example:
        >>> import torch
        >>> from focal_ref.torch import categorical_focal_loss
        >>> print(f"{float(categorical_focal_loss(torch.tensor([[0.8, 0.2]]), torch.tensor([0]))[0]):.6f}")
        0.008926
    """
    p, dim, kind, target, alpha, gamma, mode, keep = softmax_inputs(
        probs, targets, alpha, gamma, reduction, dim, ignore_index, validate, "probs"
    )
    return _per_sample(
        p, target, mode, keep, family="categorical", kind=kind, alpha=alpha, gamma=gamma, dim=dim,
        ignore_index=ignore_index,
    )  # fmt: skip


from ._torch_modules import BinaryFocalLoss, CategoricalFocalLoss, SigmoidFocalLoss, SoftmaxFocalLoss  # noqa: E402
from .distributed import PositiveNormalizer, num_positives  # noqa: E402  (data-parallel num_pos)
