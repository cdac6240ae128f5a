"""focal_ref.torch's autograd contract: every way of differentiating gives the reference's numbers.

First derivatives against ``focal_ref.*_grad``; second derivatives against ``focal_ref.*_hess`` /
``softmax_focal_loss_hessian`` (the float64 reference, itself checked against mpmath), through
backward, double backward, gradcheck/gradgradcheck, ``torch.autograd.functional.hessian`` and the
``torch.func`` transforms; and the bytes each path keeps.
"""

import warnings

import numpy as np
import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

import focal_ref as ref
import focal_ref.torch as ft

GAMMAS = (0.0, 0.3, 0.5, 1.0, 2.0, 3.7)
SAT = np.array([-745.0, -300.0, -60.0, -17.0, -2.0, 0.0, 0.5, 3.0, 17.0, 60.0, 300.0, 745.0])

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _sigmoid_data(seed=0):
    rng = _rng(seed)
    x = np.concatenate([SAT, SAT, rng.normal(0, 5, 12)])
    y = np.concatenate([np.ones_like(SAT), np.zeros_like(SAT), rng.uniform(0, 1, 12)])
    return x, y


def _softmax_data(seed=0, c=4):
    rng = _rng(seed)
    x = rng.normal(0, 3, (6, c))
    x[0, 0], x[1, 1], x[2, 2] = 60.0, 300.0, -200.0  # saturated rows: p -> 1 and p -> 0
    index = np.array([0, 1, 2, 3 % c, 0, 1])
    soft = rng.dirichlet(np.ones(c), 6)
    soft[0] = np.eye(c)[0] * (1 - 1e-9) + 1e-9 / c  # next to one-hot, on the saturated class
    return x, index, soft


def _close(actual, expected, rtol=1e-10, scale=None, atol=1e-300):
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else actual
    assert np.all(np.isfinite(actual))
    scale = np.abs(expected) if scale is None else scale
    err = np.abs(actual - expected) / np.maximum(scale, atol / rtol)
    assert err.max() <= rtol, (
        f"worst relative error {err.max():.3g} at {np.unravel_index(err.argmax(), err.shape)}"
    )


# ----------------------------------------------------------------------------------------------
# second derivatives against the reference


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, 0.25, 1.0])
def test_sigmoid_hessian_matches_reference(gamma, alpha):
    x, y = _sigmoid_data()
    xt, yt = torch.tensor(x), torch.tensor(y)

    def f(v):
        return ft.sigmoid_focal_loss(v, yt, alpha=alpha, gamma=gamma, reduction="sum")

    expected = ref.sigmoid_focal_loss_hess(x, y, alpha=alpha, gamma=gamma)
    h_autograd = torch.autograd.functional.hessian(f, xt)
    assert torch.count_nonzero(h_autograd - torch.diag(torch.diagonal(h_autograd))) == 0
    _close(torch.diagonal(h_autograd), expected, 1e-11, scale=np.maximum(np.abs(expected), 1e-300))
    torch.testing.assert_close(hessian(f)(xt), h_autograd, rtol=1e-14, atol=0)
    torch.testing.assert_close(jacrev(jacrev(f))(xt), h_autograd, rtol=1e-14, atol=0)
    torch.testing.assert_close(jacfwd(grad(f))(xt), h_autograd, rtol=1e-14, atol=0)
    leaf = xt.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(leaf), leaf, create_graph=True)
    g.sum().backward()
    torch.testing.assert_close(leaf.grad, torch.diagonal(h_autograd), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9, 2.0])
