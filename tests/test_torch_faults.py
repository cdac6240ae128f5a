"""Regression tests for the focal_ref.torch faults of issue 16, and a differential search (hypothesis)
of every torch function against the float64 reference in the hard regions.

Each regression test failed on the code before its fix (checked against commit ab04703).
"""

import math

import mp_reference as mpr
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tolerances import tolerance

import focal_ref as ref
import focal_ref.torch as ft


def _rel_to_max(actual, expected):
    actual = actual.detach().double().numpy() if isinstance(actual, torch.Tensor) else actual
    assert np.all(np.isfinite(actual))
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


# ----------------------------------------------------------------------------------------------
# probability targets next to one-hot: the heaviest-class form


@pytest.mark.parametrize("big", [35.0, 27.0, 20.0])
def test_softmax_prob_gradient_next_to_one_hot(big):
    """Against mpmath: p_j sum(y) - y_j cancels (1.9e-12 - 0.5e-12 at big = 27), so p_j must carry 1-2
    roundings (p = e / (1 + s)). The reference's exp(log p) carries log p's absolute error (up to 1e-15
    relative at big = 27): it agrees with the truth within that, and torch within 4e-16."""
    x = np.array([[big, 0.0, -1.0]])
    y = np.array([[1 - 1e-12, 0.5e-12, 0.5e-12]])
    true = np.array([mpr.softmax_fl_grad(x[0], y[0], None, 0.0)], dtype=float)
    assert _rel_to_max(ref.softmax_focal_loss_grad(x, y, gamma=0.0), true) <= 1.5e-15
    leaf = torch.tensor(x, requires_grad=True)
    ft.softmax_focal_loss(leaf, torch.tensor(y), gamma=0.0, reduction="sum").backward()
    assert _rel_to_max(leaf.grad, true) <= 4e-16
    assert _rel_to_max(ft.softmax_focal_loss_grad(torch.tensor(x), torch.tensor(y), gamma=0.0), true) <= 4e-16


@pytest.mark.parametrize("gap", [1e-15, 1e-12, 1e-9, 1e-6, 1e-3])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_near_one_hot_soft_targets(gap, gamma):
    rng = np.random.default_rng(int(-math.log10(gap)))
    c = 5
    x = rng.normal(0, 4, (8, c))
    x[:4, 0] += np.array([10.0, 25.0, 40.0, 100.0])  # the target class dominating, more and more
    y = np.full((8, c), gap / (c - 1))
    y[:, 0] = 1 - gap
    expected_loss = ref.softmax_focal_loss(x, y, gamma=gamma)
    expected_grad = ref.softmax_focal_loss_grad(x, y, gamma=gamma)
    leaf = torch.tensor(x, requires_grad=True)
    loss = ft.softmax_focal_loss(leaf, torch.tensor(y), gamma=gamma)
    loss.sum().backward()
    np.testing.assert_allclose(loss.detach().numpy(), expected_loss, rtol=1e-13, atol=1e-300)
    for row in range(8):
        assert _rel_to_max(leaf.grad[row], expected_grad[row]) <= 1e-14


# ----------------------------------------------------------------------------------------------
# NaN where the reference is finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_binary_alpha_zero_or_one_at_the_wrong_extreme(dtype):
    """alpha = 1 weights negatives by 0: p = 1 on a negative gives 0, not 0 * inf = NaN (and alpha = 0)."""
    for alpha, p, y in ((1.0, [1.0, 0.5, 0.3], [0.0, 0.0, 1.0]), (0.0, [0.0, 0.5, 0.3], [1.0, 1.0, 0.0])):
        p, y = torch.tensor(p, dtype=dtype), torch.tensor(y, dtype=dtype)
        expected = ref.binary_focal_loss(p.double().numpy(), y.double().numpy(), alpha=alpha)
        leaf = p.clone().requires_grad_(True)
        loss = ft.binary_focal_loss(leaf, y, alpha=alpha)
        loss.sum().backward()
        np.testing.assert_allclose(loss.detach().double().numpy(), expected, rtol=1e-6)
        assert torch.isfinite(leaf.grad).all() and float(leaf.grad[0]) == 0.0
        assert torch.isfinite(ft.binary_focal_loss(p, y, alpha=alpha, reduction="mean"))


