"""The softmax focal loss for two classes, without gather or scatter along the class axis.

Along a class axis of size 2, PyTorch's CPU gather and scatter cost several elementwise passes each, and
its ``where`` on a random mask is branchy; here the two classes are views and the choice of the target's
class is exact arithmetic. Index targets keep the general kernel's values (:mod:`focal_ref._torch_softmax`);
probability targets are functions of z = x_1 - x_0. Lin et al. 2017, https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._torch_kernels import Pair, min_is, power, wrapped
from ._torch_softmax import (
    _exp_shift,
    _factor_underflows,
    _index_terms,
    _target_and_weight,
    _unshifted_failed,
)


def two_class_index_kernel(
    x: torch.Tensor,
    index: torch.Tensor,
    alpha: Sequence[float] | None,
    ignore_index: int | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
    shifted: bool = False,
) -> Pair:
    """:func:`softmax_index_factored` for C = 2, with the two classes as views and no gather or scatter.

    The same values (S = e_o, the one other class), picked by an exact ``lerp`` with a 0/1 weight:
    along a class axis of size 2, PyTorch's CPU gather and scatter cost several elementwise passes
    each. dFL/dx_o = S f and dFL/dx_t = -S f: one per-sample value, written once into the derivative.
    """
    t, alpha_t = _target_and_weight(index, alpha, ignore_index, x, dim)
    # the choice of class as arithmetic on a 0/1 float (exact: lerp(a, b, 0) = a, lerp(a, b, 1) = b for
    # finite a, b): torch.where on a random mask runs branchy and costs ~10 elementwise passes on CPU
    is_1 = (t == 1).to(x.dtype)
    x0, x1 = x.narrow(dim, 0, 1), x.narrow(dim, 1, 1)
    shift = _exp_shift(x, dim, shifted)
    e0, e1 = (torch.sub(v, shift).exp_() if shift.ndim else torch.exp(v) for v in (x0, x1))
    if _unshifted_failed(shift, e0 + e1):
        return two_class_index_kernel(x, index, alpha, ignore_index, gamma, dim, need_grad, scale, True)
    e_t, others = torch.lerp(e0, e1, is_1), torch.lerp(e1, e0, is_1)
    loss, wg = _index_terms(
        lambda: torch.where(is_1 > 0, x1, x0), shift, e_t, others, alpha_t, gamma, dim, need_grad, scale
    )
    if wg is None:
        return loss, None
    total = others + e_t
    f = wg / total
    d_o = others.div_(total).mul_(wg) if _factor_underflows(shift, f, wg) else others.mul_(f)  # S f
    sign = is_1.mul_(-2.0).add_(1.0)  # dFL/dx_1: -S f where t = 1, else S f
    if wrapped(d_o) or torch.compiler.is_compiling():
        d1 = d_o.mul_(sign)
        return loss, torch.cat([d1.neg(), d1], dim)
    out = torch.empty_like(x, memory_format=torch.contiguous_format)  # written once, in place
    d1 = torch.mul(d_o, sign, out=out.narrow(dim, 1, 1))
    torch.neg(d1, out=out.narrow(dim, 0, 1))
    return loss, out


def _two_class_pair(d1: torch.Tensor, dim: int, like: torch.Tensor) -> torch.Tensor:
    """The derivative (-d1, d1) along ``dim``, written straight into one tensor of ``like``'s shape."""
    if wrapped(d1) or torch.compiler.is_compiling():
        return torch.cat([d1.neg(), d1], dim)
    out = torch.empty_like(like, memory_format=torch.contiguous_format)
    out.narrow(dim, 1, 1).copy_(d1)
    torch.neg(d1, out=out.narrow(dim, 0, 1))
    return out


def two_class_prob_kernel(
    x: torch.Tensor, y: torch.Tensor, alpha: Sequence[float] | None, gamma: float, dim: int, need_grad: bool
) -> Pair | None:
    """Probability targets for C = 2, as functions of z = x_1 - x_0 (``None``: use the general kernel).

    p_1 = sigmoid(z), p_0 = sigmoid(-z), -log p_1 = softplus(-z), -log p_0 = softplus(z), so with
    w_c = y_c alpha_c:

        FL = w_1 p_0^gamma softplus(-z) + w_0 p_1^gamma softplus(z)
        dFL/dz = w_0 p_1^gamma (p_1 + gamma p_0 softplus(z)) - w_1 p_0^gamma (p_0 + gamma p_1 softplus(-z))

    and dFL/dx_1 = -dFL/dx_0 = dFL/dz: the general kernel's terms for one other class (no sum to cancel),
    each factor accurate where it is small (softplus(+-z) = relu(+-z) + log1p(e^-|z|), p_c = sigmoid(+-z),
    never 1 - p). z rounds once, as the general kernel's x - x_k does. Taken on CPU when every z is finite
    (a spread beyond the dtype's range gives softplus = inf, which the general kernel masks by weight).
    """
    x0, x1 = x.narrow(dim, 0, 1), x.narrow(dim, 1, 1)
    z = x1 - x0
    if wrapped(z) or torch.compiler.is_compiling() or min_is(z.abs().neg_(), -math.inf):
        return None  # min_is is True off the CPU: the general kernel there
    y0, y1 = y.narrow(dim, 0, 1), y.narrow(dim, 1, 1)
    if alpha is not None:
        y0, y1 = y0 * alpha[0], y1 * alpha[1]
    log1p_a = z.abs().neg_().exp_().log1p_()  # log1p(e^-|z|)
    p1, p0 = torch.sigmoid(z), torch.sigmoid(-z)  # each accurate where it is small
    sp1 = torch.relu(z).add_(log1p_a)  # softplus(z) = -log p_0
    sp0 = torch.neg(z).relu_().add_(log1p_a)  # softplus(-z) = -log p_1
    m1, m0 = power(p0, gamma), power(p1, gamma)  # the modulating factors of classes 1 and 0
    w1 = y1 if m1 is None else y1 * m1
    w0 = y0 if m0 is None else y0 * m0
    loss = (w1 * sp0).add_(w0 * sp1).squeeze(dim)
    if not need_grad:
        return loss, None
    d = torch.mul(p0, sp1).mul_(gamma).add_(p1).mul_(w0)
    d.sub_(torch.mul(p1, sp0).mul_(gamma).add_(p0).mul_(w1))
    return loss, _two_class_pair(d, dim, x)
