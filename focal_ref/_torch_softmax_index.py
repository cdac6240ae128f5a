"""Class-index targets of the softmax focal loss in :mod:`focal_ref.torch`: (loss, d loss / d input).

The formulas are the reference's (:mod:`focal_ref._softmax`) for integer targets, written in torch ops;
the math is that of Lin et al. 2017, https://arxiv.org/abs/1708.02002. One exponential pass, one sum of
the other classes per sample, and the derivative as K f (K of the logits' shape, f per sample); the
per-sample terms (loss, weight) in a branch-free form where the inputs allow it, a guarded one elsewhere.
Two classes go to :mod:`focal_ref._torch_two_class`; probability targets to
:func:`focal_ref._torch_softmax.softmax_prob_kernel`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._torch_kernels import Pair, min_is, power, scalar, wrapped, zero_at
from ._torch_softmax import focal_h, index_weights, zero_weight_masked


def _exp_shift(x: torch.Tensor, dim: int, shifted: bool = False) -> torch.Tensor:
    """A shift m for exp(x - m) along ``dim``: first the 0-d zero (CPU), the row max off the CPU, under
    torch.func and torch.compile, or when ``shifted``.

    With m = 0 the exponentials need no max over the class axis (a slow reduction for a small class
    count) and no subtraction pass; whether that was safe is read afterwards from the per-sample sums
    (:func:`_unshifted_failed`), and the few inputs where it was not are redone with the row max.
    """
    if not shifted and x.device.type == "cpu" and not torch.compiler.is_compiling() and not wrapped(x):
        return x.new_zeros(())
    return x.amax(dim, keepdim=True)


def _unshifted_failed(shift: torch.Tensor, total: torch.Tensor) -> bool:
    """Whether unshifted exponentials overflowed a sample's sum s, or left it so small that the classes
    that matter (p_c >= eps) may be subnormal: then the row max must shift them."""
    if shift.ndim != 0 or total.numel() == 0:
        return False
    info = torch.finfo(total.dtype)
    low, high = torch.aminmax(total)
    return not (float(low) >= info.tiny / info.eps and float(high) < math.inf)  # NaN: redo too


def _factor_underflows(shift: torch.Tensor, f: torch.Tensor, wg: torch.Tensor) -> bool:
    """Whether f = wg_t / s went subnormal where wg_t did not (unshifted sums s can be large, up to the
    dtype's max): then K / s is formed first (p_j, normal), and times wg_t. With the row max as shift
    s <= C, and f is subnormal only where the whole gradient row is."""
    tiny = torch.finfo(f.dtype).tiny
    if shift.ndim != 0 or f.numel() == 0 or not min_is(f, tiny):  # the common case: one cheap min
        return False
    return bool(((f < tiny) & (wg > 0)).any())


def softmax_index_factored(
    x: torch.Tensor,
    index: torch.Tensor,
    alpha: Sequence[float] | None,
    ignore_index: int | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
    shifted: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(loss, K, f) with dFL/dx = K * f: K of the logits' shape, f per sample (``dim`` kept, size 1).

    FL = -alpha_t u_t^gamma log p_t; dFL/dx_j = wg_t p_j for j != t and -wg_t u_t at t, with
    wg_t = alpha_t u_t^gamma (1 + gamma h_t), h_t = -p_t log p_t / u_t in [0, 1] (its limit 1 where
    u_t = 0): the reference's g_c without 0^(gamma-1).

    One exponential pass e = exp(x - m) (m = 0 first, the row max where the sums show it was needed,
    :func:`_exp_shift`), e_t set to 0, and one sum: S = sum_{c != t} e_c, s = S + e_t, u_t = S / s
    (1 - p_t without cancellation, as the reference's sum of the other classes), p_t = e_t / s; the
    rest per sample (:func:`_index_terms`). K = e with K_t = -S, f = wg_t / s (or K / s and wg_t where
    wg_t / s would be subnormal, :func:`_factor_underflows`): the derivative is never multiplied out in
    the forward pass. ``scale`` multiplies the loss and f (the mean's 1/N).
    """
    t, alpha_t = _target_and_weight(index, alpha, ignore_index, x, dim)
    shift = _exp_shift(x, dim, shifted)
    e = torch.sub(x, shift).exp_() if shift.ndim else torch.exp(x)
    e_t = e.gather(dim, t)
    others = zero_at(e, dim, t).sum(dim, keepdim=True)
    total = others + e_t
    if _unshifted_failed(shift, total):
        return softmax_index_factored(x, index, alpha, ignore_index, gamma, dim, need_grad, scale, True)
    loss, wg = _index_terms(
        lambda: x.gather(dim, t), shift, e_t, others, alpha_t, gamma, dim, need_grad, scale, total
    )
    if wg is None:
        return loss, None, None
    k = e.scatter_(dim, t, others.neg())
    f = wg / total
    if _factor_underflows(shift, f, wg):
        return loss, k.div_(total), wg
    return loss, k, f


def _target_and_weight(index, alpha, ignore_index, x, dim) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(t, alpha_t), ``dim`` kept: ignored samples point at class 0 with weight 0; no weight: None."""
    if alpha is None and ignore_index is None:
        return index.unsqueeze(dim), None  # no per-sample weight: no tensor of ones
    safe, alpha_t = index_weights(index, alpha, ignore_index, x)
    return safe.unsqueeze(dim), alpha_t.unsqueeze(dim)


def _index_terms(
    x_t, shift, e_t, others, alpha_t, gamma: float, dim: int, need_grad: bool, scale: float, total
):
    """(loss, wg_t) per sample from e_t = exp(x_t - m), S = the other classes' sum and s = S + e_t
    (``x_t()``: x_t).

    With r = S / e_t: -log p_t = log1p(r), u_t = S / s (1 - p_t without cancellation) and
    h_t = -p_t log p_t / u_t = log1p(r) / r, so wg_t = alpha_t u_t^gamma (1 + gamma log1p(r) / r)
    (``None`` without ``need_grad``): accurate at both ends without a branch. Where that form does not
    hold (r = 0: h's limit 1; e_t subnormal or p_t below the smallest normal, where r may overflow) the
    guarded form (:func:`_guarded_index_terms`) is taken; it is also the one under torch.func and
    torch.compile and off the CPU, where the values are not read.
    """
    ratio = torch.div(others, e_t)
    if _ratio_in_range(ratio, e_t):
        minus_log_p_t = torch.log1p(ratio)
        weight = _index_weight(torch.div(others, total), alpha_t, gamma, scale)
        loss = (weight * minus_log_p_t).squeeze(dim)
        if not need_grad:
            return loss, None
        if gamma != 0.0:  # 1 + gamma log1p(r) / r in one pass
            weight = weight * torch.addcdiv(scalar(1.0, ratio), minus_log_p_t, ratio, value=gamma)
        return loss, weight
    return _guarded_index_terms(x_t, shift, e_t, others, alpha_t, gamma, dim, need_grad, scale, total)


def _ratio_in_range(ratio: torch.Tensor, e_t: torch.Tensor) -> bool:
    """Whether every r = S / e_t is > 0 with e_t normal and p_t = 1 / (1 + r) at least 4 times the
    smallest normal (read on CPU only; False elsewhere: the guarded form)."""
    if ratio.device.type != "cpu" or torch.compiler.is_compiling() or wrapped(ratio) or ratio.numel() == 0:
        return False
    tiny = torch.finfo(ratio.dtype).tiny
    low, high = torch.aminmax(ratio)
    return float(low) > 0.0 and float(high) < 0.25 / tiny and not min_is(e_t, tiny)


def _index_weight(u_t: torch.Tensor, alpha_t, gamma: float, scale: float) -> torch.Tensor:
    """alpha_t u_t^gamma times ``scale``, as a tensor (of ones where every factor is 1)."""
    weight = power(u_t, gamma)
    if alpha_t is not None:
        weight = alpha_t if weight is None else weight * alpha_t
    if weight is None:
        weight = torch.ones_like(u_t)
    return weight * scale if scale != 1.0 else weight


def _guarded_index_terms(
    x_t, shift, e_t, others, alpha_t, gamma: float, dim: int, need_grad: bool, scale: float, total
):
    """:func:`_index_terms` where r = 0, e_t is subnormal or p_t is below the smallest normal.

    log p_t = -log1p(S / e_t) except where e_t is subnormal or 0 or p_t below the smallest normal (the
    ratio may overflow), where it comes from the logits, (x_t - m) - log s; h_t from :func:`focal_h`
    (its limits where u_t = 0 or p_t = 0).
    """
    u_t = others / total
    p_t = e_t / total
    minus_log_p_t = torch.div(others, e_t).log1p_()
    tiny = torch.finfo(p_t.dtype).tiny
    if min_is(e_t, tiny) or min_is(p_t, tiny):  # e_t subnormal, or S / e_t may overflow: from the logits
        exact = torch.log(total).sub_(x_t() - shift)
        minus_log_p_t = torch.where((e_t < tiny) | (p_t < tiny), exact, minus_log_p_t)
    weight = _index_weight(u_t, alpha_t, gamma, scale)
    loss = zero_weight_masked(weight * minus_log_p_t, alpha_t).squeeze(dim)
    if not need_grad:
        return loss, None
    if gamma != 0.0:
        weight = weight * focal_h(p_t, minus_log_p_t.neg(), u_t).mul_(gamma).add_(1.0)
    return loss, weight


def softmax_index_kernel(
    x: torch.Tensor,
    index: torch.Tensor,
    alpha: Sequence[float] | None,
    ignore_index: int | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
    out: torch.Tensor | None = None,
) -> Pair:
    """Class-index targets: (loss, dFL/dx) of :func:`softmax_index_factored`, multiplied out (into
    ``out`` if given: a view of the caller's gradient buffer; two classes:
    :func:`focal_ref._torch_two_class.two_class_index_kernel`)."""
    if x.shape[dim] == 2:
        from ._torch_two_class import two_class_index_kernel  # imports this module: at call time

        return two_class_index_kernel(x, index, alpha, ignore_index, gamma, dim, need_grad, scale, out)
    loss, k, f = softmax_index_factored(x, index, alpha, ignore_index, gamma, dim, need_grad, scale)
    if k is None or f is None:
        return loss, None
    return loss, (k.mul_(f) if out is None else torch.mul(k, f, out=out))