def test_softmax_prob_targets_with_a_logit_spread_beyond_the_dtype_range():
    """log p_c overflows to -inf on a class of zero target weight: finite loss and gradient."""
    x = torch.tensor([[3e38, -3e38, 0.0], [1.0, -3.4e38, 3.4e38]], dtype=torch.float32)
    y = torch.tensor([[0.5, 0.0, 0.5], [0.2, 0.0, 0.8]], dtype=torch.float32)
    expected = ref.softmax_focal_loss(x.double().numpy(), y.double().numpy(), gamma=0.5)
    leaf = x.clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(leaf, y, gamma=0.5)
    loss.sum().backward()
    np.testing.assert_allclose(loss.detach().double().numpy(), expected, rtol=1e-6)
    assert torch.isfinite(leaf.grad).all()


def test_bool_one_hot_targets_are_probabilities():
    x = torch.randn(5, 3, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1, 0]), 3)
    expected = ft.softmax_focal_loss(x, onehot.double())
    torch.testing.assert_close(ft.softmax_focal_loss(x, onehot.bool()), expected, rtol=0, atol=0)
    np.testing.assert_allclose(
        expected.numpy(), ref.softmax_focal_loss(x.numpy(), onehot.bool().numpy(), axis=1), rtol=1e-13
    )
    probs = torch.softmax(x, 1)
    torch.testing.assert_close(
        ft.categorical_focal_loss(probs, onehot.bool()),
        ft.categorical_focal_loss(probs, onehot.double()),
        rtol=0,
        atol=0,
    )
    with pytest.raises(TypeError, match="integers"):
        ft.softmax_focal_loss(x, torch.tensor([True, False, True, True, False]))


def test_dim_as_a_numpy_integer():
    x = torch.randn(4, 3, dtype=torch.float64)
    index = torch.tensor([0, 1, 2, 0])
    expected = ft.softmax_focal_loss(x, index, dim=1)
    torch.testing.assert_close(ft.softmax_focal_loss(x, index, dim=np.int64(1)), expected, rtol=0, atol=0)
    module = ft.SoftmaxFocalLoss(dim=np.int64(-1), reduction="none")
    torch.testing.assert_close(module(x, index), expected, rtol=0, atol=0)
    torch.testing.assert_close(
        ft.CategoricalFocalLoss(dim=np.int32(1), reduction="none")(torch.softmax(x, 1), index),
        ft.categorical_focal_loss(torch.softmax(x, 1), index),
        rtol=0,
        atol=0,
    )


def test_zero_losses_are_positive_zero():
    cases = [
        ft.binary_focal_loss(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])),
        ft.categorical_focal_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0])),
        ft.categorical_focal_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])),
        ft.softmax_focal_loss(torch.tensor([[200.0, 0.0]]), torch.tensor([0])),
        ft.softmax_focal_loss(torch.tensor([[200.0, 0.0]]), torch.tensor([[1.0, 0.0]])),
        ft.softmax_focal_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([-1]), ignore_index=-1),
        ft.sigmoid_focal_loss_star(torch.tensor([1e4, -1e4]), torch.tensor([1.0, 0.0])),
        ft.sigmoid_focal_loss(torch.tensor([200.0]), torch.tensor([1.0])),
    ]
    for loss in cases:
        zeros = loss == 0
        assert zeros.any() and not torch.signbit(loss[zeros]).any(), loss


