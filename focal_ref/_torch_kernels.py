"""First-order kernels of :mod:`focal_ref.torch`: each returns (loss, d loss / d input) in one pass.

The formulas are the reference's (:mod:`focal_ref._reference`), written in torch ops; the math is that
of Lin et al. 2017, https://arxiv.org/abs/1708.02002. Every kernel takes the input already in its
compute dtype (float64 or float32) and ``need_grad``; without it the derivative is ``None``.

Longer than the project's ~400 lines on purpose: the sigmoid, binary, FL* and softmax kernels share their
helpers (``power``, ``split_power``, ``_into``, the alpha and class-weight views) and their buffer-reuse
discipline, and each kernel is one straight chain of in-place passes that reads best whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

Pair = tuple[torch.Tensor, torch.Tensor | None]

# z above which log1p(e^-z) equals e^-z to the last bit in float64 (e^-z < 2^-53 / 2)
_EXP_TAIL = 40.0


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (float32, float16, bfloat16) is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """A 0-d tensor on ``like``'s device, filled there (no host-to-device copy, no sync)."""
    return torch.full((), value, dtype=like.dtype, device=like.device)


def power(base: torch.Tensor, gamma: float, inplace: bool = False) -> torch.Tensor | None:
    """``base ** gamma`` with the common exponents as products; ``None`` stands for a factor of 1.

    The one helper for the modulating factor m^gamma. A plain power, never exp(gamma log m): its
    derivatives are taken in closed form elsewhere, so no 0^(gamma-1) appears.
    """
    if gamma == 0.0:
        return None
    if gamma == 1.0:
        return base
    if gamma == 2.0:
        return base.mul_(base) if inplace else base * base
    return base.pow_(gamma) if inplace else base.pow(gamma)


def split_power(m: torch.Tensor, gamma: float) -> bool:
    """Whether to apply m^gamma as h h with h = m^(gamma/2), rather than as one factor.

    One factor m^gamma goes subnormal (and loses digits) where m < tiny^(1/gamma), even where the loss
    alpha_t m^gamma CE is a normal number (float32, x = -3.4e38, y = 1e-7, gamma = 6: m^6 = 1e-42, the
    loss 3.4e-11); (B h)(alpha_t h) keeps every intermediate normal there. The two orders round
    differently, so on CPU the split is taken only for a block that holds such an m: ordinary inputs give
    the bits they always gave (the book's stored experiments re-run bit for bit). On other devices, under
    torch.compile and under torch.func, where looking at values would synchronise or cannot be traced,
    it is always taken.
    """
    if gamma <= 1.0:
        return False
    if (
        m.device.type != "cpu"
        or torch.compiler.is_compiling()
        or torch._C._functorch.is_functorch_wrapped_tensor(m)
    ):
        return True
    return bool((m < torch.finfo(m.dtype).tiny ** (1.0 / gamma)).any())


def _into(op, *args, out: torch.Tensor) -> torch.Tensor:
    """``op(*args, out=out)``: reuses a dead buffer; a fresh tensor under torch.func (no out= rules)."""
    if torch.compiler.is_compiling() or torch._C._functorch.is_functorch_wrapped_tensor(out):
        return op(*args)
    return op(*args, out=out)


def binary_alpha_t(alpha: float | None, y: torch.Tensor) -> torch.Tensor | None:
    """alpha_t = alpha y + (1 - alpha)(1 - y), exact for hard labels; ``None`` for no weighting."""
    if alpha is None:
        return None
    return torch.lerp(scalar(1.0 - alpha, y), scalar(alpha, y), y)


def class_weights(alpha: Sequence[float] | None, like: torch.Tensor) -> torch.Tensor | None:
    """Per-class weights as a 1-d tensor on ``like``'s device (``None`` for none)."""
    if alpha is None:
        return None
    return torch.tensor(alpha, dtype=like.dtype).to(like.device, non_blocking=True)