def test_second_derivative_finite_at_saturation(dtype, gamma):
    """Every finite logit, gamma < 1 included: no 0^(gamma-1), no exp(gamma log m)."""
    big = 3e38 if dtype == torch.float32 else 1e308
    x = torch.tensor([-big, -1e4, -104.0, -50.0, -17.0, 17.0, 50.0, 104.0, 1e4, big], dtype=dtype)
    for y in (torch.ones_like(x), torch.zeros_like(x), torch.full_like(x, 0.3)):
        h = hessian(lambda v, y=y: ft.sigmoid_focal_loss(v, y, gamma=gamma, reduction="sum"))(x)
        assert torch.isfinite(h).all()
    logits = torch.tensor([[0.0, 50.0, -50.0], [1e4, 0.0, -1e4], [-104.0, 104.0, 0.0]], dtype=dtype)
    index = torch.tensor([1, 0, 0])
    h = hessian(lambda v: ft.softmax_focal_loss(v, index, gamma=gamma, reduction="sum"))(logits)
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
@pytest.mark.parametrize("alpha", [None, (0.1, 0.0, 0.6, 1.0)])
def test_softmax_hessian_matches_reference(gamma, kind, alpha):
    x, index, soft = _softmax_data()
    targets = index if kind == "indices" else soft
    xt, tt = torch.tensor(x), torch.tensor(targets)

    def f(v):
        return ft.softmax_focal_loss(v, tt, alpha=alpha, gamma=gamma, reduction="sum")

    blocks = ref.softmax_focal_loss_hessian(x, targets, alpha=alpha, gamma=gamma)  # (N, C, C)
    h = torch.autograd.functional.hessian(f, xt)  # (N, C, N, C)
    n = x.shape[0]
    for i in range(n):
        scale = np.abs(blocks[i]).max()
        _close(h[i, :, i, :], blocks[i], 1e-9, scale=np.full_like(blocks[i], max(scale, 1e-300)))
        for j in range(n):
            if j != i:
                assert torch.count_nonzero(h[i, :, j, :]) == 0
    torch.testing.assert_close(hessian(f)(xt), h, rtol=1e-12, atol=1e-300)


def test_softmax_class_axis_anywhere_hvp():
    """dim=1 of (N, C, H): double backward equals the reference's per-sample HVP."""
    rng = _rng(3)
    x = rng.normal(0, 4, (2, 3, 5))
    index = rng.integers(0, 3, (2, 5))
    v = rng.normal(0, 1, x.shape)
    leaf = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(
        ft.softmax_focal_loss(leaf, torch.tensor(index), gamma=0.5, reduction="sum"), leaf, create_graph=True
    )
    (hv,) = torch.autograd.grad((g * torch.tensor(v)).sum(), leaf)
    expected = ref.softmax_focal_loss_hvp(x, index, v, gamma=0.5, axis=1)
    _close(hv, expected, 1e-10, scale=np.abs(expected).max())


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.5])
def test_probability_input_hessians_against_finite_differences(gamma):
    rng = _rng(5)
    p = torch.tensor(rng.uniform(0.05, 0.95, 8))
    y = torch.tensor(np.where(rng.uniform(size=8) < 0.5, rng.integers(0, 2, 8), rng.uniform(0, 1, 8)))
    probs = torch.tensor(rng.dirichlet(np.ones(3), 4)).clamp_min(0.05)
    index = torch.tensor(rng.integers(0, 3, 4))
    for fn, inp in [
        (lambda v: ft.binary_focal_loss(v, y, gamma=gamma, reduction="sum"), p),
        (lambda v: ft.categorical_focal_loss(v, index, gamma=gamma, reduction="sum"), probs),
    ]:
        leaf = inp.clone().requires_grad_(True)
        assert torch.autograd.gradgradcheck(fn, (leaf,), eps=1e-6, atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# gradcheck / gradgradcheck, every loss


def _all_losses():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64) * 3
    soft = torch.rand(3, 4, generator=gen, dtype=torch.float64)
    hard = (soft > 0.5).double()
    index = torch.tensor([0, 3, 2])
    probs = torch.softmax(x / 3, 1)
    sig = torch.sigmoid(x / 3)
    return [
        ("sigmoid", lambda v: ft.sigmoid_focal_loss(v, soft, gamma=2.0), x),
        (
            "sigmoid-mean",
            lambda v: ft.sigmoid_focal_loss(v, hard, alpha=None, gamma=0.5, reduction="mean"),
            x,
        ),
        (
            "softmax-index",
            lambda v: ft.softmax_focal_loss(v, index, gamma=2.0, alpha=(0.1, 0.2, 0.3, 0.4)),
            x,
        ),
        ("softmax-prob", lambda v: ft.softmax_focal_loss(v, soft, gamma=0.7, reduction="sum"), x),
        # the mean with index targets folds 1/N into the kernel: the Hessian must carry it too
        ("softmax-index-mean", lambda v: ft.softmax_focal_loss(v, index, gamma=2.0, reduction="mean"), x),
        ("softmax-prob-mean", lambda v: ft.softmax_focal_loss(v, soft, gamma=2.0, reduction="mean"), x),
        ("softmax-dim0", lambda v: ft.softmax_focal_loss(v.T, index, dim=0, gamma=3.0), x),
        (
            "softmax-ignore",
            lambda v: ft.softmax_focal_loss(v, torch.tensor([0, -1, 2]), ignore_index=-1, reduction="mean"),
            x,
        ),
        ("star", lambda v: ft.sigmoid_focal_loss_star(v, hard, gamma=2.0, beta=1.0), x),
        ("binary", lambda v: ft.binary_focal_loss(v, soft, gamma=1.5), sig),
        ("categorical", lambda v: ft.categorical_focal_loss(v, index, gamma=1.5), probs),
        ("categorical-prob", lambda v: ft.categorical_focal_loss(v, soft, gamma=0.5, reduction="sum"), probs),
    ]


