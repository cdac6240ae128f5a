"""First-order kernels of :mod:`focal_ref.torch`: each returns (loss, d loss / d input) in one pass.

The formulas are the reference's (:mod:`focal_ref._reference`), written in torch ops; the math is that
of Lin et al. 2017, https://arxiv.org/abs/1708.02002. Every kernel takes the input already in its
compute dtype (float64 or float32) and ``need_grad``; without it the derivative is ``None``.

The sigmoid, binary and FL* kernels live here with the helpers every kernel shares (``power``,
``split_power``, ``_into``, the alpha and class-weight views); the softmax and categorical kernels are in
:mod:`focal_ref._torch_softmax`.
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


def split_power(m: torch.Tensor, gamma: float, low: float | None = None) -> bool:
    """Whether to apply m^gamma as h h with h = m^(gamma/2), rather than as one factor.

    One factor m^gamma goes subnormal (and loses digits) where m < tiny^(1/gamma), even where the loss
    alpha_t m^gamma CE is a normal number (float32, x = -3.4e38, y = 1e-7, gamma = 6: m^6 = 1e-42, the
    loss 3.4e-11); (B h)(alpha_t h) keeps every intermediate normal there. The two orders round
    differently, so on CPU the split is taken only for a block that holds such an m: ordinary inputs give
    the bits they always gave (the book's stored experiments re-run bit for bit). On other devices, under
    torch.compile and under torch.func, where looking at values would synchronise or cannot be traced,
    it is always taken. ``low``: m's minimum where the caller has read it already (:func:`cpu_min`).
    """
    if gamma <= 1.0:
        return False
    low = cpu_min(m) if low is None else low
    if low is None:
        return True
    return m.numel() > 0 and low < torch.finfo(m.dtype).tiny ** (1.0 / gamma)


def cpu_min(t: torch.Tensor) -> float | None:
    """``float(t.min())`` on CPU in eager mode (inf for no elements, NaN if any is NaN); ``None`` on other
    devices, under torch.compile and under torch.func, where reading a value would synchronise or cannot
    be traced.

    A min rather than a comparison such as (t < bound).any(): the same answers (NaN compares False in
    both), without a boolean tensor (a comparison pass into bool costs ~5 float passes on CPU).
    """
    if t.device.type != "cpu" or torch.compiler.is_compiling() or wrapped(t):
        return None
    return float(t.min()) if t.numel() > 0 else math.inf


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


def _alpha_t_into(alpha: float, y: torch.Tensor, out: torch.Tensor, ends: dict | None = None) -> torch.Tensor:
    """alpha_t = lerp(1 - alpha, alpha, y) written into ``out`` (a dead buffer of y's shape).

    From two full tensors rather than 0-d ones: PyTorch's CPU lerp of broadcast 0-d operands runs ~3x
    slower. The same formula, so exact for hard labels (a + 0 (b - a), b - 0 (b - a)). ``ends``: a
    per-call dict that keeps the two filled tensors by shape, so that the blocks of one call fill them
    once (two passes per block saved); never written into.
    """
    if torch.compiler.is_compiling() or wrapped(out) or out.shape != y.shape:
        return _into(torch.lerp, scalar(1.0 - alpha, y), scalar(alpha, y), y, out=out)
    pair = None if ends is None else ends.get(out.shape)
    if pair is None:
        pair = (torch.full_like(out, 1.0 - alpha), torch.full_like(out, alpha))
        if ends is not None:
            ends[out.shape] = pair
    return torch.lerp(pair[0], pair[1], y, out=out)


def sigmoid_kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float | None,
    gamma: float,
    need_grad: bool,
    out: torch.Tensor | None = None,
    ends: dict | None = None,
) -> Pair:
    """FL and dFL/dx elementwise; the reference's ``sigmoid_focal_loss`` and ``sigmoid_focal_loss_grad``.

    dFL/dx = alpha_t m^gamma [gamma (1-2y) r CE + (p - y)], m = 1 - p_t, r = p(1-p)/m in [0, 1].

    lerp(a, b, y) = (1-y) a + y b is evaluated by PyTorch as a + y (b-a) for y < 1/2 and
    b - (1-y)(b-a) otherwise, so each mixture below is exact for hard labels and keeps the
    reference's no-cancellation sums for soft ones. Written for speed as well: five fresh tensors,
    then in-place work, each buffer reused once its value is no longer needed; ``out`` (a view of the
    caller's gradient buffer) receives the derivative's last multiply, so that it is not copied there;
    ``ends``: a per-call dict for alpha_t's two filled tensors (:func:`_alpha_t_into`).
    """
    neg_x = torch.neg(x)
    p, q = torch.sigmoid(x), torch.sigmoid(neg_x)  # q = 1 - p without the subtraction
    # l = log1p(e^-|x|) serves both logs: -log p = relu(-x) + l, -log(1-p) = relu(x) + l.
    # -|x| = min(x, -x): one pass, the same bits as abs then neg
    l = torch.minimum(x, neg_x).exp_().log1p_()  # noqa: E741
    # CE = (1-y)(relu(x) + l) + y (relu(-x) + l) = l + lerp(relu(x), relu(-x), y): no cancellation.
    ce = torch.clamp_min(x, 0.0).lerp_(neg_x.clamp_min_(0.0), y).add_(l)
    m = _into(torch.lerp, p, q, y, out=l)  # 1 - p_t = (1-y) p + y q, a sum of non-negative terms
    low = cpu_min(m) if (need_grad and gamma != 0.0) or gamma > 1.0 else None
    if need_grad:
        if gamma != 0.0:
            # r = p q / m in [0, 1]: the derivative of m^gamma is gamma m^gamma r (1-2y), free of
            # 0^(gamma-1). 0/0 happens only where m underflowed to 0; there m^gamma = 0 kills the term.
            # Where m's minimum (read on CPU) is > 0 there is no 0/0 to clear: one pass saved.
            s_r = _into(torch.mul, p, q, out=neg_x).div_(m)
            if low is None or not low > 0.0:
                s_r.nan_to_num_(0.0)
            s_r.addcmul_(y, s_r, value=-2.0)  # (1 - 2y) r
        p_minus_y = p.lerp_(q.neg_(), y)  # (1-y) p - y q: exact -q for y = 1, no cancellation near p = 1
    # m^gamma = h h with h = m^(gamma/2), applied as (B h)(alpha_t h), where one factor would go
    # subnormal although the product is normal (split_power)
    half = power(m, gamma / 2.0, inplace=True) if split_power(m, gamma, low) else None
    weight = half if half is not None else power(m, gamma, inplace=True)
    if alpha is not None:
        alpha_t = _alpha_t_into(alpha, y, q, ends)  # exact for hard labels
        weight = alpha_t if weight is None else alpha_t.mul_(weight)
    grad = None
    if need_grad:
        if gamma != 0.0:
            p_minus_y.addcmul_(s_r, ce, value=gamma)  # gamma (1-2y) r CE + (p - y)
        grad = p_minus_y if half is None else p_minus_y.mul_(half)
        if out is not None:
            grad = out.copy_(grad) if weight is None else torch.mul(grad, weight, out=out)
        else:
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


def zero_at(t: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``t`` with 0 written at ``index`` along ``dim``, in place: a scatter from a tensor of zeros, which
    PyTorch's CPU scatter runs faster than a scatter of the scalar 0 (float32, 65536 samples along dim
    1 of NCHW: 0.35 ms against 0.60 ms; along the inner axis of (65536, 19): 0.34 against 0.58)."""
    return t.scatter_(dim, index, t.new_zeros(index.shape))


def min_is(t: torch.Tensor, bound: float) -> bool:
    """t.min() <= bound, read on CPU only (:func:`cpu_min`; True elsewhere: guard unconditionally)."""
    low = cpu_min(t)
    return t.numel() > 0 and (low is None or low <= bound)


def wrapped(t: torch.Tensor) -> bool:
    return torch._C._functorch.is_functorch_wrapped_tensor(t)