def test_float32_mean_whose_sum_overflows():
    n = 64
    x = torch.full((n,), -3e38)
    y = torch.ones(n)
    mean = ft.sigmoid_focal_loss(x, y, reduction="mean")
    assert math.isfinite(float(mean)) and float(mean) == pytest.approx(0.25 * 3e38, rel=1e-6)
    logits = torch.zeros(n, 2)
    logits[:, 1] = 3e38
    mean = ft.softmax_focal_loss(logits, torch.zeros(n, dtype=torch.long), gamma=0.0, reduction="mean")
    assert float(mean) == pytest.approx(3e38, rel=1e-6)
    probs = torch.full((n,), 1e-30)
    assert math.isfinite(float(ft.binary_focal_loss(probs, y, alpha=1.0, reduction="mean")))


def test_gradients_at_subnormal_probabilities():
    """alpha_t m^gamma / p, not alpha_t m^gamma * (1/p): finite where 1/p alone overflows float32."""
    p = torch.tensor([1e-39, 3e-39], dtype=torch.float32)  # subnormal
    y = torch.ones(2)
    leaf = p.clone().requires_grad_(True)
    ft.binary_focal_loss(leaf, y, alpha=0.25).sum().backward()
    assert torch.isfinite(leaf.grad).all()
    np.testing.assert_allclose(leaf.grad.double().numpy(), -0.25 / p.double().numpy(), rtol=1e-5)
    probs = torch.tensor([[1e-39, 1.0 - 1e-7]], dtype=torch.float32)
    leaf = probs.clone().requires_grad_(True)
    ft.categorical_focal_loss(leaf, torch.tensor([0]), alpha=(0.25, 0.75)).sum().backward()
    assert torch.isfinite(leaf.grad).all()
    assert float(leaf.grad[0, 0]) == pytest.approx(-0.25 / 1e-39, rel=1e-4)


