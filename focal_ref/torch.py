"""Focal loss for PyTorch, with a closed-form backward that keeps one tensor for autograd.

The same functions, keyword arguments and conventions as the float64 reference (:mod:`focal_ref`):
``alpha`` weights the positive class, reductions are ``"none"``, ``"mean"``, ``"sum"``, and the
softmax class axis is ``dim`` (default 1, as in :func:`torch.nn.functional.cross_entropy`).

How it computes:

* Any device, any float dtype. float64 and float32 are computed natively; float16 and bfloat16 are
  computed in float32 inside and returned in the input's dtype.
* Log space throughout: -log p = relu(-x) + log1p(e^-|x|), 1 - p = sigmoid(-x), log-softmax with log1p
  for the dominant class; never ``1 - sigmoid(x)`` or ``log(sigmoid(x))``. Loss and gradient are finite
  for every finite logit and every gamma >= 0.
* On CPU, the elementwise losses (sigmoid, binary, FL*) of more than 512k elements are computed in
  blocks of 256k that stay in cache: faster, and the values of one call up to a last bit
  (:func:`_in_cpu_blocks`).
* ``sigmoid_focal_loss(..., fused=True)`` runs the same computation through ``torch.compile`` (one fused
  loop; opt-in, since the first call compiles; falls back to eager with a warning).
* The forward pass computes the loss and its derivative together (the reference's closed forms) inside a
  :class:`torch.autograd.Function`, and keeps only that derivative for backward: one tensor of the
  logits' size (float32 for float32/16/bfloat16 input, float64 for float64), 4 bytes per element in
  float32, against ~24 for autograd of the textbook formula. The inputs themselves are not kept.
* Gradients flow to the logits (or probabilities) only. Targets are constants: passing targets that
  require grad raises ``ValueError`` (detach them). The backward is once-differentiable: differentiating
  its gradient again (``create_graph=True``, then ``backward``) raises a ``RuntimeError`` saying so.
* Hyperparameters and shapes are validated eagerly (no device synchronisation). Checks of tensor values
  (finite logits, targets in range) need a sync and run only with ``validate=True``; without it,
  out-of-range class indices raise PyTorch's own index error (on CPU) or a device assert (on CUDA).
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F

from ._checks import (
    check_axis,
    check_beta,
    check_binary_alpha,
    check_class_alpha,
    check_gamma,
    check_ignore_index,
    check_reduction,
    check_same_shape,
    softmax_target_kind,
)

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
]


# ----------------------------------------------------------------------------------------------
# input conversion and checks


def _float_input(value, name: str) -> torch.Tensor:
    """The logits (or probs) as a floating tensor; lists and arrays are converted, integers rejected."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    return tensor


