"""Regression tests for three focal_ref.torch faults found by the hypothesis search (tests/test_search.py).

1. A zero per-element ``weight`` times an infinite unweighted term gave NaN (0 * inf); the reference masks.
2. float32 loss with m^gamma subnormal but m^gamma * CE a normal number (x = -3.4e38, y = 1e-7, gamma = 6)
   lost digits in the subnormal intermediate (5e-4 relative error); the kernels now apply
   m^gamma = h * h, h = m^(gamma/2), as (B h) h.
3. float64 second derivative at x = -710 (y = 0.999, gamma = 0.5) gave 0: torch.sigmoid(-710) is
   1 / (1 + e^710) = 0, where the true sigma(x) = 4.5e-309 is subnormal and the Hessian's r * CE term
   (~ |x| sigma(x)) is a normal number; the Hessian now takes sigma from e^-|x| / (1 + e^-|x|).

Each case's true value is a normal number of its dtype, so the dtype's relative tolerance applies
(tests/tolerances.py); each test failed before its fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import focal_ref

torch = pytest.importorskip("torch")
import focal_ref.torch as ft  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tolerances import tolerance  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _close(out, ref, dtype: str, kind: str, atol: float | None = None) -> None:
    rtol, default_atol = tolerance(dtype, kind)
    atol = default_atol if atol is None else atol
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert np.all(np.isfinite(out)), out
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)


def _hess_diag(fn, x, y, **kw):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x, y, reduction="sum", **kw), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    return g.detach(), h


# ---- fault 1: zero weight on an infinite term -------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_binary_zero_weight_masks_infinite_term(dtype, reduction):
    p = torch.tensor([1.0, 0.0, 0.5], dtype=DTYPES[dtype])
    y = torch.tensor([0.0, 1.0, 1.0], dtype=DTYPES[dtype])
    w = torch.tensor([0.0, 0.0, 2.0], dtype=DTYPES[dtype])
    out = ft.binary_focal_loss(p, y, alpha=None, gamma=0.0, weight=w, reduction=reduction)
    ref = focal_ref.binary_focal_loss(
        p.double().numpy(),
        y.double().numpy(),
        alpha=None,
        gamma=0.0,
        weight=w.double().numpy(),
        reduction=reduction,
    )
    _close(out.numpy(), ref, dtype, "loss")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_binary_zero_weight_derivatives_are_zero_not_nan(dtype, gamma):
    p = torch.tensor([1.0, 0.0], dtype=DTYPES[dtype])
    y = torch.tensor([0.0, 1.0], dtype=DTYPES[dtype])
    w = torch.zeros(2, dtype=DTYPES[dtype])
    g, h = _hess_diag(ft.binary_focal_loss, p, y, alpha=None, gamma=gamma, weight=w)
    assert torch.equal(g, torch.zeros_like(g)), g
    assert torch.equal(h, torch.zeros_like(h)), h
    assert torch.equal(ft.binary_focal_loss(p, y, alpha=None, gamma=gamma, weight=w), torch.zeros_like(p))


# ---- fault 2: subnormal m^gamma, normal loss --------------------------------------------------------


@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("pos_weight", [None, 1.0, 3.0])
def test_float32_loss_with_subnormal_modulating_factor(alpha, pos_weight):
    x = torch.tensor([-3.4e38, -1e30, 3.4e38], dtype=torch.float32)
    y = torch.tensor([1e-7, 1e-6, 1.0 - 2.0**-24], dtype=torch.float32)
    kw = {"alpha": alpha, "gamma": 6.0}
    if pos_weight is not None:
        kw["pos_weight"] = pos_weight
    out = ft.sigmoid_focal_loss(x, y, reduction="none", **kw)
    ref = focal_ref.sigmoid_focal_loss(x.double().numpy(), y.double().numpy(), reduction="none", **kw)
    assert np.all(ref > np.finfo(np.float32).tiny)  # the true loss is a normal float32
    _close(out.numpy(), ref, "float32", "loss")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    x=st.floats(-3.4e38, -1e3),
    y=st.floats(1e-12, 1e-3),
    gamma=st.floats(1.5, 8.0),
    alpha=st.sampled_from([None, 0.25]),
)
def test_float32_loss_normal_products_search(x, y, gamma, alpha):
    """Large |x| with a small soft target: m ~ y, CE ~ y |x|; m^gamma may be subnormal, the loss not."""
    xt, yt = torch.tensor([x], dtype=torch.float32), torch.tensor([y], dtype=torch.float32)
    ref = focal_ref.sigmoid_focal_loss(
        xt.double().numpy(), yt.double().numpy(), alpha=alpha, gamma=gamma, reduction="none"
    )
    out = ft.sigmoid_focal_loss(xt, yt, alpha=alpha, gamma=gamma, reduction="none")
    _close(out.numpy(), ref, "float32", "loss")
    _, h = _hess_diag(ft.sigmoid_focal_loss, xt, yt, alpha=alpha, gamma=gamma)
    ref_h = focal_ref.sigmoid_focal_loss_hess(
        xt.double().numpy(), yt.double().numpy(), alpha=alpha, gamma=gamma
    )
    _close(h.numpy(), ref_h, "float32", "hess")


# ---- fault 3: subnormal sigma(x) in the second derivative -------------------------------------------


@pytest.mark.parametrize(
    "dtype, x",
    [("float64", -709.9), ("float64", -710.0), ("float64", -712.0), ("float32", -89.0), ("float32", -88.8)],
)
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("gamma", [0.5, 2.0, 6.0])
def test_double_backward_with_subnormal_sigmoid(dtype, x, gamma, alpha):
    """Held to the smallest normal as the absolute floor (tolerance()'s hess floor is 64 of them, which
    would hide most of the fault)."""
    xt = torch.tensor([x], dtype=DTYPES[dtype])
    yt = torch.tensor([0.999], dtype=DTYPES[dtype])
    _, h = _hess_diag(ft.sigmoid_focal_loss, xt, yt, alpha=alpha, gamma=gamma)
    ref = focal_ref.sigmoid_focal_loss_hess(
        xt.double().numpy(), yt.double().numpy(), alpha=alpha, gamma=gamma
    )
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    assert np.abs(ref[0]) > 2 * tiny  # a normal number of the dtype (2.4 to 940 smallest normals here)
    _close(h.numpy(), ref, dtype, "hess", atol=tiny)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_sigmoid_pair_is_accurate_where_subnormal(dtype):
    from focal_ref._torch_hessian import sigmoid_pair

    x = torch.linspace(-800.0, 800.0, 20001, dtype=torch.float64).to(DTYPES[dtype])
    p, q = sigmoid_pair(x)
    x64 = x.double().numpy()
    ref_p = focal_ref.sigmoid_parts(x64, 0.0)[0]
    ref_q = focal_ref.sigmoid_parts(-x64, 0.0)[0]
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    eps = float(np.finfo(np.dtype(dtype)).eps)
    for got, ref in ((p, ref_p), (q, ref_q)):
        err = np.abs(got.double().numpy() - ref)
        # relative to the value, or to the spacing of subnormals (eps * tiny) below the smallest normal
        assert np.all(err <= 2 * eps * np.maximum(ref, tiny)), np.max(err / np.maximum(ref, tiny))
    low = -745.0 if dtype == "float64" else -103.0  # where sigma(x) is a nonzero subnormal of the dtype
    high = -709.0 if dtype == "float64" else -88.0
    assert torch.all(p[(x > low) & (x < high)] > 0)  # torch.sigmoid gives 0 there


# ---- found on the way: pos_weight overflowing CE to inf where r = 0 ---------------------------------


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_float32_pos_weight_overflowing_ce_gives_finite_derivatives(gamma):
    """CE = w+ |x| = 8.5e38 is inf in float32 at x = -3.4e38, y = 1, w+ = 2.5, and r = p q / m = 0 there:
    the focal term r CE was 0 * inf = NaN in the gradient and the second derivative."""
    x = torch.tensor([-3.4e38], dtype=torch.float32)
    y = torch.tensor([1.0], dtype=torch.float32)
    kw = {"alpha": None, "gamma": gamma, "pos_weight": 2.5, "weight": torch.tensor([0.5])}
    g, h = _hess_diag(ft.sigmoid_focal_loss, x, y, **kw)
    x64, y64 = x.double().numpy(), y.double().numpy()
    ref_kw = {**kw, "weight": np.array([0.5])}
    _close(g.numpy(), focal_ref.sigmoid_focal_loss_grad(x64, y64, **ref_kw), "float32", "grad")
    _close(h.numpy(), focal_ref.sigmoid_focal_loss_hess(x64, y64, **ref_kw), "float32", "hess")


def test_ordinary_inputs_keep_the_one_factor_rounding(monkeypatch):
    """The h h split is taken only for a block holding an m whose m^gamma would be subnormal: ordinary
    inputs give the bits of one factor m^gamma (the book's stored detector runs re-run bit for bit)."""
    from focal_ref import _torch_kernels

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, generator=gen) * 3  # |x| < 16: no m^5 below float32 tiny
    y = (torch.rand(4096, generator=gen) < 0.1).float()
    for gamma in (2.0, 5.0):
        default = ft.sigmoid_focal_loss(x, y, gamma=gamma, reduction="none")
        monkeypatch.setattr(_torch_kernels, "split_power", lambda m, g, low=None: False)
        one_factor = ft.sigmoid_focal_loss(x, y, gamma=gamma, reduction="none")
        monkeypatch.undo()
        assert torch.equal(default, one_factor)
    extreme = torch.tensor([-3.4e38], dtype=torch.float32)
    assert _torch_kernels.split_power(torch.tensor([1e-8]), 6.0)
    assert not _torch_kernels.split_power(torch.tensor([1e-5]), 6.0)
    got = ft.sigmoid_focal_loss(extreme, torch.tensor([1e-7]), alpha=None, gamma=6.0)
    want = focal_ref.sigmoid_focal_loss(extreme.double().numpy(), [1e-7], alpha=None, gamma=6.0)
    assert abs(float(got[0]) - float(want[0])) <= 2e-7 * float(want[0])