def test_focal_loss_star_far_tails():
    x = torch.tensor([-1e308, 1e308, -1e300], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    expected = ref.sigmoid_focal_loss_star(x.numpy(), y.numpy(), gamma=2.0)
    np.testing.assert_allclose(ft.sigmoid_focal_loss_star(x, y, gamma=2.0).numpy(), expected, rtol=1e-14)
    for dtype, rtol in ((torch.float32, 2e-5), (torch.float64, 1e-12)):
        for gamma, beta, xv, yv in [
            (1e-8, 100.0, 1.0, 1.0),
            (1e-8, 100.0, -3.0, 0.0),
            (1e-9, 150.0, 5.0, 1.0),
            (1e-8, 300.0, 2.0, 0.0),
        ]:
            xt, yt = torch.tensor([xv], dtype=dtype), torch.tensor([yv], dtype=dtype)
            expected = ref.sigmoid_focal_loss_star(
                xt.double().numpy(), yt.double().numpy(), gamma=gamma, beta=beta
            )
            actual = ft.sigmoid_focal_loss_star(xt, yt, gamma=gamma, beta=beta).double().numpy()
            if expected[0] < torch.finfo(dtype).tiny:  # below the dtype's normal range
                assert abs(actual[0] - expected[0]) <= torch.finfo(dtype).tiny
            else:
                np.testing.assert_allclose(actual, expected, rtol=rtol)


# ----------------------------------------------------------------------------------------------
# differential search: hypothesis against the reference in the hard regions

SATURATED = st.sampled_from(
    [-745.0, -300.0, -104.0, -88.0, -50.0, -17.0, -1e-3, 0.0, 1e-3, 17.0, 50.0, 88.0, 104.0, 300.0, 745.0]
)
LOGIT = st.one_of(SATURATED, st.floats(-60, 60))
GAMMA = st.one_of(st.just(0.0), st.floats(1e-3, 0.999), st.sampled_from([1.0, 2.0, 5.0]), st.floats(1.0, 5.0))
ALPHA = st.sampled_from([None, 0.0, 0.25, 1.0])
TARGET = st.one_of(st.sampled_from([0.0, 1.0, 1e-15, 1 - 1e-15, 1e-3, 1 - 1e-3]), st.floats(0, 1))
DTYPE = st.sampled_from(["float64", "float32"])


def _check(actual, expected, dtype, kind, scale=None):
    rtol, atol = tolerance(dtype, kind)
    actual = actual.detach().double().numpy()
    expected = np.asarray(expected)
    assert np.all(np.isfinite(actual) == np.isfinite(expected))
    finite = np.isfinite(expected)
    scale = np.abs(expected) if scale is None else scale
    err = np.abs(actual - expected)[finite]
    assert np.all(err <= rtol * np.broadcast_to(scale, expected.shape)[finite] + atol), (err.max(), kind)


@given(st.lists(st.tuples(LOGIT, TARGET), min_size=0, max_size=12), GAMMA, ALPHA, DTYPE, st.booleans())
def test_search_sigmoid(pairs, gamma, alpha, dtype, scalar):
    torch_dtype = getattr(torch, dtype)
    x = torch.tensor([p[0] for p in pairs], dtype=torch_dtype)
    y = torch.tensor([p[1] for p in pairs], dtype=torch_dtype)
    if scalar and len(pairs) > 0:
        x, y = x[0], y[0]
    x64, y64 = x.double().numpy(), y.double().numpy()
    leaf = x.clone().requires_grad_(True)
    loss = ft.sigmoid_focal_loss(leaf, y, alpha=alpha, gamma=gamma)
    _check(loss, ref.sigmoid_focal_loss(x64, y64, alpha=alpha, gamma=gamma), dtype, "loss")
    loss.sum().backward()
    _check(leaf.grad, ref.sigmoid_focal_loss_grad(x64, y64, alpha=alpha, gamma=gamma), dtype, "grad")
    if dtype == "float64" and x.ndim == 1 and x.numel() > 0:
        h = torch.func.vmap(
            torch.func.hessian(lambda v, t: ft.sigmoid_focal_loss(v, t, alpha=alpha, gamma=gamma))
        )(x, y)
        expected = ref.sigmoid_focal_loss_hess(x64, y64, alpha=alpha, gamma=gamma)
        # the elementwise second derivative sums a few chain-rule terms of either sign: relative to the
        # largest term (bounded by alpha_t m^gamma (CE + 1)), not to a cancelled result
        ce = ref.sigmoid_focal_loss(x64, y64, alpha=None, gamma=0.0)
        _check(
            h,
            expected,
            dtype,
            "hess",
            scale=np.abs(expected) + 1e-3 * np.minimum(ce + 1.0, 1e3) * np.abs(expected).max(initial=0),
        )


@given(st.lists(st.tuples(st.floats(0, 1), TARGET), min_size=1, max_size=10), GAMMA, ALPHA, DTYPE)
def test_search_binary(pairs, gamma, alpha, dtype):
    torch_dtype = getattr(torch, dtype)
    p = torch.tensor([q[0] for q in pairs], dtype=torch_dtype)
    y = torch.tensor([q[1] for q in pairs], dtype=torch_dtype)
    expected = ref.binary_focal_loss(p.double().numpy(), y.double().numpy(), alpha=alpha, gamma=gamma)
    _check(ft.binary_focal_loss(p, y, alpha=alpha, gamma=gamma), expected, dtype, "loss")


@st.composite
def _softmax_case(draw):
    c = draw(st.sampled_from([2, 3, 5, 19, 150, 1000]))
    n = draw(st.integers(0, 3))
    ndim = draw(st.integers(1, 3))
    shape = [n] + [draw(st.integers(1, 2)) for _ in range(ndim - 1)]
    dim = draw(st.integers(0, len(shape)))
    shape.insert(dim, c)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(0, draw(st.sampled_from([1.0, 10.0, 100.0])), shape)
    if x.size and draw(st.booleans()):  # one class saturated per sample
        np.put_along_axis(
            x,
            rng.integers(0, c, [1 if i == dim else s for i, s in enumerate(shape)]),
            draw(SATURATED),
            axis=dim,
        )
    kind = draw(st.sampled_from(["indices", "probabilities", "near_one_hot"]))
    index = rng.integers(0, c, [s for i, s in enumerate(shape) if i != dim])
    if kind == "indices":
        targets = index
    else:
        gap = draw(st.sampled_from([1e-15, 1e-9, 1e-3])) if kind == "near_one_hot" else None
        if gap is None:
            targets = rng.dirichlet(np.ones(c), index.shape)
        else:
            targets = np.full(index.shape + (c,), gap / (c - 1))
            np.put_along_axis(targets, index[..., None], 1 - gap, axis=-1)
        targets = np.moveaxis(targets, -1, dim)
    alpha = draw(st.sampled_from([None, 0.5, "per-class"]))
    if alpha == "per-class":
        alpha = tuple(float(a) for a in rng.choice([0.0, 0.3, 1.0], c))
    return x, targets, dim, alpha


@given(_softmax_case(), GAMMA, DTYPE, st.sampled_from(["contiguous", "transposed", "channels_last"]))
def test_search_softmax(case, gamma, dtype, layout):
    x64, targets, dim, alpha = case
    torch_dtype = getattr(torch, dtype)
    x = torch.tensor(x64, dtype=torch_dtype)
    if layout == "transposed" and x.ndim >= 2:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)  # same values, non-contiguous strides
    elif layout == "channels_last" and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    x64 = x.double().numpy()
    t = torch.tensor(targets) if targets.dtype.kind in "iu" else torch.tensor(targets, dtype=torch_dtype)
    t64 = targets if targets.dtype.kind in "iu" else t.double().numpy()
    leaf = x.clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(leaf, t, alpha=alpha, gamma=gamma, dim=dim)
    _check(loss, ref.softmax_focal_loss(x64, t64, alpha=alpha, gamma=gamma, axis=dim), dtype, "loss")
    loss.sum().backward()
    expected = ref.softmax_focal_loss_grad(x64, t64, alpha=alpha, gamma=gamma, axis=dim)
    row_max = np.abs(expected).max(axis=dim, keepdims=True) if expected.size else expected
    _check(leaf.grad, expected, dtype, "grad", scale=row_max)