def _targets_like(targets, reference: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor:
    """Real-valued targets on the device of ``reference``, in ``compute_dtype``."""
    tensor = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
    if tensor.is_complex():
        raise TypeError(f"targets must be real, got dtype {tensor.dtype}")
    _no_target_grad(tensor)
    return tensor.to(device=reference.device, dtype=compute_dtype)


def _no_target_grad(targets: torch.Tensor) -> None:
    if targets.requires_grad:
        raise ValueError(
            "targets must not require grad: focal_ref.torch differentiates with respect to the "
            "logits/probs only; pass targets.detach()"
        )


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (float32, float16, bfloat16) is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _require(condition: torch.Tensor, message: str) -> None:
    """A value check; ``bool()`` synchronises with the device, hence only under ``validate=True``."""
    if not bool(condition.all()):
        raise ValueError(message)


def _check_unit_interval(values: torch.Tensor, name: str) -> None:
    _require((values >= 0) & (values <= 1), f"{name} must lie in [0, 1] (and not be NaN)")


def _check_finite(values: torch.Tensor, name: str) -> None:
    _require(torch.isfinite(values), f"{name} must be finite; got NaN or inf")


def _reduce(loss: torch.Tensor, reduction: str, count=None) -> torch.Tensor:
    """``count`` is the mean's denominator (a tensor for ignore_index; default: every element)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if count is None:
        # sum() / n rather than mean(): mean's backward materialises a full-size tensor of 1/n; this
        # divides the 0-d gradient instead, and backward stays one pass.
        return loss.sum() / max(loss.numel(), 1)
    return loss.sum() / count.clamp_min(1)  # 0 / 1 = 0 when every sample is ignored


def _pow(base: torch.Tensor, gamma: float):
    """base**gamma with the common exponents as plain products (``None`` stands for 1)."""
    if gamma == 0.0:
        return None
    if gamma == 1.0:
        return base
    if gamma == 2.0:
        return base * base
    return base.pow(gamma)


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    """A 0-d tensor on ``like``'s device, filled there (no host-to-device copy, no sync)."""
    return torch.full((), value, dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------------------------
# the autograd Function: forward keeps d loss / d input, backward scales it


class _ClosedFormFocal(torch.autograd.Function):
    """Runs ``kernel(input, *args, need_grad)`` -> (loss, dloss/dinput) and keeps only the derivative.

    ``dim`` is None for elementwise losses (or their 0-d sum); for per-sample (softmax) losses it is the
    class axis, along which backward broadcasts the incoming per-sample gradient. The loss is returned
    in the compute dtype (float32 for half-precision input), so that a mean over millions of elements
    is summed where it cannot overflow; the public functions cast the result to the input's dtype.
    """

    @staticmethod
    def forward(ctx, inputs, kernel, args, dim):
        compute = inputs.to(_compute_dtype(inputs.dtype))
        loss, grad = kernel(compute, *args, need_grad=ctx.needs_input_grad[0])
        ctx.dim, ctx.dtype = dim, inputs.dtype
        ctx.save_for_backward(grad)
        return loss  # in the compute dtype: callers reduce first, then cast to the input's dtype

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        grad_output = grad_output.detach().to(grad.dtype)
        if ctx.dim is not None:
            grad_output = grad_output.unsqueeze(ctx.dim)
        result = (grad * grad_output).to(ctx.dtype)
        if torch.is_grad_enabled():  # create_graph=True: differentiating this gradient again must fail loudly
            result = _NoSecondDerivative.apply(result.requires_grad_(True))
        return result, None, None, None


class _NoSecondDerivative(torch.autograd.Function):
    """Identity whose backward raises: marks the closed-form gradient as once-differentiable."""

    @staticmethod
    def forward(ctx, grad):
        return grad.view_as(grad)

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError(
            "focal_ref.torch: the closed-form focal loss backward is once-differentiable; "
            "double backward (second derivatives) is not implemented"
        )


# Elements per block for the elementwise kernels on CPU: a block's ~5 float32 temporaries (5 MiB) stay
# in cache. On the project's 2-core machine (1 MiB L2 per core, 32 MiB L3) forward+backward at 4M and
# 10M float32 elements ran 1.3-1.7x faster than in one pass over the whole tensor, best at 256k and
# within 10% of that from 128k to 512k.
_CPU_BLOCK = 1 << 18


def _one_call(kernel, x, y, *params, need_grad, summed=False):
    """``kernel(x, y, *params, need_grad)``; with ``summed`` the loss comes back as its 0-d sum."""
    loss, grad = kernel(x, y, *params, need_grad=need_grad)
    return (loss.sum() if summed else loss), grad


def _in_cpu_blocks(kernel, x, y, *params, need_grad, summed=False):
    """:func:`_one_call`, block by block on CPU; in one call elsewhere or when small.

    The kernels are ~20 elementwise passes. Over a whole large tensor each pass streams it through
    main memory, and each fresh temporary's pages must be faulted in. Over a block that fits in cache,
    with the allocator reusing the previous block's freed temporaries, neither happens. The formulas
    are elementwise, so the values are those of one call, up to the last-bit differences PyTorch's SIMD
    and scalar loops already have (where each block's tail falls). With ``summed`` each block's loss is
    added up as it is made, and no loss tensor of the input's size exists. On CUDA the kernels are
    bandwidth- and launch-bound instead; blocking would only add launches.
    """
    n = x.numel()
    if x.device.type != "cpu" or n <= 2 * _CPU_BLOCK:
        return _one_call(kernel, x, y, *params, need_grad=need_grad, summed=summed)
    flat_x, flat_y = x.reshape(-1), y.reshape(-1)
    loss = None if summed else torch.empty_like(flat_x)
    block_sums = []
    grad = torch.empty_like(flat_x) if need_grad else None
    for start in range(0, n, _CPU_BLOCK):
        block = slice(start, start + _CPU_BLOCK)
        block_loss, block_grad = kernel(flat_x[block], flat_y[block], *params, need_grad=need_grad)
        if summed:
            block_sums.append(block_loss.sum())
        else:
            loss[block] = block_loss
        if need_grad:
            grad[block] = block_grad
    loss = torch.stack(block_sums).sum() if summed else loss.view(x.shape)
    return loss, None if grad is None else grad.view(x.shape)


def _elementwise_loss(kernel, x, args, reduction, blocks=True):
    """An elementwise kernel through :class:`_ClosedFormFocal`, reduced, in the input's dtype.

    A "mean" or "sum" is summed inside the Function in the compute dtype (float32 for half-precision
    input, whose sum over many elements would overflow even where the mean is small), on CPU block by
    block (:func:`_in_cpu_blocks`; ``blocks=False`` for the fused kernel, which needs no blocking).
    """
    summed = reduction != "none"
    run = functools.partial(_in_cpu_blocks if blocks else _one_call, kernel, summed=summed)
    loss = _ClosedFormFocal.apply(x, run, args, None)
    if reduction == "mean":
        loss = loss / max(x.numel(), 1)
    return loss.to(x.dtype)


# ----------------------------------------------------------------------------------------------
# sigmoid / binary / multi-label


def _sigmoid_kernel(x, y, alpha, gamma, need_grad):
    """FL and dFL/dx elementwise; the reference's ``sigmoid_focal_loss`` and ``sigmoid_focal_loss_grad``.

    lerp(a, b, y) = (1-y) a + y b is evaluated by PyTorch as a + y (b-a) for y < 1/2 and
    b - (1-y)(b-a) otherwise, so each mixture below is exact for hard labels and keeps the
    reference's no-cancellation sums for soft ones.

    Written for speed as well: on CPU a fresh full-size tensor costs more than the arithmetic done in
    it (its memory pages must be faulted in), so the chain allocates five and works in place from then
    on, each buffer reused once its value is no longer needed.
    """
    neg_x = torch.neg(x)
    p, q = torch.sigmoid(x), torch.sigmoid(neg_x)  # q = 1 - p without the subtraction
    # l = log1p(e^-|x|) serves both logs: -log p = relu(-x) + l, -log(1-p) = relu(x) + l.
    l = torch.abs(x).neg_().exp_().log1p_()
    # CE = (1-y)(relu(x) + l) + y (relu(-x) + l) = l + lerp(relu(x), relu(-x), y): no cancellation.
    ce = torch.clamp_min(x, 0.0).lerp_(neg_x.clamp_min_(0.0), y).add_(l)
    m = torch.lerp(p, q, y, out=l)  # 1 - p_t = (1-y) p + y q, a sum of non-negative terms
    if need_grad:
        if gamma != 0.0:
            # r = p q / m in [0, 1]: the derivative of m^gamma is gamma m^gamma r (1-2y), free of
            # 0^(gamma-1). 0/0 happens only where m underflowed to 0 (a hard label with p_t rounding
            # to 1); there m^gamma = 0 kills the term, and nan_to_num_ sets that r to 0 as the reference does.
            s_r = torch.mul(p, q, out=neg_x).div_(m).nan_to_num_(0.0)
            s_r.addcmul_(y, s_r, value=-2.0)  # (1 - 2y) r
        p_minus_y = p.lerp_(q.neg_(), y)  # (1-y) p - y q: exact -q for y = 1, no cancellation near p = 1
    # m^gamma overwrites m; alpha_t goes into q's buffer (None stands for a factor of 1).
    m_gamma = None if gamma == 0.0 else m if gamma == 1.0 else m.mul_(m) if gamma == 2.0 else m.pow_(gamma)
    weight = m_gamma
    if alpha is not None:
        weight = torch.lerp(_scalar(1.0 - alpha, x), _scalar(alpha, x), y, out=q)  # exact for hard labels
        if m_gamma is not None:
            weight.mul_(m_gamma)
    grad = None
    if need_grad:
        if gamma != 0.0:
            p_minus_y.addcmul_(s_r, ce, value=gamma)  # gamma (1-2y) r CE + (p - y)
        grad = p_minus_y if weight is None else p_minus_y.mul_(weight)  # alpha_t m^gamma [...]
    loss = ce if weight is None else ce.mul_(weight)  # alpha_t m^gamma CE
    return loss, grad


def _sigmoid_inputs(logits, targets, alpha, gamma, reduction, validate, name="logits"):
    x = _float_input(logits, name)
    y = _targets_like(targets, x, _compute_dtype(x.dtype))
    check_same_shape(x.shape, y.shape, name)
    alpha, gamma, reduction = check_binary_alpha(alpha), check_gamma(gamma), check_reduction(reduction)
    if validate:
        if name == "logits":
            _check_finite(x, name)
        else:
            _check_unit_interval(x, name)
        _check_unit_interval(y, "targets")
    return x, y, alpha, gamma, reduction


_COMPILED = {}


def _fused_sigmoid_kernel(x, y, alpha, gamma, need_grad):
    """:func:`_sigmoid_kernel` through ``torch.compile``: one fused loop instead of ~20 tensor passes.

    Compiled once per process (and per alpha/gamma value; shapes are dynamic), always with the gradient
    so that one graph serves both modes. If compiling fails (no C++ compiler, an unsupported platform),
    it warns once and runs the eager kernel from then on.
    """
    compiled = _COMPILED.get("sigmoid")
    if compiled is None:
        compiled = _COMPILED["sigmoid"] = torch.compile(_sigmoid_kernel, dynamic=True, fullgraph=True)
    if compiled is not False:
        try:
            return compiled(x, y, alpha, gamma, need_grad=True)
        except Exception as error:  # any compiler failure: fall back, do not fail the training step
            warnings.warn(f"focal_ref.torch: fused=True is unavailable here ({type(error).__name__}: {error}); "
                          "using the eager kernel", RuntimeWarning, stacklevel=7)
            _COMPILED["sigmoid"] = False
    return _sigmoid_kernel(x, y, alpha, gamma, need_grad=need_grad)


def sigmoid_focal_loss(
    logits, targets, *, alpha=0.25, gamma=2.0, reduction="none", validate=False, fused=False
):
    r"""Sigmoid focal loss of logits, elementwise (binary or multi-label).

    .. math::

        p = \sigma(x),\quad p_t = p\,y + (1-p)(1-y),\quad \alpha_t = \alpha y + (1-\alpha)(1-y),\qquad
        \mathrm{FL} = \alpha_t\,(1-p_t)^{\gamma}\,\mathrm{CE},\quad
        \mathrm{CE} = -[y\log p + (1-y)\log(1-p)].

    The backward is the reference's closed form
    :math:`\alpha_t m^\gamma[\gamma(1-2y)\,r\,\mathrm{CE} + (p-y)]` with :math:`m = 1-p_t`,
    :math:`r = p(1-p)/m`, computed in the forward pass and kept as the only saved tensor.

    Args:
        logits: floating tensor of any shape (any device; float16/bfloat16 are computed in float32).
        targets: tensor of the same shape with values in [0, 1] (soft labels allowed); must not require grad.
        alpha: weight of the positive class in [0, 1]; ``None`` for no weighting.
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``.
        validate: also check that the logits are finite and the targets in [0, 1] (synchronises).
        fused: compute through ``torch.compile`` (one fused kernel; same formulas, same saved tensor).
            The first call compiles (tens of seconds); falls back to eager with a warning if compiling
            fails.

    Returns:
        A tensor of the logits' dtype: elementwise (``"none"``) or 0-d.
    """
    x, y, alpha, gamma, reduction = _sigmoid_inputs(logits, targets, alpha, gamma, reduction, validate)
    if fused:
        return _elementwise_loss(_fused_sigmoid_kernel, x, (y, alpha, gamma), reduction, blocks=False)
    return _elementwise_loss(_sigmoid_kernel, x, (y, alpha, gamma), reduction)


def sigmoid_focal_loss_grad(logits, targets, *, alpha=0.25, gamma=2.0, validate=False):
    """Elementwise d FL_i / d x_i of :func:`sigmoid_focal_loss`, without autograd; the logits' dtype.

    A plain tensor, detached from any graph the logits belong to.
    """
    x, y, alpha, gamma, _ = _sigmoid_inputs(logits, targets, alpha, gamma, "none", validate)
    compute = x.detach().to(_compute_dtype(x.dtype))
    _, grad = _in_cpu_blocks(_sigmoid_kernel, compute, y, alpha, gamma, need_grad=True)
    return grad.to(x.dtype)


def _binary_kernel(p, y, alpha, gamma, need_grad):
    """FL of probabilities and dFL/dp, the reference's ``binary_focal_loss`` taken at face value.

    dFL/dp = alpha_t [gamma m^gamma (CE/m)(1-2y) + m^gamma dCE/dp] with m = y(1-p) + (1-y)p:
    CE/m -> 1 where m = 0 (a hard label with p = y, where CE = 0 too), so no 0^(gamma-1) appears.
    """
    one_minus_p = 1.0 - p
    # xlogy style: a zero weight gives 0 even where the log is -inf; log1p(-p) is exact for small p.
    log_p = torch.where(y > 0, torch.log(torch.where(y > 0, p, 1.0)), 0.0)
    log_q = torch.where(y < 1, torch.log1p(torch.where(y < 1, -p, 0.0)), 0.0)
    ce = -(y * log_p + (1.0 - y) * log_q)
    m = y * one_minus_p + (1.0 - y) * p
    m_gamma = torch.ones_like(m) if gamma == 0.0 else m**gamma
    alpha_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
    loss = alpha_t * m_gamma * ce
    if not need_grad:
        return loss, None
    ce_over_m = torch.where(m > 0, ce / torch.where(m > 0, m, 1.0), 1.0)
    d_ce = torch.where(y > 0, -y / p, 0.0) + torch.where(y < 1, (1.0 - y) / one_minus_p, 0.0)
    grad = alpha_t * m_gamma * (gamma * (1.0 - 2.0 * y) * ce_over_m + d_ce)
    return loss, grad


def binary_focal_loss(probs, targets, *, alpha=0.25, gamma=2.0, reduction="none", validate=False):
    r"""Focal loss of probabilities p = sigma(x), elementwise; the formula of :func:`sigmoid_focal_loss`.

    Takes the math at face value, as the reference does: a probability of 0 on a positive (or 1 on a
    negative) gives +inf; terms with zero target weight are 0. Prefer :func:`sigmoid_focal_loss`, which
    keeps full accuracy as p -> 1. ``validate=True`` checks probs and targets lie in [0, 1].
    """
    p, y, alpha, gamma, reduction = _sigmoid_inputs(probs, targets, alpha, gamma, reduction, validate, "probs")
    return _elementwise_loss(_binary_kernel, p, (y, alpha, gamma), reduction)


def _star_kernel(x, y, alpha, gamma, beta, need_grad):
    """FL* = alpha_t softplus(-z)/gamma, z = gamma y' x + beta; dFL*/dx = -alpha_t y' sigmoid(-z)."""
    sign = torch.lerp(_scalar(-1.0, x), _scalar(1.0, x), y)  # y' = 2y - 1
    z = (sign * x).mul_(gamma).add_(beta)
    alpha_t = 1.0 if alpha is None else torch.lerp(_scalar(1.0 - alpha, x), _scalar(alpha, x), y)
    loss = F.logsigmoid(z).mul_(-1.0 / gamma).mul_(alpha_t)  # softplus(-z) = -logsigmoid(z), no threshold
    if not need_grad:
        return loss, None
    return loss, torch.sigmoid(z.neg_()).mul_(sign).mul_(alpha_t).neg_()


def sigmoid_focal_loss_star(
    logits, targets, *, gamma=2.0, beta=1.0, alpha=0.25, reduction="none", validate=False
):
    r"""FL*, the paper's alternative focal loss (Lin et al. 2017, Appendix A), elementwise.

    .. math:: \mathrm{FL}^* = \alpha_t\,\mathrm{softplus}(-(\gamma x_t + \beta))/\gamma,\qquad x_t = (2y-1)\,x.

    ``targets`` must be hard labels (0 or 1; checked only with ``validate=True``) and ``gamma`` > 0.
    """
    gamma = check_gamma(gamma, positive=True)
    beta = check_beta(beta)
    x, y, alpha, _, reduction = _sigmoid_inputs(logits, targets, alpha, gamma, reduction, validate)
    if validate:
        _require((y == 0) | (y == 1), "targets must be hard labels (0 or 1) for FL*")
    return _elementwise_loss(_star_kernel, x, (y, alpha, gamma, beta), reduction)


# ----------------------------------------------------------------------------------------------
# softmax / multi-class


def _class_view(values, ndim: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """Per-class weights as a tensor that broadcasts along ``dim`` of an ``ndim``-d tensor."""
    shape = [1] * ndim
    shape[dim] = len(values)
    return torch.tensor(values, dtype=like.dtype).to(like.device, non_blocking=True).view(shape)


def _log_softmax_parts(x: torch.Tensor, dim: int):
    """log p and u = 1 - p along ``dim``, accurate also for the dominant class as p -> 1.

    With k the argmax and s = sum_{c != k} exp(x_c - x_k): log p_k = -log1p(s), 1 - p_k = s/(1+s);
    x_k - logsumexp(x) would round to 0 long before log p_k underflows. The other classes have
    p_c <= 1/2, so 1 - p_c = -expm1(log p_c) is accurate.
    """
    k = x.argmax(dim, keepdim=True)
    shifted = x - x.gather(dim, k)
    s = shifted.exp().scatter_(dim, k, 0.0).sum(dim, keepdim=True)
    log1p_s = torch.log1p(s)
    log_p = shifted.sub_(log1p_s)  # at k: 0 - log1p(s)
    u = torch.expm1(log_p).neg_().scatter_(dim, k, s / (1.0 + s))
    return log_p, u


def _softmax_index_kernel(x, index, alpha_t, gamma, dim, need_grad):
    """Class-index targets: FL = -alpha_t u_t^gamma log p_t; dFL/dx_j = p_j wg_t - [j = t] wg_t (p_t + u_t).

    wg_t = alpha_t u_t^gamma (1 + gamma h_t), h_t = -p_t log p_t / u_t in [0, 1] (its limit 1 where
    u_t = 0): the reference's g_c without 0^(gamma-1). At j = t the reference's p_t * 0 - wg_t u_t.
    """
    log_p, u = _log_softmax_parts(x, dim)
    t = index.unsqueeze(dim)
    log_p_t, u_t = log_p.gather(dim, t), u.gather(dim, t)
    u_gamma = _pow(u_t, gamma)
    weight = alpha_t.unsqueeze(dim) if u_gamma is None else u_gamma * alpha_t.unsqueeze(dim)
    loss = (weight * log_p_t).neg_().squeeze(dim)
    if not need_grad:
        return loss, None
    if gamma != 0.0:
        p_t = log_p_t.exp()
        h_t = torch.where(u_t > 0, -p_t * log_p_t / torch.where(u_t > 0, u_t, 1.0), 1.0)
        weight = weight * (1.0 + gamma * h_t)
    grad = log_p.exp_().mul_(weight).scatter_(dim, t, -weight * u_t)
    return loss, grad


def _softmax_prob_kernel(x, w, gamma, dim, need_grad):
    """Probability targets with class weights w_c = y_c alpha_c: the reference's softmax_focal_loss(_grad).

    dFL/dx_j = p_j sum_{c != j} w_c g_c - w_j g_j u_j, g_c = u_c^gamma (1 + gamma h_c).
    """
    log_p, u = _log_softmax_parts(x, dim)
    u_gamma = _pow(u, gamma)
    weight = w if u_gamma is None else w * u_gamma
    loss = (weight * log_p).sum(dim).neg_()
    if not need_grad:
        return loss, None
    p = log_p.exp()
    if gamma != 0.0:
        h = torch.where(u > 0, -p * log_p / torch.where(u > 0, u, 1.0), 1.0)
        weight = weight * (1.0 + gamma * h)
    others = weight.sum(dim, keepdim=True) - weight  # exact for one-hot targets
    grad = p.mul_(others).sub_(weight * u)
    return loss, grad


def _softmax_inputs(logits, targets, alpha, gamma, reduction, dim, ignore_index, validate, name):
    """Checks shared by the softmax losses; returns the input, the target data and the mean's count."""
    x = _float_input(logits, name)
    dim = check_axis(dim, x.ndim, "dim")
    gamma, reduction = check_gamma(gamma), check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    raw = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
    if raw.is_complex() or raw.dtype == torch.bool:
        raise TypeError(f"targets must be integer class indices or real probabilities, got dtype {raw.dtype}")
    _no_target_grad(raw)
    kind = softmax_target_kind(x.shape, raw.shape, dim, name)
    num_classes = x.shape[dim]
    weights = check_class_alpha(alpha, num_classes)
    compute = _compute_dtype(x.dtype)
    if validate:
        (_check_finite if name == "logits" else _check_unit_interval)(x, name)
    if kind == "indices":
        if raw.is_floating_point():
            raise TypeError(f"targets of shape {tuple(raw.shape)} are class indices and must be integers, got dtype {raw.dtype}")
        index = raw.to(device=x.device, dtype=torch.long)
        keep = None if ignore_index is None else index != ignore_index
        if validate:
            in_range = (index >= 0) & (index < num_classes)
            _require(in_range if keep is None else in_range | ~keep,
                     f"targets must be class indices in [0, {num_classes}) (or ignore_index={ignore_index})")
        if keep is not None:
            index = torch.where(keep, index, 0)
        if weights is None:
            alpha_t = torch.ones(index.shape, dtype=compute, device=x.device)
        else:
            alpha_t = torch.tensor(weights, dtype=compute).to(x.device, non_blocking=True)[index]
        if keep is not None:
            alpha_t = alpha_t * keep
        return x, dim, "indices", (index, alpha_t), gamma, reduction, keep
    if ignore_index is not None:
        raise ValueError("ignore_index applies only to integer class-index targets, not to probability targets")
    y = raw.to(device=x.device, dtype=compute)
    if validate:
        _check_unit_interval(y, "targets")
    w = y if weights is None else y * _class_view(weights, x.ndim, dim, y)
    return x, dim, "probabilities", w, gamma, reduction, None


def softmax_focal_loss(
    logits, targets, *, alpha=None, gamma=2.0, reduction="none", dim=1, ignore_index=None, validate=False
):
    r"""Softmax (multi-class) focal loss, one value per sample: :math:`-\sum_c y_c\alpha_c(1-p_c)^\gamma\log p_c`.

    The backward is the reference's closed form
    :math:`\partial\mathrm{FL}/\partial x_j = p_j\sum_{c\ne j} w_c g_c - w_j g_j u_j`
    (:math:`w_c = y_c\alpha_c`, :math:`u_c = 1-p_c`, :math:`g_c = u_c^\gamma(1+\gamma h_c)`,
    :math:`h_c = -p_c\log p_c/u_c`), computed in the forward pass and kept as the only saved tensor.

    Args:
        logits: floating tensor with the class axis ``dim`` of size C, e.g. (N, C) or (N, C, H, W).
        targets: integer class indices (the logits' shape without ``dim``) or probabilities (the logits'
            shape; one-hot or soft, entries in [0, 1], not renormalised). Must not require grad.
        alpha: ``None`` (every class weight 1), one number in [0, 1], or a sequence of C weights in [0, 1].
        gamma: focusing parameter, real, >= 0.
        reduction: ``"none"`` (per sample), ``"mean"`` (over non-ignored samples; 0 if all are ignored) or
            ``"sum"``.
        dim: the class axis (default 1, as :func:`torch.nn.functional.cross_entropy`).
        ignore_index: with integer targets only: those samples give 0 and leave the mean's denominator.
        validate: also check finite logits and targets in range (synchronises with the device).
    """
    x, dim, kind, data, gamma, reduction, keep = _softmax_inputs(
        logits, targets, alpha, gamma, reduction, dim, ignore_index, validate, "logits"
    )
    if kind == "indices":
        index, alpha_t = data
        loss = _ClosedFormFocal.apply(x, _softmax_index_kernel, (index, alpha_t, gamma, dim), dim)
    else:
        loss = _ClosedFormFocal.apply(x, _softmax_prob_kernel, (data, gamma, dim), dim)
    return _reduce(loss, reduction, None if keep is None else keep.sum()).to(x.dtype)


def softmax_focal_loss_grad(logits, targets, *, alpha=None, gamma=2.0, dim=1, ignore_index=None, validate=False):
    """d FL_n / d x_{n,j} of :func:`softmax_focal_loss` (reduction ``"none"``), without autograd.

    A plain tensor of the logits' shape and dtype, detached from any graph the logits belong to.
    """
    x, dim, kind, data, gamma, _, _ = _softmax_inputs(
        logits, targets, alpha, gamma, "none", dim, ignore_index, validate, "logits"
    )
    compute = x.detach().to(_compute_dtype(x.dtype))
    if kind == "indices":
        _, grad = _softmax_index_kernel(compute, *data, gamma, dim, need_grad=True)
    else:
        _, grad = _softmax_prob_kernel(compute, data, gamma, dim, need_grad=True)
    return grad.to(x.dtype)


def _categorical_kernel(p, w, gamma, dim, need_grad):
    """-sum_c w_c u_c^gamma log p_c of probabilities (not renormalised) and its derivative per entry,
    d/dp_j = w_j u_j^gamma [gamma log p_j / u_j - 1/p_j], with log p / u -> -1 where u = 0 (p = 1)."""
    u = 1.0 - p
    log_p = torch.where(w > 0, torch.log(torch.where(w > 0, p, 1.0)), 0.0)
    u_gamma = torch.ones_like(u) if gamma == 0.0 else u**gamma
    weight = w * u_gamma
    loss = (weight * log_p).sum(dim).neg_()
    if not need_grad:
        return loss, None
    log_p_over_u = torch.where(u > 0, log_p / torch.where(u > 0, u, 1.0), -1.0)
    inv_p = torch.where(w > 0, 1.0 / torch.where(w > 0, p, 1.0), 0.0)
    grad = torch.where(w > 0, weight * (gamma * log_p_over_u - inv_p), 0.0)
    return loss, grad


def categorical_focal_loss(
    probs, targets, *, alpha=None, gamma=2.0, reduction="none", dim=1, ignore_index=None, validate=False
):
    r"""Softmax focal loss of probabilities, :math:`-\sum_c y_c\alpha_c(1-p_c)^\gamma\log p_c`, per sample.

    ``probs`` are used as given (entries in [0, 1], not renormalised; ``validate=True`` checks them); a
    zero probability on a class with positive target weight gives +inf. The gradient is with respect to
    ``probs``. Targets, ``alpha``, ``reduction``, ``dim`` and ``ignore_index`` are as in
    :func:`softmax_focal_loss`.
    """
    p, dim, kind, data, gamma, reduction, keep = _softmax_inputs(
        probs, targets, alpha, gamma, reduction, dim, ignore_index, validate, "probs"
    )
    if kind == "indices":
        index, alpha_t = data
        w = torch.zeros(p.shape, dtype=alpha_t.dtype, device=p.device)
        w.scatter_(dim, index.unsqueeze(dim), alpha_t.unsqueeze(dim))
    else:
        w = data
    loss = _ClosedFormFocal.apply(p, _categorical_kernel, (w, gamma, dim), dim)
    return _reduce(loss, reduction, None if keep is None else keep.sum()).to(p.dtype)


# ----------------------------------------------------------------------------------------------
# Module wrappers


class _FocalModule(torch.nn.Module):
    """Holds validated hyperparameters; ``forward(input, target)`` calls the functional loss."""

    _function = None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())

    def forward(self, input, target):
        return type(self)._function(input, target, **self._kwargs)


class SigmoidFocalLoss(_FocalModule):
    """:func:`sigmoid_focal_loss` as a Module. ``reduction`` defaults to ``"mean"``, as torch.nn losses do."""

    _function = staticmethod(sigmoid_focal_loss)

    def __init__(self, alpha=0.25, gamma=2.0, reduction="mean", validate=False, fused=False):
        super().__init__()
        self._kwargs = dict(
            alpha=check_binary_alpha(alpha), gamma=check_gamma(gamma), reduction=check_reduction(reduction),
            validate=bool(validate),
        )
        if fused:
            self._kwargs["fused"] = True


class BinaryFocalLoss(_FocalModule):
    """:func:`binary_focal_loss` (probability input) as a Module; ``reduction`` defaults to ``"mean"``."""

    _function = staticmethod(binary_focal_loss)

    def __init__(self, alpha=0.25, gamma=2.0, reduction="mean", validate=False):
        super().__init__()
        self._kwargs = dict(
            alpha=check_binary_alpha(alpha), gamma=check_gamma(gamma), reduction=check_reduction(reduction),
            validate=bool(validate),
        )


class SoftmaxFocalLoss(_FocalModule):
    """:func:`softmax_focal_loss` as a Module. ``reduction`` defaults to ``"mean"``, as torch.nn losses do.

    ``alpha`` is validated here as far as it can be without knowing C (a number in [0, 1] or a sequence
    of numbers in [0, 1]); its length is checked against the logits at the first call.
    """

    _function = staticmethod(softmax_focal_loss)

    def __init__(self, alpha=None, gamma=2.0, reduction="mean", dim=1, ignore_index=None, validate=False):
        super().__init__()
        if alpha is not None and hasattr(alpha, "__len__") and not isinstance(alpha, (str, bytes)):
            alpha = tuple(alpha.tolist() if hasattr(alpha, "tolist") else alpha)
            check_class_alpha(alpha, len(alpha))
        else:
            check_class_alpha(alpha, 1)
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        self._kwargs = dict(
            alpha=alpha, gamma=check_gamma(gamma), reduction=check_reduction(reduction), dim=dim,
            ignore_index=check_ignore_index(ignore_index), validate=bool(validate),
        )


class CategoricalFocalLoss(SoftmaxFocalLoss):
    """:func:`categorical_focal_loss` (probability input) as a Module; ``reduction`` defaults to ``"mean"``."""

    _function = staticmethod(categorical_focal_loss)
