"""Softmax and categorical kernels of :mod:`focal_ref.torch`: (loss, d loss / d input) per sample.

The formulas are the reference's (:mod:`focal_ref._softmax`, :mod:`focal_ref._prob_grad`), written in
torch ops; the math is that of Lin et al. 2017, https://arxiv.org/abs/1708.02002. Every kernel takes the
logits already in their compute dtype (float64 or float32), the class axis ``dim`` and ``need_grad``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._torch_kernels import Pair, _into, class_view, class_weights, min_is, power, scalar, wrapped


def first_argmax(values: torch.Tensor, dim: int, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """``values.argmax(dim, keepdim=True)`` (the first of tied maxima) from fast elementwise passes.

    PyTorch's CPU argmax along an inner axis is slow (12 ms for (4, 19, 128, 128) along dim 1, where
    ``amax`` takes 0.2 ms): here sign(v - max) + 1 marks the maxima with 1 (:func:`_first_marked`).
    ``scratch``: a dead buffer of ``values``' shape for the marks.
    """
    if not _marks_pay(values, dim):
        return values.argmax(dim, keepdim=True)
    top = values.amax(dim, keepdim=True)
    marks = torch.sub(values, top) if scratch is None else _into(torch.sub, values, top, out=scratch)
    return _first_marked(marks.sign_().add_(1.0), dim)


def _marks_pay(values: torch.Tensor, dim: int) -> bool:
    """Whether :func:`_first_marked` applies: CPU, eager, ranks exact in the dtype (else ``argmax``)."""
    return not (
        values.device.type != "cpu"
        or values.shape[dim] >= 1 << 24
        or torch.compiler.is_compiling()
        or wrapped(values)
    )


def _first_marked(marks: torch.Tensor, dim: int) -> torch.Tensor:
    """The first class (``dim`` kept) whose mark is 1, for marks in {0, 1} (written over): the marks
    times the ranks C, ..., 1 by position, and the max of that is the first marked class's rank. A row
    with a NaN (or none marked) gets class 0."""
    classes = marks.shape[dim]
    marks.mul_(class_view(torch.arange(classes, 0, -1, dtype=marks.dtype), marks.ndim, dim))
    first = marks.amax(dim, keepdim=True).neg_().add_(classes).nan_to_num_(0.0)
    return first.clamp_(0, classes - 1).long()


def _class_of_one(e: torch.Tensor, dim: int, scratch: torch.Tensor) -> torch.Tensor:
    """k (``dim`` kept): the first class whose e = exp(x - max) is 1, marked by floor(e) in {0, 1}
    (:func:`_first_marked`; one pass fewer than :func:`first_argmax`, which must subtract the max).

    That is an argmax, or a class within rounding of the max (e rounds to 1), whose p then is within
    rounding of the max's p <= 1/2: the role of k (the class whose 1 - p and whose sum over the other
    classes are taken without cancellation) needs only p_c <= 1/2 for every other class c. Under
    torch.func and torch.compile, and off the CPU: ``argmax``.
    """
    if not _marks_pay(e, dim):
        return e.argmax(dim, keepdim=True)
    return _first_marked(torch.floor(e, out=scratch), dim)


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


def focal_h(
    p: torch.Tensor,
    log_p: torch.Tensor,
    u: torch.Tensor,
    out: torch.Tensor | None = None,
    log_p_finite: bool | None = None,
    scale: float = -1.0,
) -> torch.Tensor:
    """h = -p log p / u in [0, 1], with its limit 1 where u = 0 and 0 where p underflowed to 0.

    ``out``: a dead buffer for the result where no guard is needed; ``log_p_finite``: the caller already
    knows whether log p has a -inf (saves a pass); ``scale``: return scale * (p log p / u) instead
    (-1: h itself; -gamma: gamma h, in the same pass)."""
    finite = not min_is(log_p, -math.inf) if log_p_finite is None else log_p_finite
    if finite and not min_is(u, 0.0):  # no log p = -inf, no u = 0: no guard needed
        p_log_p = p * log_p if out is None else _into(torch.mul, p, log_p, out=out)
        return p_log_p.div_(u).neg_() if scale == -1.0 else p_log_p.div_(u).mul_(scale)
    p_log_p = p * torch.where(p > 0, log_p, 0.0)
    h = torch.where(u > 0, -p_log_p / torch.where(u > 0, u, 1.0), 1.0)
    return h if scale == -1.0 else h.mul_(-scale)


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


def others_sum(
    values: torch.Tensor,
    dim: int,
    signed: bool = False,
    k: torch.Tensor | None = None,
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_{c != j} values_c for each j, without cancelling next to a one-hot row.

    Not as sum - values_j: that cancels when one class holds nearly all of the sum (a soft target next
    to one-hot). With k the entry of largest magnitude and rest the sum without it, the result is rest
    at k and values_k + (rest - values_j) elsewhere (the reference's heaviest-class form; exact for
    one-hot rows). ``k``: the excluded class (dim kept), if the caller has a better one; ``scratch``:
    a dead buffer of ``values``' shape, which becomes the result.
    """
    if k is None:
        k = first_argmax(values.abs() if signed else values, dim)
    top = values.gather(dim, k)
    if scratch is None or wrapped(values) or torch.compiler.is_compiling():
        without_top = values.scatter(dim, k, 0.0)
        rest = without_top.sum(dim, keepdim=True)
        return _into(torch.sub, rest, values, out=without_top).add_(top).scatter_(dim, k, rest)
    # k zeroed in ``values`` for the sum and put back (no copy of values); the result in ``scratch``
    rest = values.scatter_(dim, k, 0.0).sum(dim, keepdim=True)
    out = torch.sub(rest, values, out=scratch).add_(top).scatter_(dim, k, rest)
    values.scatter_(dim, k, top)
    return out


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
    others = e.scatter_(dim, t, 0.0).sum(dim, keepdim=True)
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