# ----------------------------------------------------------------------------------------------
# issue 13: weight, pos_weight, ignore_index on the sigmoid loss (API decision 2), against the reference


@given(
    st.lists(st.tuples(LOGIT, st.one_of(TARGET, st.just(-1.0))), min_size=1, max_size=8),
    GAMMA,
    ALPHA,
    st.sampled_from(["none", "elementwise", "per-class"]),
    st.sampled_from([None, 0.0, 3.0, "per-class"]),
    st.booleans(),
)
def test_search_sigmoid_weight_pos_weight_ignore_index(pairs, gamma, alpha, weight_kind, pos_kind, ignore):
    x64 = np.array([p[0] for p in pairs] * 2).reshape(2, -1)
    y64 = np.array([p[1] for p in pairs] * 2).reshape(2, -1)
    if not ignore:
        y64 = np.where(y64 < 0, 0.0, y64)
    ignore_index = -1.0 if ignore else None
    rng = np.random.default_rng(len(pairs))
    n = x64.shape[1]
    weight = {"none": None, "elementwise": rng.uniform(0, 2, x64.shape), "per-class": rng.uniform(0, 2, n)}[
        weight_kind
    ]
    pos_weight = rng.uniform(0, 4, n) if pos_kind == "per-class" else pos_kind
    kw = dict(alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight, ignore_index=ignore_index)
    x, y = torch.tensor(x64), torch.tensor(y64)
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    for reduction in ("none", "mean", "sum"):
        expected = ref.sigmoid_focal_loss(x64, y64, reduction=reduction, **kw)
        _check(ft.sigmoid_focal_loss(x, y, reduction=reduction, **tkw), expected, "float64", "loss")
    expected_grad = ref.sigmoid_focal_loss_grad(x64, y64, **kw)
    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(
        ft.sigmoid_focal_loss(leaf, y, reduction="sum", **tkw), leaf, create_graph=True
    )
    _check(g, expected_grad, "float64", "grad")
    _check(ft.sigmoid_focal_loss_grad(x, y, **tkw), expected_grad, "float64", "grad")
    (h,) = torch.autograd.grad(g.sum(), leaf)  # diagonal Hessian: the row sums are the diagonal
    expected_h = ref.sigmoid_focal_loss_hess(x64, y64, **kw)
    _check(h, expected_h, "float64", "hess", scale=np.abs(expected_h) + 1e-6 * np.abs(expected_h).max())


