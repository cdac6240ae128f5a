"""The autograd machinery of :mod:`focal_ref.torch`: two :class:`torch.autograd.Function` s.

What each path keeps for backward (bytes per element of the input, beyond the input and targets
themselves, which autograd holds by reference, never copied; counted by
``torch.autograd.graph.saved_tensors_hooks`` in ``tests/test_torch_autograd.py``):

* **First order, the default** (``backward()``, ``autograd.grad``): the forward pass computes the
  loss and its derivative D together in closed form and keeps D: 4 B/element in float32 (also for
  float16/bfloat16 input, computed in float32), 8 in float64. Backward is one multiply, grad * D, or
  none: when the incoming gradient is exactly 1 on CPU (``loss.backward()`` of a mean or sum, whose
  1/N is taken inside the Function) D itself is the gradient.
* **First order, keep="inputs"**: nothing beyond the inputs (0 B/element); backward recomputes D
  from the logits and targets.
* **Second order** (``create_graph=True``, ``autograd.functional.hessian``, ``gradgradcheck``, and
  every ``torch.func`` transform, which differentiate with the graph kept): backward returns grad * D
  through a second Function, :class:`_FocalBackward`, whose own backward and ``jvp`` use the closed-form
  second derivative (:mod:`focal_ref._torch_hessian`): diagonal for the elementwise losses, the
  per-sample Hessian-vector product for the softmax loss. It keeps references to the logits,
  targets, the incoming gradient and D: no new tensor beyond what the first-order graph has.
* **Forward mode** (``torch.func.jvp``, ``jacfwd``, ``torch.autograd.forward_ad``): the tangent of the
  loss is the input tangent times D (summed over the class axis for per-sample losses).
* **vmap** (``torch.func.vmap``, per-sample gradients): a generated rule (``generate_vmap_rule``).

Third derivatives raise a clear RuntimeError (reverse and forward mode, nested torch.func transforms
included; ``tests/test_torch_autograd.py``): the closed-form second derivative is a value.

Keep D or keep nothing: ``keep="derivative"`` (the default) or ``keep="inputs"`` on the public
losses. Both give the same bits; keeping nothing saves 4 bytes per element (float32) and runs the
kernel again in backward. The time that costs is measured by ``benchmarks/bench_torch.py`` (rows
"focal_ref" and "focal_ref keep inputs") and shown, from a stored run, in the book's "Making it fast"
chapter and in benchmarks/README.md (written by ``scripts/update_tables.py``); no figure is typed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import _torch_hessian as _h
from . import _torch_kernels as _k
from . import _torch_softmax as _s
from . import _torch_softmax_index as _si
from ._torch_blocks import PROB_BUFFERS, _total, in_cpu_blocks, in_sample_blocks, outgrows_cache

ELEMENTWISE = ("sigmoid", "binary", "star")


@dataclass(frozen=True)
class Spec:
    """Everything but the tensors: which loss, its hyperparameters, and how the Function runs it.

    ``family`` is one of sigmoid, binary, star (elementwise), softmax, categorical (per sample, class
    axis ``dim``); ``kind`` is "indices" or "probabilities" for the last two. ``summed``: the loss
    comes back as its 0-d sum (accumulated in float64), so that backward scales D by a 0-d gradient.
    ``keep_grad``: keep D (else recompute it). ``scale`` (softmax index targets, with ``summed``): the
    loss and D come back times it (the mean's 1/N, folded into a per-sample factor: no extra pass).
    ``mean_of`` (with ``summed``; the other paths' mean): the loss comes back as its sum / mean_of (the
    same float64 division the caller would do) and D times 1/mean_of rounded to D's dtype (the value
    backward would multiply by), so that the mean's backward gets an incoming gradient of 1 and returns
    D itself: no multiply and no fresh tensor of the input's size.
    """

    family: str
    alpha: Any = None
    gamma: float = 2.0
    beta: float = 1.0
    dim: int = 1
    kind: str = "probabilities"
    ignore_index: int | None = None
    summed: bool = False
    keep_grad: bool = True
    fused: bool = False
    scale: float = 1.0
    mean_of: int = 0


# ----------------------------------------------------------------------------------------------
# the kernels, by family


def _elementwise_kernel(spec: Spec):
    """kernel(x, y, need_grad, out) of the family; ``out`` only where the kernel writes D there."""
    if spec.family == "sigmoid":
        from . import _torch_fused

        if spec.fused:
            return lambda x, y, need_grad, out: _torch_fused.fused_sigmoid_kernel(
                x, y, spec.alpha, spec.gamma, need_grad=need_grad
            )
        ends: dict = {}  # alpha_t's filled tensors, shared by the blocks of this call
        return lambda x, y, need_grad, out: _k.sigmoid_kernel(
            x, y, spec.alpha, spec.gamma, need_grad=need_grad, out=out, ends=ends
        )
    if spec.family == "binary":
        return lambda x, y, need_grad, out: _k.binary_kernel(
            x, y, spec.alpha, spec.gamma, need_grad=need_grad
        )
    return lambda x, y, need_grad, out: _k.star_kernel(
        x, y, spec.alpha, spec.gamma, spec.beta, need_grad=need_grad
    )


def _as_values(spec: Spec, target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Targets as the kernels take them: class indices as given, anything else in x's dtype.

    The Function keeps the caller's target tensor (no copy), and converts it on use.
    """
    return target if spec.kind == "indices" and spec.family not in ELEMENTWISE else target.to(x.dtype)