def class_view(weights: torch.Tensor, ndim: int, dim: int) -> torch.Tensor:
    """A 1-d per-class tensor shaped to broadcast along ``dim`` of an ``ndim``-d tensor."""
    shape = [1] * ndim
    shape[dim] = weights.shape[0]
    return weights.view(shape)


# ----------------------------------------------------------------------------------------------
# sigmoid / binary / FL*


def sigmoid_kernel(
    x: torch.Tensor, y: torch.Tensor, alpha: float | None, gamma: float, need_grad: bool
) -> Pair:
    """FL and dFL/dx elementwise; the reference's ``sigmoid_focal_loss`` and ``sigmoid_focal_loss_grad``.

    dFL/dx = alpha_t m^gamma [gamma (1-2y) r CE + (p - y)], m = 1 - p_t, r = p(1-p)/m in [0, 1].

    lerp(a, b, y) = (1-y) a + y b is evaluated by PyTorch as a + y (b-a) for y < 1/2 and
    b - (1-y)(b-a) otherwise, so each mixture below is exact for hard labels and keeps the
    reference's no-cancellation sums for soft ones. Written for speed as well: five fresh tensors,
    then in-place work, each buffer reused once its value is no longer needed.
    """
    neg_x = torch.neg(x)
    p, q = torch.sigmoid(x), torch.sigmoid(neg_x)  # q = 1 - p without the subtraction
    # l = log1p(e^-|x|) serves both logs: -log p = relu(-x) + l, -log(1-p) = relu(x) + l.
    l = torch.abs(x).neg_().exp_().log1p_()  # noqa: E741
    # CE = (1-y)(relu(x) + l) + y (relu(-x) + l) = l + lerp(relu(x), relu(-x), y): no cancellation.
    ce = torch.clamp_min(x, 0.0).lerp_(neg_x.clamp_min_(0.0), y).add_(l)
    m = _into(torch.lerp, p, q, y, out=l)  # 1 - p_t = (1-y) p + y q, a sum of non-negative terms
    if need_grad:
        if gamma != 0.0:
            # r = p q / m in [0, 1]: the derivative of m^gamma is gamma m^gamma r (1-2y), free of
            # 0^(gamma-1). 0/0 happens only where m underflowed to 0; there m^gamma = 0 kills the term.
            s_r = _into(torch.mul, p, q, out=neg_x).div_(m).nan_to_num_(0.0)
            s_r.addcmul_(y, s_r, value=-2.0)  # (1 - 2y) r
        p_minus_y = p.lerp_(q.neg_(), y)  # (1-y) p - y q: exact -q for y = 1, no cancellation near p = 1
    # m^gamma = h h with h = m^(gamma/2), applied as (B h)(alpha_t h), where one factor would go
    # subnormal although the product is normal (split_power)
    half = power(m, gamma / 2.0, inplace=True) if split_power(m, gamma) else None
    weight = half if half is not None else power(m, gamma, inplace=True)
    if alpha is not None:
        alpha_t = _into(
            torch.lerp, scalar(1.0 - alpha, x), scalar(alpha, x), y, out=q
        )  # exact for hard labels
        weight = alpha_t if weight is None else alpha_t.mul_(weight)
    grad = None
    if need_grad:
        if gamma != 0.0:
            p_minus_y.addcmul_(s_r, ce, value=gamma)  # gamma (1-2y) r CE + (p - y)
        grad = p_minus_y if half is None else p_minus_y.mul_(half)
        grad = grad if weight is None else grad.mul_(weight)
    loss = ce if half is None else ce.mul_(half)
    loss = loss if weight is None else loss.mul_(weight)
    return loss, grad