def test_sigmoid_ignore_index_leaves_the_mean():
    x = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 0.0, -1.0], dtype=torch.float64)
    kept = ft.sigmoid_focal_loss(x[[0, 2]], y[[0, 2]], reduction="sum") / 2
    torch.testing.assert_close(ft.sigmoid_focal_loss(x, y, reduction="mean", ignore_index=-1), kept)
    all_ignored = ft.sigmoid_focal_loss(x, torch.full_like(x, -1.0), reduction="mean", ignore_index=-1)
    assert float(all_ignored) == 0.0 and not torch.signbit(all_ignored)
    with pytest.raises(ValueError, match="ignore_index"):
        ft.sigmoid_focal_loss(x, y.clamp_min(0), ignore_index=0.5)
    with pytest.raises(ValueError, match="weight"):
        ft.sigmoid_focal_loss(x, y.clamp_min(0), weight=torch.ones(3))


@given(
    st.lists(st.tuples(st.floats(0.01, 0.99), st.one_of(TARGET, st.just(-1.0))), min_size=1, max_size=8),
    GAMMA,
    ALPHA,
    st.booleans(),
    st.sampled_from([None, 0.0, 2.5, "per-element"]),
    st.booleans(),
)
def test_search_binary_weight_pos_weight_ignore_index(pairs, gamma, alpha, weighted, pos_kind, ignore):
    p64 = np.array([q[0] for q in pairs])
    y64 = np.array([q[1] for q in pairs])
    if not ignore:
        y64 = np.where(y64 < 0, 0.0, y64)
    rng = np.random.default_rng(len(pairs))
    kw = dict(
        alpha=alpha,
        gamma=gamma,
        weight=rng.uniform(0, 2, p64.shape) if weighted else None,
        pos_weight=rng.uniform(0, 4, p64.shape) if pos_kind == "per-element" else pos_kind,
        ignore_index=-1.0 if ignore else None,
    )
    tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    p, y = torch.tensor(p64), torch.tensor(y64)
    for reduction in ("none", "mean"):
        expected = ref.binary_focal_loss(p64, y64, reduction=reduction, **kw)
        _check(ft.binary_focal_loss(p, y, reduction=reduction, **tkw), expected, "float64", "loss")
    leaf = p.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ft.binary_focal_loss(leaf, y, reduction="sum", **tkw), leaf, create_graph=True)
    eps = 1e-7
    numeric = (ref.binary_focal_loss(p64 + eps, y64, **kw) - ref.binary_focal_loss(p64 - eps, y64, **kw)) / (
        2 * eps
    )
    _check(
        g, numeric, "float32", "grad", scale=np.abs(numeric) + 1e-4
    )  # a central difference: ~1e-8 absolute
    (h,) = torch.autograd.grad(g.sum(), leaf)
    gp = ft.binary_focal_loss  # finite difference of torch's own first derivative
    plus, minus = (p + eps).requires_grad_(True), (p - eps).requires_grad_(True)
    (g1,) = torch.autograd.grad(gp(plus, y, reduction="sum", **tkw), plus)
    (g2,) = torch.autograd.grad(gp(minus, y, reduction="sum", **tkw), minus)
    _check(h, ((g1 - g2) / (2 * eps)).numpy(), "float32", "hess", scale=np.abs(h.detach().numpy()) + 1e-2)
