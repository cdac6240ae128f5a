"""Softmax and categorical kernels of :mod:`focal_ref.torch`: (loss, d loss / d input) per sample.

The formulas are the reference's (:mod:`focal_ref._softmax`, :mod:`focal_ref._prob_grad`), written in
torch ops; the math is that of Lin et al. 2017, https://arxiv.org/abs/1708.02002. Every kernel takes the
logits already in their compute dtype (float64 or float32), the class axis ``dim`` and ``need_grad``.
Probability targets here (:func:`softmax_prob_kernel`) with the helpers the softmax kernels and the
Hessian share; class-index targets in :mod:`focal_ref._torch_softmax_index`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._torch_kernels import Pair, _into, class_view, class_weights, min_is, power, wrapped, zero_at


def first_argmax(values: torch.Tensor, dim: int) -> torch.Tensor:
    """``values.argmax(dim, keepdim=True)`` (the first of tied maxima) from fast elementwise passes.

    PyTorch's CPU argmax along an inner axis is slow (12 ms for (4, 19, 128, 128) along dim 1, where
    ``amax`` takes 0.2 ms): here sign(v - max) + 1 marks the maxima with 1 (:func:`_first_marked`).
    """
    if not _marks_pay(values, dim):
        return values.argmax(dim, keepdim=True)
    marks = torch.sub(values, values.amax(dim, keepdim=True))
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
    """The first class (``dim`` kept) whose mark is 1, for marks in {0, 1} (may be written over).

    Along an innermost axis (rows of (M, C) logits), where a reduction runs row by row and costs more
    than a pass over the whole tensor, first :func:`_sole_marked`. Else (or where a row has two marks)
    the marks times the ranks C, ..., 1 by position, and the max of that is the first marked class's
    rank. A row with a NaN (or none marked) gets class 0.
    """
    sole = _sole_marked(marks, dim)
    if sole is not None:
        return sole
    classes = marks.shape[dim]
    marks.mul_(class_view(torch.arange(classes, 0, -1, dtype=marks.dtype), marks.ndim, dim))
    first = marks.amax(dim, keepdim=True).neg_().add_(classes).nan_to_num_(0.0)
    return first.clamp_(0, classes - 1).long()


def _sole_marked(marks: torch.Tensor, dim: int) -> torch.Tensor | None:
    """The marked class of each row along an innermost ``dim``, from one matrix product of the marks with
    the columns (1, digits of c): each row's count of marks and the base-16 digits of its marked class.
    ``None`` where some row has two or more marks (tied maxima) or a NaN, or where ``dim`` is not
    innermost and contiguous.

    Why a product: along an innermost axis of 19 classes (float32 (65536, 19)), ``torch.max`` with its
    index took 3.4-4.6 ms and the max of the marks times ranks 2.1-3.4 ms; this route 0.9 ms (BLAS
    reads the rows as a matrix; a reduction runs row by row). Why digits below 16: the product is exact
    in whatever precision the matmul runs. ``torch.set_float32_matmul_precision("medium")`` makes a
    float32 product bfloat16 on CPU (8 significant bits), which would round a class index above 256.
    """
    classes = marks.shape[dim]
    if math.prod(marks.shape[dim + 1 :]) != 1 or not marks.is_contiguous() or marks.numel() == 0:
        return None
    places = len(f"{classes - 1:x}")  # base-16 digits of the largest class
    ranks = torch.arange(classes)
    digits = [torch.ones(classes, dtype=torch.long)] + [(ranks >> (4 * i)) & 15 for i in range(places)]
    counted = marks.view(-1, classes) @ torch.stack(digits, 1).to(marks.dtype)
    if not float(counted[:, 0].max()) == 1.0:  # a tie, or a NaN (every finite row has a mark)
        return None
    k = counted[:, 1]
    for place in range(1, places):  # exact: integers below 2^24 (_marks_pay)
        k = k.add(counted[:, 1 + place], alpha=16**place)
    return k.long().view(marks.shape[:dim] + (1,) + marks.shape[dim + 1 :])


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


def others_sum(values: torch.Tensor, dim: int, signed: bool = False) -> torch.Tensor:
    """sum_{c != j} values_c for each j, without cancelling next to a one-hot row.

    Not as sum - values_j: that cancels when one class holds nearly all of the sum (a soft target next
    to one-hot). With k the entry of largest magnitude (largest value unless ``signed``) and rest the
    sum without it, the result is rest at k and values_k + (rest - values_j) elsewhere (the reference's
    heaviest-class form; exact for one-hot rows).
    """
    k = first_argmax(values.abs() if signed else values, dim)
    top = values.gather(dim, k)
    without_top = values.scatter(dim, k, 0.0)
    rest = without_top.sum(dim, keepdim=True)
    return _into(torch.sub, rest, values, out=without_top).add_(top).scatter_(dim, k, rest)


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
    k = _class_of_one(buf, dim, torch.empty_like(x))
    s = zero_at(buf, dim, k).sum(dim, keepdim=True)
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
    # into log p's buffer: only the rare guarded branch below needs log p again, and recomputes it
    terms = _into(torch.mul, log_p, weight, out=log_p)
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
        h = focal_h(p, log_p, u, log_p_finite=log_p_finite, scale=-gamma)  # gamma h
        a = weight.mul_(h.add_(1.0))
        a_k = a.gather(dim, k)
    else:
        a = weight
        a_k = a.gather(dim, k)
    rest_k = zero_at(a, dim, k).sum(dim, keepdim=True)  # A_k; a is 0 at k from here on
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