def sigmoid_weighted_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float | None,
    gamma: float,
    pos_weight: torch.Tensor | None,
    need_grad: bool,
) -> Pair:
    """:func:`sigmoid_kernel` with ``pos_weight`` w+ (API decision 2): CE = -[w+ y log p + (1-y) log(1-p)].

    dCE/dx = (1-y) p - w+ y q, so dFL/dx = alpha_t m^gamma [gamma (1-2y) r CE + dCE/dx]. Plain torch ops
    (the fast in-place chain is :func:`sigmoid_kernel`, taken when there is no pos_weight).
    """
    p, q = torch.sigmoid(x), torch.sigmoid(-x)
    l = torch.abs(x).neg_().exp_().log1p_()  # noqa: E741
    pos = y if pos_weight is None else pos_weight * y
    ce = pos * (torch.clamp_min(-x, 0.0) + l) + (1.0 - y) * (torch.clamp_min(x, 0.0) + l)
    m = torch.lerp(p, q, y)
    half = power(m, gamma / 2.0) if split_power(m, gamma) else None  # m^gamma = half^2, as in sigmoid_kernel
    weight = half if half is not None else power(m, gamma)
    alpha_t = binary_alpha_t(alpha, y)
    if alpha_t is not None:
        weight = alpha_t if weight is None else alpha_t * weight
    loss = ce if half is None else ce * half
    loss = loss if weight is None else loss * weight
    if not need_grad:
        return loss, None
    d_ce = (1.0 - y) * p - pos * q
    if gamma != 0.0:
        r = (p * q / m).nan_to_num_(0.0)
        # r CE with r = 0 is 0 also where w+ |x| overflowed CE to inf (float32, x = -3.4e38, w+ = 2.5)
        r_ce = torch.where(r > 0, r * ce, 0.0)
        d_ce = d_ce + gamma * (1.0 - 2.0 * y) * r_ce
    d_ce = d_ce if half is None else d_ce * half
    return loss, d_ce if weight is None else d_ce * weight


