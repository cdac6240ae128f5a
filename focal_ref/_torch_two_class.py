"""The softmax focal loss for two classes, without gather or scatter along the class axis.

Along a class axis of size 2, PyTorch's CPU gather and scatter cost several elementwise passes each, and
its ``where`` on a random mask is branchy; here the two classes are views and the choice of the target's
class is exact arithmetic: both kernels are functions of one logit difference per sample (z_t = x_t - x_o
for index targets, z = x_1 - x_0 for probabilities). Lin et al. 2017, https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._torch_kernels import Pair, min_is, power, wrapped
from ._torch_softmax import zero_weight_masked
from ._torch_softmax_index import _target_and_weight


def two_class_index_kernel(
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
    """Class-index targets for C = 2: the sigmoid focal loss of z_t = x_t - x_o with label 1.

    With two classes p_t = sigmoid(z_t) and u_t = 1 - p_t = sigmoid(-z_t), so

        FL = alpha_t u_t^gamma softplus(-z_t)
        dFL/dz_t = -alpha_t u_t^gamma (u_t + gamma p_t softplus(-z_t))

    and dFL/dx_t = -dFL/dx_o = dFL/dz_t: every pass runs over one value per sample, none over the
    classes, and no gather or scatter (along a class axis of size 2 PyTorch's CPU gather and scatter
    cost several elementwise passes each). z_t = s (x_0 - x_1) with s = dz_t/dx_0 = +-1 (exact):
    the difference rounds once, as the reference's shift x - x_max does. Each factor is accurate where it
    is small: u_t and p_t are sigmoids of +-z_t (never 1 - p), softplus(-z_t) = relu(-z_t) + log1p(e^-|z|).
    A spread beyond the dtype's range (z_t = -inf: loss inf, the rounded value of a loss above the
    dtype's max) has p_t softplus(-z_t) = 0 * inf, whose limit 0 is taken. Branch-free: the same code on
    every device, under torch.func and torch.compile. ``scale`` multiplies the loss and the derivative;
    ``out``: where to write the derivative (a view of the caller's buffer), else a fresh tensor.
    """
    t, alpha_t = _target_and_weight(index, alpha, ignore_index, x, dim)  # ignored: t = 0, weight 0
    flip = torch.rsub(t, 1, alpha=2)  # 1 - 2t: -1 where t = 1, +1 where t = 0: dz_t/dx_0
    z = torch.sub(x.narrow(dim, 0, 1), x.narrow(dim, 1, 1)).mul_(flip)  # z_t = x_t - x_o
    minus_z = torch.neg(z)
    p, u = torch.sigmoid(z), torch.sigmoid(minus_z)  # p_t, u_t: each accurate where it is small
    # log1p(e^-|z|) for both softplus(+-z) without overflow; z's buffer is dead after the sigmoids
    ce = minus_z.clamp_min_(0.0).add_(z.abs_().neg_().exp_().log1p_())  # softplus(-z_t) = -log p_t
    weight = power(u, gamma)
    if weight is u:  # gamma = 1: u is written below
        weight = u.clone()
    if alpha_t is not None:
        weight = alpha_t if weight is None else weight.mul_(alpha_t)
    if scale != 1.0:
        weight = torch.full_like(ce, scale) if weight is None else weight.mul_(scale)
    if not need_grad:
        loss = ce if weight is None else zero_weight_masked(ce.mul_(weight), alpha_t)
        return loss.squeeze(dim), None
    loss = ce if weight is None else zero_weight_masked(ce * weight, alpha_t)
    d_t = u
    if gamma != 0.0:
        # p_t softplus(-z_t) -> 0 where z_t = -inf (0 * inf); NaN inputs stay NaN through u_t
        d_t = u.add_(p.mul_(ce).nan_to_num_(0.0, posinf=math.inf), alpha=gamma)
    if weight is not None:
        d_t = d_t.mul_(weight)  # -dFL/dz_t
    return loss.squeeze(dim), _two_class_pair(d_t, dim, x, flip, out)  # dFL/dx_1 = -dFL/dz_t dz_t/dx_0


def _two_class_pair(
    d1: torch.Tensor,
    dim: int,
    like: torch.Tensor,
    factor: torch.Tensor | float | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The derivative (-d1, d1) along ``dim`` (d1 times ``factor`` if given), written straight into
    ``out`` or one fresh tensor of ``like``'s shape."""
    if wrapped(d1) or torch.compiler.is_compiling():
        d1 = d1 if factor is None else d1 * factor
        return torch.cat([d1.neg(), d1], dim)
    if out is None:
        out = torch.empty_like(like, memory_format=torch.contiguous_format)
    if factor is None:
        out.narrow(dim, 1, 1).copy_(d1)
    else:
        torch.mul(d1, factor, out=out.narrow(dim, 1, 1))
    torch.neg(out.narrow(dim, 1, 1), out=out.narrow(dim, 0, 1))
    return out


def two_class_prob_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: Sequence[float] | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
    out: torch.Tensor | None = None,
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
    ``scale`` multiplies the derivative only (the mean's 1/N, as D's dtype rounds it); ``out`` as in
    :func:`two_class_index_kernel`.
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
    return loss, _two_class_pair(d, dim, x, None if scale == 1.0 else scale, out)