Extra = torch.Tensor | None


def _weighted_elementwise(spec: Spec, x, target, need_grad: bool, weight: Extra, pos_weight: Extra):
    """The sigmoid family with per-element ``weight`` (ignored elements have weight 0) and ``pos_weight``."""
    if spec.family == "binary":
        pos_weight = None if pos_weight is None else pos_weight.to(x.dtype)
        loss, d = _k.binary_kernel(x, target, spec.alpha, spec.gamma, need_grad, pos_weight)
    elif pos_weight is not None:
        pos_weight = pos_weight.to(x.dtype)
        loss, d = _k.sigmoid_weighted_kernel(x, target, spec.alpha, spec.gamma, pos_weight, need_grad)
    else:
        loss, d = _elementwise_kernel(spec)(x, target, need_grad, None)
    if weight is not None:
        weight = weight.to(x.dtype)
        loss = _k.weighted(loss, weight)  # masked: a zero weight gives 0 where the loss is inf
        d = None if d is None else _k.weighted(d, weight)
    return (_total(loss) if spec.summed else loss), d


def mean_scale(spec: Spec, dtype: torch.dtype) -> float:
    """1/mean_of as D's dtype rounds it (1.0 without a folded mean)."""
    if not spec.mean_of:
        return 1.0
    return float(torch.tensor(1.0 / spec.mean_of, dtype=torch.float64).to(dtype))


def first_order(
    spec: Spec,
    x: torch.Tensor,
    target: torch.Tensor,
    need_grad: bool,
    weight: Extra = None,
    pos_weight: Extra = None,
):
    """(loss, D) of the family's kernel, x already in the compute dtype; a folded mean (``mean_of``)."""
    loss, d = _first_order(spec, x, target, need_grad, weight, pos_weight)
    if spec.mean_of:
        loss = loss / spec.mean_of
    return loss, d


def _first_order(spec: Spec, x, target, need_grad: bool, weight: Extra, pos_weight: Extra):
    target = _as_values(spec, target, x)
    if spec.family in ELEMENTWISE:
        if weight is not None or pos_weight is not None:
            return _weighted_elementwise(spec, x, target, need_grad, weight, pos_weight)
        kernel = _elementwise_kernel(spec)
        if spec.mean_of and need_grad:
            scale, inner = mean_scale(spec, x.dtype), kernel

            def kernel(xb, yb, ng, out):  # D scaled block by block, while the block is in cache
                lb, db = inner(xb, yb, ng, out)
                return lb, (None if db is None else db.mul_(scale))

        return in_cpu_blocks(kernel, x, target, need_grad, spec.summed, blocks=not spec.fused)
    if spec.family == "softmax":

        def kernel(xb, tb, ng, out):
            if spec.kind == "indices":
                return _si.softmax_index_kernel(
                    xb, tb, spec.alpha, spec.ignore_index, spec.gamma, 1, ng, spec.scale, out=out
                )
            scale = mean_scale(spec, xb.dtype)
            return _s.softmax_prob_kernel(xb, tb, spec.alpha, spec.gamma, 1, ng, scale=scale, out=out)

        # two classes (half of the passes per sample) run in blocks; the index kernel's few passes over
        # C > 2 classes fastest in one call (measured: 1.2-1.5x slower in blocks, from their per-call
        # overhead); the probability kernel's ~20 passes in blocks only where its buffers outgrow the
        # last-level cache (outgrows_cache)
        index = spec.kind == "indices"
        two = x.shape[spec.dim] == 2
        blocks = two or (not index and outgrows_cache(x, PROB_BUFFERS))
        return in_sample_blocks(kernel, x, target, spec.dim, index, need_grad, spec.summed, blocks)
    w = _s.dense_weights(target, spec.kind, spec.alpha, spec.ignore_index, x, spec.dim)
    loss, d = _s.categorical_kernel(x, w, spec.gamma, spec.dim, need_grad)
    if spec.mean_of and d is not None:
        d = d.mul_(mean_scale(spec, d.dtype))
    return (_total(loss) if spec.summed else loss), d