def weighted(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``weight * values`` with a zero weight giving 0 also where the value is inf (API decision 2: the
    reference masks, 0 * inf would be NaN; e.g. the binary loss at p = 1 on a negative, weight 0)."""
    return torch.where(weight > 0, values * weight, 0.0)


def binary_kernel(
    p: torch.Tensor,
    y: torch.Tensor,
    alpha: float | None,
    gamma: float,
    need_grad: bool,
    pos_weight: torch.Tensor | None = None,
) -> Pair:
    """FL of probabilities and dFL/dp, the reference's ``binary_focal_loss`` taken at face value.

    dFL/dp = alpha_t m^gamma [gamma (1-2y) CE/m + dCE/dp], m = y(1-p) + (1-y)p; CE/m -> 1 where m = 0.
    Each log term is masked by its weight y alpha_t (or (1-y) alpha_t), as the reference does: a zero
    weight gives 0 even where the log is -inf (alpha = 1 and p = 1 on a negative). dCE/dp is divided
    last, so that alpha_t m^gamma y / p stays finite where 1/p alone would overflow (subnormal p).
    ``pos_weight`` w+ scales the positive term: CE = -[w+ y log p + (1-y) log(1-p)].
    """
    alpha_t = binary_alpha_t(alpha, y)
    y_pos = y if pos_weight is None else pos_weight * y
    pos = y_pos > 0 if alpha_t is None else y_pos * alpha_t > 0
    neg = y < 1 if alpha_t is None else (1.0 - y) * alpha_t > 0
    log_p = torch.where(pos, torch.log(torch.where(pos, p, 1.0)), 0.0)
    log_q = torch.where(neg, torch.log1p(torch.where(neg, -p, 0.0)), 0.0)  # exact for small p
    ce = -(y_pos * log_p + (1.0 - y) * log_q)
    m = y * (1.0 - p) + (1.0 - y) * p
    weight = power(m, gamma)
    if alpha_t is not None:
        weight = alpha_t if weight is None else alpha_t * weight
    if weight is None:
        weight = torch.ones_like(m)
    loss = (weight * ce).add_(0.0)  # + 0.0 turns the -0.0 of -(0 + 0) into +0.0
    if not need_grad:
        return loss, None
    d_ce = torch.where(pos, -(weight * y_pos) / p, 0.0) + torch.where(
        neg, (weight * (1.0 - y)) / (1.0 - p), 0.0
    )
    if gamma == 0.0:
        return loss, d_ce
    ce_over_m = torch.where(m > 0, ce / torch.where(m > 0, m, 1.0), 1.0)
    return loss, d_ce + gamma * (1.0 - 2.0 * y) * weight * ce_over_m


def star_kernel(
    x: torch.Tensor, y: torch.Tensor, alpha: float | None, gamma: float, beta: float, need_grad: bool
) -> Pair:
    """FL* = alpha_t softplus(-z)/gamma, z = gamma y' x + beta; dFL*/dx = -alpha_t y' sigmoid(-z).

    Three forms of softplus(-z)/gamma, each where it is accurate: where e^-z is subnormal (z > 87 in
    float32, 708 in float64), exp(-z - log gamma) (the plain form divides a subnormal by gamma: 5% to 2x
    off in float32 at gamma = 1e-8, beta = 100); for z < -40, -x_t - beta/gamma + softplus(z)/gamma
    (finite where gamma x_t overflows, e.g. x = -1e308 in float64); softplus(-z)/gamma between.
    """
    sign = torch.lerp(scalar(-1.0, x), scalar(1.0, x), y)  # y' = 2y - 1
    x_t = sign * x
    z = x_t * gamma + beta
    middle = F.logsigmoid(z).mul_(-1.0 / gamma)  # softplus(-z) = -logsigmoid(z), no threshold
    tail = torch.exp(-z - math.log(gamma))
    low = (-x_t - beta / gamma) - F.logsigmoid(-z) / gamma
    subnormal = -math.log(torch.finfo(x.dtype).tiny)
    loss = torch.where(z > subnormal, tail, torch.where(z < -_EXP_TAIL, low, middle))
    alpha_t = binary_alpha_t(alpha, y)
    if alpha_t is not None:
        loss = loss * alpha_t
    loss = loss.add_(0.0)
    if not need_grad:
        return loss, None
    grad = torch.sigmoid(-z).mul_(sign).neg_()
    return loss, grad if alpha_t is None else grad.mul_(alpha_t)


# ----------------------------------------------------------------------------------------------
# softmax / categorical


def first_argmax(values: torch.Tensor, dim: int) -> torch.Tensor:
    """``values.argmax(dim, keepdim=True)`` (the first of tied maxima) from fast elementwise passes.

    PyTorch's CPU argmax along an inner axis is slow (12 ms for (4, 19, 128, 128) along dim 1, where
    ``amax`` takes 0.2 ms): here sign(v - max) + 1 marks the maxima with 1, times the ranks C, ..., 1
    by position, and the max of that is the first maximum's rank. A row with a NaN (or all -inf) gets
    class 0; its values are NaN anyway.
    """
    classes = values.shape[dim]
    if values.device.type != "cpu" or classes >= 1 << 24 or _wrapped(values):
        return values.argmax(dim, keepdim=True)
    rank = class_view(torch.arange(classes, 0, -1, dtype=values.dtype), values.ndim, dim)
    marks = torch.sub(values, values.amax(dim, keepdim=True)).sign_().add_(1.0).mul_(rank)
    first = marks.amax(dim, keepdim=True).neg_().add_(classes).nan_to_num_(0.0)
    return first.clamp_(0, classes - 1).long()


def log_softmax_parts(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log p and u = 1 - p along ``dim``, accurate also for the dominant class as p -> 1.

    With k the argmax and s = sum_{c != k} exp(x_c - x_k): log p_k = -log1p(s), 1 - p_k = s/(1+s);
    x_k - logsumexp(x) would round to 0 long before log p_k underflows. The other classes have
    p_c <= 1/2, so 1 - p_c = -expm1(log p_c) is accurate. A spread of logits beyond the dtype's range
    gives log p_c = -inf (its rounded value) and p_c = 0.
    """
    k = first_argmax(x, dim)
    shifted = x - x.gather(dim, k)
    s = shifted.exp().scatter_(dim, k, 0.0).sum(dim, keepdim=True)
    log_p = shifted.sub_(torch.log1p(s))  # at k: 0 - log1p(s)
    u = torch.expm1(log_p).neg_().scatter_(dim, k, s / (1.0 + s))
    return log_p, u