def softmax_prob_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: Sequence[float] | None,
    gamma: float,
    dim: int,
    need_grad: bool,
    scale: float = 1.0,
    out: torch.Tensor | None = None,
) -> Pair:
    """Probability targets, w_c = y_c alpha_c: the reference's softmax_focal_loss(_grad).

    With a_c = w_c g_c, g_c = u_c^gamma (1 + gamma h_c) (u = 1 - p, h = -p log p / u), the reference's
    dFL/dx_j = p_j sum_{c != j} a_c - a_j u_j equals p_j A - a_j (A = sum_c a_c, as p_j + u_j = 1).
    That form is taken for every class but the logits' argmax k; at k, p_k A_k - a_k u_k with A_k the
    sum without k (the reference's heaviest-class form: no cancellation where k holds nearly all of
    p and of the target). Elsewhere p_j <= 1/2, so where a_j dominates A the row's gradient is at least
    a_j / 2 and the rounding of A stays below the row's. The focal factor as
    a = w u^gamma - gamma (w u^gamma log p) (p / u): the loss's own terms, reused. Only classes with
    w_c > 0 enter the loss, so a log p_c of -inf (logit spread beyond the dtype's range) on a
    zero-weight class gives no NaN.

    ``scale`` multiplies the derivative only (the mean's 1/N, as D's dtype rounds it); ``out``: where to
    write the derivative (a view of the caller's buffer), else one of the kernel's own buffers. Few
    buffers, each reused once its value is dead: on CPU a fresh one costs more than the arithmetic that
    fills it (its pages are faulted in).
    """
    if x.shape[dim] == 2:
        from ._torch_two_class import two_class_prob_kernel  # imports this module: at call time

        pair = two_class_prob_kernel(x, y, alpha, gamma, dim, need_grad, scale, out)
        if pair is not None:
            return pair
    weights = class_weights(alpha, x)
    w = y if weights is None else y * class_view(weights, x.ndim, dim)
    top = x.amax(dim, keepdim=True)
    log_p = torch.sub(x, top)
    buf = torch.exp(log_p)
    scratch = torch.empty_like(x)
    k = _class_of_one(buf, dim, scratch)
    s = buf.scatter_(dim, k, 0.0).sum(dim, keepdim=True)
    log_shift = torch.log1p(s)
    log_p.sub_(log_shift)  # at k: 0 - log1p(s), accurate as p_k -> 1
    one_plus_s = 1.0 + s
    # p = e / (1 + s) in place (one rounding, where exp(log p) carries log p's absolute error); p_k is
    # 0 here (e_k was set to 0 for the sum), and every use of p at k is replaced below
    p = buf.div_(one_plus_s)
    u_k = s / one_plus_s
    # 1 - p is exact enough off k (there p <= 1/2: no cancellation) and cheaper than -expm1(log p)
    u = torch.rsub(p, 1.0).scatter_(dim, k, u_k)
    if gamma == 0.0:
        weight = w if w is not y else y.clone()  # written below; never the caller's tensor
    elif gamma == 1.0:
        weight = torch.mul(u, w)
    else:
        weight = u.pow(gamma) if gamma != 2.0 else u * u  # a fresh power
        weight.mul_(w)
    terms = _into(torch.mul, log_p, weight, out=log_p)  # log p is not needed again (but below)
    loss = terms.sum(dim).neg_().add_(0.0)
    # every log p finite iff every loss is (log p = -inf gives inf, or NaN on a zero-weight class):
    # read off the per-sample losses, not off the logits' size
    log_p_finite = _all_finite(loss)
    if not log_p_finite:  # 0 * (-inf) on a zero-weight class whose log p overflowed
        terms = torch.where(w > 0, terms, 0.0)
        loss = terms.sum(dim).neg_().add_(0.0)
    if not need_grad:
        return loss, None
    if gamma != 0.0 and log_p_finite:
        # a = weight - gamma terms p / u off k (there u >= 1/2); at k, where u_k may be tiny and p / u
        # overflow, the value is replaced: a_k = weight_k (1 + gamma h_k), h_k = log1p(s) / s (limit 1)
        weight_k = weight.gather(dim, k)
        a = weight.addcmul_(terms, _into(torch.div, p, u, out=u), value=-gamma)
        h_k = torch.where(s > 0, log_shift.div_(s), 1.0)
        a_k = weight_k.mul_(h_k.mul_(gamma).add_(1.0))
    elif gamma != 0.0:  # some p = 0 (rare): the guarded h, from log p and p_k recomputed
        log_p = torch.sub(x, top).sub_(log_shift)
        p.scatter_(dim, k, torch.reciprocal(one_plus_s))
        h = focal_h(p, log_p, u, out=scratch, log_p_finite=log_p_finite, scale=-gamma)  # gamma h
        a = weight.mul_(h.add_(1.0))
        a_k = a.gather(dim, k)
    else:
        a = weight
        a_k = a.gather(dim, k)
    rest_k = a.scatter_(dim, k, 0.0).sum(dim, keepdim=True)  # A_k; a is 0 at k from here on
    d = _into(torch.mul, p, (rest_k + a_k).mul_(scale), out=p if out is None else out).sub_(a, alpha=scale)
    d_k = torch.div(rest_k, one_plus_s).sub_(a_k.mul_(u_k)).mul_(scale)  # p_k A_k - a_k u_k
    return loss, d.scatter_(dim, k, d_k)


def zero_weight_masked(loss: torch.Tensor, alpha_t: torch.Tensor | None) -> torch.Tensor:
    """The weighted per-sample loss with a weight of 0 (an ignored sample, a class alpha of 0) giving 0
    also where the unweighted loss is inf (logits spread beyond the dtype's range): the reference masks,
    0 * inf would be NaN. Read on CPU (one look at the per-sample losses); elsewhere always masked."""
    if alpha_t is None or _all_finite(loss):
        return loss
    return torch.where(alpha_t > 0, loss, 0.0)


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite, read on CPU only (False elsewhere: guard unconditionally)."""
    if t.device.type != "cpu" or torch.compiler.is_compiling() or wrapped(t):
        return t.numel() == 0
    return t.numel() == 0 or math.isfinite(float(t.abs().max()))


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