def hessian_times(
    spec: Spec,
    x: torch.Tensor,
    target: torch.Tensor,
    v: torch.Tensor,
    weight: Extra = None,
    pos_weight: Extra = None,
) -> torch.Tensor:
    """The Hessian of the (per-element or per-sample) loss at x times v; x, v in the compute dtype;
    times the mean's 1/N where it is folded into the loss (``spec.scale``, ``spec.mean_of``)."""
    hv = _hessian_times(spec, x, target, v, weight, pos_weight)
    factor = spec.scale * mean_scale(spec, hv.dtype)
    return hv if factor == 1.0 else hv * factor


def _hessian_times(spec: Spec, x, target, v, weight: Extra, pos_weight: Extra) -> torch.Tensor:
    target = _as_values(spec, target, x)
    if spec.family == "sigmoid":
        pw = None if pos_weight is None else pos_weight.to(x.dtype)
        hess = _h.sigmoid_hess(x, target, spec.alpha, spec.gamma, pw)
        return hess * v if weight is None else _k.weighted(hess, weight.to(x.dtype)) * v
    if spec.family == "binary":
        pw = None if pos_weight is None else pos_weight.to(x.dtype)
        hess = _h.binary_hess(x, target, spec.alpha, spec.gamma, pw)
        return hess * v if weight is None else _k.weighted(hess, weight.to(x.dtype)) * v
    if spec.family == "star":
        return _h.star_hess(x, target, spec.alpha, spec.gamma, spec.beta) * v
    w = _s.dense_weights(target, spec.kind, spec.alpha, spec.ignore_index, x, spec.dim)
    if spec.family == "softmax":
        return _h.softmax_hvp(x, w, spec.gamma, spec.dim, v)
    return _h.categorical_hess(x, w, spec.gamma) * v


def _expand(spec: Spec, g: torch.Tensor) -> torch.Tensor:
    """The loss's incoming gradient, broadcastable to the input's shape (0-d for a summed loss)."""
    return g if spec.family in ELEMENTWISE or spec.summed else g.unsqueeze(spec.dim)