N_LOSSES = len(_all_losses())


@pytest.mark.parametrize("case", range(N_LOSSES))
def test_gradcheck_and_gradgradcheck(case):
    name, fn, inputs = _all_losses()[case]
    leaf = inputs.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (leaf,), eps=1e-6, atol=1e-7, rtol=1e-6), name
    assert torch.autograd.gradgradcheck(fn, (leaf,), eps=1e-6, atol=1e-6, rtol=1e-5), name


@pytest.mark.parametrize("case", range(N_LOSSES))
def test_torch_func_transforms_agree_with_backward(case):
    name, fn, inputs = _all_losses()[case]

    def total(v):
        return fn(v).sum()

    leaf = inputs.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(total(leaf), leaf)
    torch.testing.assert_close(grad(total)(inputs), expected, rtol=1e-14, atol=0)
    out = fn(inputs)
    jac = jacrev(fn)(inputs)
    torch.testing.assert_close(
        jac.reshape(out.numel(), -1).sum(0).reshape(inputs.shape), expected, rtol=1e-13, atol=1e-15
    )
    torch.testing.assert_close(jacfwd(fn)(inputs), jac, rtol=1e-13, atol=1e-15)
    tangent = torch.randn(inputs.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    value, jv = jvp(total, (inputs,), (tangent,))
    torch.testing.assert_close(value, total(inputs), rtol=0, atol=0)
    torch.testing.assert_close(jv, (expected * tangent).sum(), rtol=1e-13, atol=1e-15)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(inputs, tangent)
        fwd = torch.autograd.forward_ad.unpack_dual(total(dual)).tangent
    torch.testing.assert_close(fwd, jv, rtol=1e-13, atol=1e-15)


def test_per_sample_gradients_with_vmap():
    """vmap(grad): DP-SGD's per-sample gradients equal the reference's rows."""
    x, index, soft = _softmax_data()
    xt = torch.tensor(x)
    for targets in (index, soft):
        per_sample = vmap(grad(lambda v, t: ft.softmax_focal_loss(v, t, dim=0, gamma=0.5)))(
            xt, torch.tensor(targets)
        )
        _close(
            per_sample,
            ref.softmax_focal_loss_grad(x, targets, gamma=0.5),
            1e-12,
            scale=np.abs(ref.softmax_focal_loss_grad(x, targets, gamma=0.5)).max(axis=1, keepdims=True),
        )
    xs, ys = _sigmoid_data()
    per_elem = vmap(grad(lambda v, t: ft.sigmoid_focal_loss(v, t, gamma=0.5)))(
        torch.tensor(xs), torch.tensor(ys)
    )
    _close(per_elem, ref.sigmoid_focal_loss_grad(xs, ys, gamma=0.5), 1e-12, atol=1e-300)


# ----------------------------------------------------------------------------------------------
# what each path keeps


def _kept(fn, x, targets, create_graph=False):
    """Bytes autograd keeps (forward and, with create_graph, the first backward), beyond x and targets."""
    excluded = {x.untyped_storage().data_ptr(), targets.untyped_storage().data_ptr()}
    seen = {}

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in excluded:
            seen[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn(x)
        if create_graph:
            torch.autograd.grad(loss, x, create_graph=True)
    return sum(seen.values())


@pytest.mark.parametrize(
    "dtype, per_element", [(torch.float32, 4), (torch.float16, 4), (torch.float64, 8)], ids=str
)
def test_bytes_kept_by_each_path(dtype, per_element):
    n = 6000
    x = torch.randn(n, dtype=dtype, requires_grad=True)
    y = (torch.rand(n) < 0.3).to(dtype)
    logits = torch.randn(n // 6, 6, dtype=dtype, requires_grad=True)
    index = torch.randint(0, 6, (n // 6,))
    soft = torch.softmax(torch.randn(n // 6, 6), 1).to(dtype)
    for fn, inp, t in [
        (lambda v: ft.sigmoid_focal_loss(v, y, reduction="sum"), x, y),
        (lambda v: ft.softmax_focal_loss(v, index, reduction="sum"), logits, index),
        (lambda v: ft.softmax_focal_loss(v, soft, reduction="sum"), logits, soft),
    ]:
        # first order: the derivative only
        assert _kept(fn, inp, t) == per_element * inp.numel()
        # second order: the first-order graph's tensor, plus the incoming gradient (0-d for an elementwise
        # sum, one per sample for softmax: 1/C of an element each)
        samples = 1 if inp is x else inp.shape[0]
        assert _kept(fn, inp, t, create_graph=True) <= per_element * (inp.numel() + samples) + 64


def test_no_grad_and_inference_compute_no_derivative():
    x = torch.randn(100)
    with torch.no_grad():
        a = ft.sigmoid_focal_loss(x.requires_grad_(True), torch.rand(100))
    assert not a.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.inference_mode():
            ft.softmax_focal_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_keep_nothing_path_recomputes_the_same_gradient():
    """Spec(keep_grad=False): no derivative kept (0 bytes beyond the inputs); backward recomputes it."""
    import dataclasses

    import focal_ref._torch_autograd as ag

    x = torch.randn(40, 5, dtype=torch.float64) * 4
    index = torch.randint(0, 5, (40,))
    y = torch.rand(40, 5, dtype=torch.float64)
    for family, target, kw in (("softmax", index, dict(kind="indices", dim=1)), ("sigmoid", y, {})):
        spec = ag.Spec(family, gamma=0.5, summed=True, **kw)
        leaf = x.clone().requires_grad_(True)
        ag.apply(leaf, target, spec).backward()
        lazy = x.clone().requires_grad_(True)
        assert (
            _kept(
                lambda v, t=target, s=spec: ag.apply(v, t, dataclasses.replace(s, keep_grad=False)),
                lazy,
                target,
            )
            == 0
        )
        ag.apply(lazy, target, dataclasses.replace(spec, keep_grad=False)).backward()
        torch.testing.assert_close(lazy.grad, leaf.grad, rtol=0, atol=0)


@pytest.mark.parametrize("case", range(N_LOSSES))
def test_third_derivatives_raise_clearly(case):
    # the second derivative is right (gradcheck of the gradient); a third, by double backward with
    # create_graph or by nested torch.func transforms, raises instead of giving a number: before, the
    # forward-over-second-order one (jacfwd(hessian)) came out silently wrong
    name, fn, inputs = _all_losses()[case]

    def gradient(v):
        return torch.autograd.grad(fn(v).sum(), v, create_graph=True)[0]

    def total(v):
        return fn(v).sum()

    leaf = inputs.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(gradient, (leaf,), eps=1e-6, atol=1e-6, rtol=1e-5), name
    third = (
        lambda: torch.autograd.gradgradcheck(gradient, (leaf,), eps=1e-6, atol=1e-5, rtol=1e-4),
        lambda: torch.func.jacfwd(torch.func.hessian(total))(inputs),
        lambda: torch.func.jacrev(torch.func.hessian(total))(inputs),
    )
    for compute in third:
        with pytest.raises(RuntimeError, match="third and higher derivatives"):
            compute()