def _min_is(t: torch.Tensor, bound: float) -> bool:
    """t.min() <= bound, read on CPU only (True elsewhere: guard unconditionally)."""
    if t.device.type != "cpu" or t.numel() == 0 or torch.compiler.is_compiling() or _wrapped(t):
        return t.numel() > 0
    return float(t.min()) <= bound


def _wrapped(t: torch.Tensor) -> bool:
    return torch._C._functorch.is_functorch_wrapped_tensor(t)


def focal_h(p: torch.Tensor, log_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """h = -p log p / u in [0, 1], with its limit 1 where u = 0 and 0 where p underflowed to 0."""
    if not _min_is(log_p, -math.inf) and not _min_is(u, 0.0):
        return (p * log_p).div_(u).neg_()  # no log p = -inf, no u = 0: no guard needed
    p_log_p = p * torch.where(p > 0, log_p, 0.0)
    return torch.where(u > 0, -p_log_p / torch.where(u > 0, u, 1.0), 1.0)


def index_weights(
    index: torch.Tensor, alpha: Sequence[float] | None, ignore_index: int | None, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(safe index, alpha_t) for class-index targets: ignored samples get index 0 and weight 0."""
    safe = index
    keep = None
    if ignore_index is not None:
        keep = index != ignore_index
        safe = torch.where(keep, index, 0)
    weights = class_weights(alpha, like)
    if weights is None:
        alpha_t = torch.ones(safe.shape, dtype=like.dtype, device=like.device)
    else:
        alpha_t = weights[safe]
    if keep is not None:
        alpha_t = alpha_t * keep
    return safe, alpha_t


def dense_weights(
    target: torch.Tensor, kind: str, alpha: Sequence[float] | None, ignore_index: int | None, like, dim: int
) -> torch.Tensor:
    """w_c = y_c alpha_c of the logits' shape, for index or probability targets."""
    if kind == "indices":
        safe, alpha_t = index_weights(target, alpha, ignore_index, like)
        return torch.zeros_like(like).scatter_(dim, safe.unsqueeze(dim), alpha_t.unsqueeze(dim))
    weights = class_weights(alpha, like)
    return target if weights is None else target * class_view(weights, like.ndim, dim)


def others_sum(values: torch.Tensor, dim: int, signed: bool = False) -> torch.Tensor:
    """sum_{c != j} values_c for each j, without cancelling next to a one-hot row.

    Not as sum - values_j: that cancels when one class holds nearly all of the sum (a soft target next
    to one-hot). With k the entry of largest magnitude and rest the sum without it, the result is rest
    at k and values_k + (rest - values_j) elsewhere (the reference's heaviest-class form; exact for
    one-hot rows).
    """
    k = first_argmax(values.abs() if signed else values, dim)
    top = values.gather(dim, k)
    without_top = values.scatter(dim, k, 0.0)
    rest = without_top.sum(dim, keepdim=True)
    return _into(torch.sub, rest, values, out=without_top).add_(top).scatter_(dim, k, rest)


def _exp_shift(x: torch.Tensor, dim: int) -> torch.Tensor:
    """A shift m for exp(x - m) along ``dim``: the 0-d zero where no sum of exponentials can overflow or
    all of a row's underflow, read from the logits' range in one cheap pass (CPU only); else the row max.

    With m = 0 the exponentials need no max over the class axis (a slow reduction for a small class
    count) and no subtraction pass.
    """
    if x.device.type == "cpu" and x.numel() > 0 and not torch.compiler.is_compiling() and not _wrapped(x):
        info = torch.finfo(x.dtype)
        bound = min(math.log(info.max) - math.log(max(x.shape[dim], 1)), -math.log(info.tiny)) - 2.0
        low, high = torch.aminmax(x)
        if -bound < float(low) and float(high) < bound:
            return x.new_zeros(())
    return x.amax(dim, keepdim=True)


def softmax_index_factored(
    x: torch.Tensor,
    index: torch.Tensor,
    alpha: Sequence[float] | None,
    ignore_index: int | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(loss, K, f) with dFL/dx = K * f: K of the logits' shape, f per sample (``dim`` kept, size 1).

    FL = -alpha_t u_t^gamma log p_t; dFL/dx_j = wg_t p_j for j != t and -wg_t u_t at t, with
    wg_t = alpha_t u_t^gamma (1 + gamma h_t), h_t = -p_t log p_t / u_t in [0, 1] (its limit 1 where
    u_t = 0): the reference's g_c without 0^(gamma-1).

    One exponential pass e = exp(x - m) (m = 0 where the logits' range allows, :func:`_exp_shift`), e_t
    set to 0, and one sum: S = sum_{c != t} e_c, s = S + e_t, u_t = S / s (1 - p_t without
    cancellation, as the reference's sum of the other classes), p_t = e_t / s. log p_t = log1p(-u_t)
    for u_t < 1/2 (exact as p_t -> 1), else log p_t, or (x_t - m) - log s where p_t is subnormal.
    K = e with K_t = -S, f = wg_t / s: the derivative is never multiplied out in the forward pass; the
    backward's one pass makes it. ``scale`` multiplies the loss and f (the mean's 1/N).
    """
    if alpha is None and ignore_index is None:
        t, alpha_t = index.unsqueeze(dim), None  # no per-sample weight: no tensor of ones
    else:
        safe, alpha_t = index_weights(index, alpha, ignore_index, x)
        t, alpha_t = safe.unsqueeze(dim), alpha_t.unsqueeze(dim)
    shift = _exp_shift(x, dim)
    e = torch.sub(x, shift).exp_() if shift.ndim else torch.exp(x)
    e_t = e.gather(dim, t)
    others = e.scatter_(dim, t, 0.0).sum(dim, keepdim=True)
    total = others + e_t
    u_t = others / total
    p_t = e_t / total
    log_p_t = torch.log(p_t)
    if _min_is(p_t, torch.finfo(x.dtype).tiny):  # p_t subnormal or 0: from the logits
        exact = (x.gather(dim, t) - shift).sub_(torch.log(total))
        log_p_t = torch.where(p_t < torch.finfo(x.dtype).tiny, exact, log_p_t)
    log_p_t = torch.where(u_t < 0.5, torch.log1p(-u_t), log_p_t)
    weight = power(u_t, gamma)
    if alpha_t is not None:
        weight = alpha_t if weight is None else weight * alpha_t
    if weight is None:
        weight = torch.ones_like(u_t)
    if scale != 1.0:
        weight = weight * scale
    loss = (weight * log_p_t).neg_().add_(0.0).squeeze(dim)
    if not need_grad:
        return loss, None, None
    if gamma != 0.0:
        weight = weight * focal_h(torch.exp(log_p_t), log_p_t, u_t).mul_(gamma).add_(1.0)
    return loss, e.scatter_(dim, t, others.neg()), weight.div_(total)


def softmax_index_kernel(
    x: torch.Tensor,
    index: torch.Tensor,
    alpha: Sequence[float] | None,
    ignore_index: int | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
) -> Pair:
    """Class-index targets: (loss, dFL/dx) of :func:`softmax_index_factored`, multiplied out in place."""
    loss, k, f = softmax_index_factored(x, index, alpha, ignore_index, gamma, dim, need_grad, scale)
    return loss, (None if k is None or f is None else k.mul_(f))


def softmax_prob_kernel(
    x: torch.Tensor, y: torch.Tensor, alpha: Sequence[float] | None, gamma: float, dim: int, need_grad: bool
) -> Pair:
    """Probability targets, w_c = y_c alpha_c: the reference's softmax_focal_loss(_grad).

    dFL/dx_j = p_j sum_{c != j} w_c g_c - w_j g_j u_j, g_c = u_c^gamma (1 + gamma h_c); the sum over
    c != j in the heaviest-class form (:func:`others_sum`). Only classes with w_c > 0 enter the loss, so
    a log p_c of -inf (logit spread beyond the dtype's range) on a zero-weight class gives no NaN.

    The values of :func:`log_softmax_parts` and :func:`focal_h`, computed into few buffers: on CPU a
    fresh tensor of the logits' size costs several times the arithmetic that fills it (its pages are
    faulted in), so each buffer is reused once its value is dead.
    """
    weights = class_weights(alpha, x)
    w = y if weights is None else y * class_view(weights, x.ndim, dim)
    k = first_argmax(x, dim)
    log_p = torch.sub(x, x.gather(dim, k))
    buf = torch.exp(log_p)
    s = buf.scatter_(dim, k, 0.0).sum(dim, keepdim=True)
    log_p.sub_(torch.log1p(s))  # at k: 0 - log1p(s)
    u = _into(torch.expm1, log_p, out=buf).neg_().scatter_(dim, k, s / (1.0 + s))
    if gamma == 0.0:
        weight = w  # the caller's tensor: never written
    elif gamma == 1.0:
        weight = torch.mul(u, w)
    else:
        weight = u.pow(gamma) if gamma != 2.0 else u * u  # a fresh power
        weight.mul_(w)
    terms = torch.mul(weight, log_p)
    if _min_is(log_p, -math.inf):  # 0 * (-inf) on a zero-weight class whose log p overflowed
        terms = torch.where(w > 0, terms, 0.0)
    loss = terms.sum(dim).neg_().add_(0.0)
    if not need_grad:
        return loss, None
    p = _into(torch.exp, log_p, out=terms)
    if gamma != 0.0:
        weight = weight.mul_(focal_h(p, log_p, u).mul_(gamma).add_(1.0))
    rest = others_sum(weight, dim)
    return loss, p.mul_(rest).sub_(weight.mul_(u) if gamma != 0.0 else weight * u)


def categorical_kernel(p: torch.Tensor, w: torch.Tensor, gamma: float, dim: int, need_grad: bool) -> Pair:
    """-sum_c w_c u_c^gamma log p_c of probabilities (not renormalised) and its derivative per entry.

    d/dp_j = w_j u_j^gamma [gamma log p_j / u_j - 1/p_j], with log p / u -> -1 where u = 0 (p = 1);
    the 1/p term divided last (finite at subnormal p where the weighted value is).
    """
    u = 1.0 - p
    log_p = torch.where(w > 0, torch.log(torch.where(w > 0, p, 1.0)), 0.0)
    u_gamma = power(u, gamma)
    weight = w if u_gamma is None else w * u_gamma
    loss = (weight * log_p).sum(dim).neg_().add_(0.0)
    if not need_grad:
        return loss, None
    inv = torch.where(w > 0, weight / torch.where(w > 0, p, 1.0), 0.0)
    if gamma == 0.0:
        return loss, inv.neg_()
    log_p_over_u = torch.where(u > 0, log_p / torch.where(u > 0, u, 1.0), -1.0)
    return loss, torch.where(w > 0, gamma * weight * log_p_over_u, 0.0).sub_(inv)