def _contract(spec: Spec, v: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """sum of v * d over what the loss sums: everything (summed), the class axis, or nothing."""
    prod = v * d
    if spec.summed:
        return _total(prod)
    return prod if spec.family in ELEMENTWISE else prod.sum(spec.dim)


def _derivative(spec: Spec, x, target, d, weight: Extra = None, pos_weight: Extra = None) -> torch.Tensor:
    """D as kept, or recomputed from the inputs when it was not (keep="inputs", or a missed need)."""
    if d.shape == x.shape:
        return d
    with torch.no_grad():
        return first_order(spec, x.detach().to(_k.compute_dtype(x.dtype)), target, True, weight, pos_weight)[
            1
        ]


def _is_one(g: torch.Tensor) -> bool:
    """A 0-d CPU gradient equal to 1 (read on CPU only: on CUDA it would synchronise)."""
    return g.ndim == 0 and g.device.type == "cpu" and not _k.wrapped(g) and bool(g == 1)


def wants_derivative(x: torch.Tensor) -> bool:
    """Whether the forward pass may be differentiated: grad mode with an input that requires grad, a
    torch.func transform, or forward-mode AD."""
    if torch.is_grad_enabled() and x.requires_grad:
        return True
    return bool(torch._C._are_functorch_transforms_active()) or torch.autograd.forward_ad._current_level >= 0


class _Focal(torch.autograd.Function):
    """(loss, D) = first_order(x); keeps D (or nothing) and references to the inputs."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: torch.Tensor, target: torch.Tensor, weight: Extra, pos_weight: Extra, spec: Spec, need_grad: bool
    ):
        compute = x.to(_k.compute_dtype(x.dtype))
        loss, d = first_order(spec, compute, target, need_grad and spec.keep_grad, weight, pos_weight)
        return loss, (compute.new_empty(0) if d is None else d)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, weight, pos_weight, spec, _ = inputs
        loss, d = output
        ctx.mark_non_differentiable(d)
        ctx.set_materialize_grads(False)  # else backward gets a zero-filled full-size gradient for D
        ctx.spec = spec
        ctx.save_for_backward(x, target, weight, pos_weight, d)
        ctx.save_for_forward(x, target, weight, pos_weight, d)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_d: torch.Tensor | None):
        x, target, weight, pos_weight, d = ctx.saved_tensors
        spec = ctx.spec
        if grad_loss is None:
            return None, None, None, None, None, None
        d = _derivative(spec, x, target, d, weight, pos_weight)
        if torch.is_grad_enabled():  # create_graph, or a torch.func transform: stay differentiable
            grad = _FocalBackward.apply(x, target, weight, pos_weight, grad_loss, d, spec)
        elif d.dtype == x.dtype and _is_one(grad_loss):
            # loss.backward() of a mean or sum: D is the gradient. Handed over as it is (autograd copies
            # it only where the graph is retained and D still saved): no multiply, no fresh tensor.
            grad = d
        else:
            grad = (_expand(spec, grad_loss.to(d.dtype)) * d).to(x.dtype)
        return grad, None, None, None, None, None

    @staticmethod
    def jvp(ctx, x_t: torch.Tensor | None, *_tangents):
        x, target, weight, pos_weight, d = ctx.saved_tensors
        spec = ctx.spec
        if x_t is None:
            return None, None
        d = _derivative(spec, x, target, d, weight, pos_weight)
        loss_t = _contract(spec, x_t.to(d.dtype), d)
        return loss_t, None


_NO_THIRD_ORDER = ("sigmoid", "binary", "star", "softmax", "categorical")
"""Every family: the closed-form second derivative is not differentiated again (in place, and nested
torch.func transforms do not differentiate through a custom Function's jvp: a third derivative by
jacfwd(hessian) came out silently wrong for the out-of-place families too)."""


_THIRD_ORDER = (
    "focal_ref.torch: third and higher derivatives of the focal losses are not implemented; their "
    "second derivative is closed form and is not differentiated again. Differentiate at most twice "
    "(backward, double backward, torch.func.hessian)."
)


class _HessianTimes(torch.autograd.Function):
    """H v of the closed form as a value: differentiating it (a third derivative, by reverse or forward
    mode, nested torch.func transforms included) raises a clear error instead of a wrong number."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, target, v, weight: Extra, pos_weight: Extra, spec: Spec) -> torch.Tensor:
        return hessian_times(spec, x, target, v, weight, pos_weight)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        raise RuntimeError(_THIRD_ORDER)

    @staticmethod
    def jvp(ctx, *tangents):
        raise RuntimeError(_THIRD_ORDER)


class _FocalBackward(torch.autograd.Function):
    """grad * D as a differentiable function of (x, grad): its derivatives use the closed-form Hessian."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x, target, weight: Extra, pos_weight: Extra, grad_loss: torch.Tensor, d: torch.Tensor, spec: Spec
    ):
        return (_expand(spec, grad_loss.to(d.dtype)) * d).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, target, weight, pos_weight, grad_loss, d, spec = inputs
        ctx.spec = spec
        ctx.save_for_backward(x, target, weight, pos_weight, grad_loss, d)
        ctx.save_for_forward(x, target, weight, pos_weight, grad_loss, d)

    @staticmethod
    def _hvp(ctx, x, target, weight, pos_weight, grad_loss, d, v):
        spec = ctx.spec
        compute = x.to(d.dtype)
        hv = _HessianTimes.apply(compute, target, v.to(d.dtype), weight, pos_weight, spec)
        return _expand(spec, grad_loss.to(d.dtype)) * hv

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, target, weight, pos_weight, grad_loss, d = ctx.saved_tensors
        grad_x = _FocalBackward._hvp(ctx, x, target, weight, pos_weight, grad_loss, d, grad_out).to(x.dtype)
        grad_g = None
        if ctx.needs_input_grad[4]:
            grad_g = _contract(ctx.spec, grad_out.to(d.dtype), d).to(grad_loss.dtype)
        return grad_x, None, None, None, grad_g, None, None

    @staticmethod
    def jvp(ctx, x_t, _target_t, _weight_t, _pos_weight_t, g_t, _d_t, _spec_t):
        x, target, weight, pos_weight, grad_loss, d = ctx.saved_tensors
        out = None
        if x_t is not None:
            out = _FocalBackward._hvp(ctx, x, target, weight, pos_weight, grad_loss, d, x_t)
        if g_t is not None:
            term = _expand(ctx.spec, g_t.to(d.dtype)) * d
            out = term if out is None else out + term
        return None if out is None else out.to(x.dtype)


def apply(x: torch.Tensor, target: torch.Tensor, spec: Spec, weight: Extra = None, pos_weight: Extra = None):
    """The loss through :class:`_Focal`: elementwise, per sample, or a 0-d sum (``spec.summed``), in the
    compute dtype (float64 for a summed float32 loss); the callers reduce, then cast. ``weight`` (ignored
    elements 0) and ``pos_weight``: the sigmoid family's extra arguments, or None."""
    loss, _ = _Focal.apply(x, target, weight, pos_weight, spec, wants_derivative(x))
    return loss


def kernel_grad(spec: Spec, x, target, weight: Extra = None, pos_weight: Extra = None):
    """(loss, D) without autograd, x detached and in its compute dtype."""
    return first_order(spec, x.detach().to(_k.compute_dtype(x.dtype)), target, True, weight, pos_weight)
