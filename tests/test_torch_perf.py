"""The fast softmax index kernel's branches (issue 14), each against the float64 reference.

The kernel takes exp(x) unshifted where the logits' range allows it and the row max otherwise
(:func:`focal_ref._torch_softmax_index._exp_shift`); it takes log p_t from log1p(-u_t) near p_t = 1,
from p_t in between, and from the logits where p_t is subnormal. Each test puts rows in one of those branches.
"""

import itertools
import math

import numpy as np
import pytest
import torch

import focal_ref as ref
import focal_ref._torch_softmax as prob_kern
import focal_ref._torch_softmax_index as kern
import focal_ref._torch_two_class as two
import focal_ref.torch as ft

RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def _check(x: torch.Tensor, index: torch.Tensor, gamma: float, dim: int = 1, **kwargs) -> None:
    """Loss per sample and its gradient against the reference, relative to each row's magnitude."""
    leaf = x.detach().clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(leaf, index, gamma=gamma, dim=dim, reduction="none", **kwargs)
    loss.sum().backward()
    x64, t64 = x.double().numpy(), index.numpy()
    want = ref.softmax_focal_loss(x64, t64, gamma=gamma, axis=dim, **kwargs)
    want_grad = ref.softmax_focal_loss_grad(x64, t64, gamma=gamma, axis=dim, **kwargs)
    rtol = RTOL[x.dtype]
    tiny = float(torch.finfo(x.dtype).tiny)
    got = loss.detach().double().numpy()
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(leaf.grad.double().numpy()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=tiny)
    scale = np.abs(want_grad).max(axis=dim, keepdims=True)
    assert np.all(np.abs(leaf.grad.double().numpy() - want_grad) <= rtol * scale + tiny)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_shift_only_where_the_range_needs_it(dtype):
    info = torch.finfo(dtype)
    x = torch.randn(6, 5, dtype=dtype)
    zero = kern._exp_shift(x, 1)
    assert zero.ndim == 0 and not kern._unshifted_failed(zero, torch.exp(x).sum(1))
    for value in (1e3, -1e3, float("nan")):  # overflow, a row that all underflows, NaN: redo shifted
        bad = x.clone()
        bad[2] = value if value != -1e3 else torch.full((5,), value, dtype=dtype)
        assert kern._unshifted_failed(zero, torch.exp(bad).sum(1))
    assert kern._unshifted_failed(zero, torch.tensor([1.0, info.tiny], dtype=dtype))
    assert kern._exp_shift(x, 1, shifted=True).shape == (6, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("spread", [3.0, 60.0, 900.0])
def test_index_kernel_against_reference(dtype, gamma, spread):
    g = torch.Generator().manual_seed(int(spread) + int(10 * gamma))
    x = (torch.randn(64, 7, 3, generator=g, dtype=torch.float64) * spread).to(dtype)
    index = torch.randint(0, 7, (64, 3), generator=g)
    _check(x, index, gamma)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_dominant_target_exact_as_p_t_goes_to_1(dtype, gamma):
    # u_t = 4 e^-z: the loss is ~ u_t^(gamma+1), far below 1 - p_t's rounding if taken as 1 - p_t
    z = torch.tensor([5.0, 12.0, 20.0, 30.0, 60.0], dtype=dtype)
    x = torch.zeros(5, 5, dtype=dtype)
    x[:, 2] = z
    index = torch.full((5,), 2)
    _check(x, index, gamma)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_subnormal_and_zero_p_t_stay_finite(dtype):
    # p_t = e^-100 (float32: subnormal), e^-1000 (0 in both): log p_t from the logits
    x = torch.zeros(3, 4, dtype=dtype)
    x[0, 1], x[1, 1], x[2, 1] = -100.0, -1000.0, -80.0
    index = torch.tensor([1, 1, 1])
    _check(x, index, 2.0)
    _check(x, index, 0.5)


def test_alpha_and_ignore_index_on_both_shift_paths():
    g = torch.Generator().manual_seed(3)
    for spread in (2.0, 500.0):
        x = torch.randn(40, 4, generator=g) * spread
        index = torch.randint(0, 4, (40,), generator=g)
        index[::7] = -100
        _check(x, index, 2.0, alpha=[0.1, 0.2, 0.3, 0.4], ignore_index=-100)


def test_class_axis_not_first_nor_last():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 4, 6, 5, generator=g) * 4
    index = torch.randint(0, 6, (3, 4, 5), generator=g)
    _check(x, index, 2.0, dim=2)


# ----------------------------------------------------------------------------------------------
# two classes: views and where instead of gather/scatter (index), functions of z = x_1 - x_0 (prob)


def _two_class_inputs(dtype, spread: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(40, 2, 3, generator=g, dtype=torch.float64) * spread).to(dtype)
    x[0, :, 0] = torch.tensor([7.0, 7.0])  # a tie
    x[1, :, 0] = torch.tensor([0.0, 80.0 if dtype == torch.float32 else 700.0])  # saturated
    index = torch.randint(0, 2, (40, 3), generator=g)
    # soft targets: next to one-hot, next to 0.5, exactly one-hot
    y1 = torch.rand(40, 1, 3, generator=g, dtype=torch.float64)
    y1[:10] = 1 - 1e-7 * y1[:10]
    y1[10:20] = 0.5 + 1e-6 * y1[10:20]
    y1[20:25] = 1.0
    y = torch.cat([1 - y1, y1], 1).to(dtype)
    return x, index, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("spread", [1.0, 30.0, 400.0])
def test_two_class_index_kernel_matches_general_and_reference(dtype, gamma, spread):
    x, index, _ = _two_class_inputs(dtype, spread)
    for kwargs in ({}, {"alpha": (0.25, 0.75)}, {"ignore_index": -1}):
        t = index.clone()
        if kwargs.get("ignore_index") is not None:
            t[::3] = -1
        _check(x, t, gamma, **kwargs)
        fast = two.two_class_index_kernel(
            x, t, kwargs.get("alpha"), kwargs.get("ignore_index"), gamma, 1, True
        )
        loss, k, f = kern.softmax_index_factored(
            x, t, kwargs.get("alpha"), kwargs.get("ignore_index"), gamma, 1, True
        )
        # the general kernel's values up to the rounding of z_t = x_t - x_o (the reference's own shift)
        rtol = RTOL[dtype]
        torch.testing.assert_close(fast[0], loss, rtol=rtol, atol=float(torch.finfo(dtype).tiny))
        scale = fast[1].abs().amax(1, keepdim=True)
        assert torch.all((fast[1] - k.mul_(f)).abs() <= rtol * scale + torch.finfo(dtype).tiny)
        assert torch.equal(fast[1][:, 0], -fast[1][:, 1])  # dFL/dx_0 = -dFL/dx_1 exactly


@pytest.mark.parametrize("classes", [2, 3])
def test_zero_weight_beyond_the_dtype_range_gives_zero(classes):
    # an ignored sample, or a target class of alpha 0, whose logits span more than the dtype's range:
    # loss 0 (the reference masks), not 0 * inf = NaN; gradient 0 there
    x = torch.zeros(3, classes)
    x[0, :2] = torch.tensor([-3e38, 3e38])
    x[1, :2] = torch.tensor([-3e38, 3e38])
    index = torch.tensor([-1, 0, 1])
    alpha = (0.0,) + (1.0,) * (classes - 1)
    leaf = x.clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(leaf, index, alpha=alpha, ignore_index=-1, gamma=2.0)
    loss.sum().backward()
    want = ref.softmax_focal_loss(x.double().numpy(), index.numpy(), alpha=alpha, ignore_index=-1, gamma=2.0)
    assert torch.equal(loss[:2], torch.zeros(2)) and np.allclose(loss.detach().numpy(), want, rtol=1e-6)
    assert torch.equal(leaf.grad[:2], torch.zeros(2, classes)) and torch.isfinite(leaf.grad).all()


def test_two_class_index_kernel_beyond_the_dtype_range():
    # z_t = -inf (x_o - x_t overflows): loss inf (the rounded value), gradient -1 / +1, no NaN
    x = torch.tensor([[-3e38, 3e38], [3e38, -3e38], [0.0, 1.0]])
    for gamma in (0.0, 0.5, 2.0):
        loss, d = two.two_class_index_kernel(x, torch.tensor([0, 1, 1]), None, None, gamma, 1, True)
        assert torch.isinf(loss[:2]).all() and torch.isfinite(loss[2])
        assert torch.equal(d[:2], torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))
        loss, d = two.two_class_index_kernel(x, torch.tensor([1, 0, 1]), None, None, gamma, 1, True)
        assert torch.equal(loss[:2], torch.zeros(2)) and torch.equal(d[:2], torch.zeros(2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("spread", [1.0, 30.0, 400.0])
def test_two_class_prob_kernel_against_reference(dtype, gamma, spread):
    x, _, y = _two_class_inputs(dtype, spread)
    for alpha in (None, (0.0, 1.0), (0.25, 0.75)):
        _check(x, y, gamma, alpha=alpha)
    assert two.two_class_prob_kernel(x, y, None, gamma, 1, True) is not None  # the fast path ran


def test_two_class_prob_kernel_leaves_an_infinite_spread_to_the_general_kernel():
    x = torch.tensor([[-3e38, 3e38], [0.0, 1.0]])
    y = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    assert two.two_class_prob_kernel(x, y, None, 2.0, 1, True) is None
    leaf = x.clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(leaf, y, gamma=2.0, reduction="sum")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()


# ----------------------------------------------------------------------------------------------
# probability targets, C > 2: the class k of e = 1 and each branch of the kernel


def _prob_rows(dtype) -> tuple[torch.Tensor, torch.Tensor]:
    big = 745.0 if dtype == torch.float64 else 100.0
    huge = 800.0 if dtype == torch.float64 else 120.0
    x = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],  # all tied (zero-initialised logits)
            [1.0, 3.0, -2.0, 3.0, 0.5],  # two tied maxima, the second after the first
            [2.0, 2.0 - 1e-9, -1.0, 0.0, 1.0],  # a class within rounding of the max (float32: e = 1)
            [big, 0.0, 0.0, 0.0, 0.0],  # s subnormal: u_k tiny, p_k / u_k would overflow
            [huge, 0.0, 0.0, 0.0, 0.0],  # s = 0: u_k = 0, h's limit 1
            [3.0, -1.0, 0.5, 7.0, -4.0],
        ],
        dtype=torch.float64,
    ).to(dtype)
    y = torch.tensor(
        [
            [0.2, 0.2, 0.2, 0.2, 0.2],
            [0.0, 1 - 1e-7, 0.0, 1e-7, 0.0],  # next to one-hot
            [0.5, 0.5, 0.0, 0.0, 0.0],
            [0.3243, 0.1993, 0.0443, 0.2905, 0.1416],
            [1 - 1e-6, 1e-6, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0],  # one-hot
        ],
        dtype=torch.float64,
    ).to(dtype)
    return x, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.5, 1.0, 2.0, 5.0])
def test_prob_kernel_branches_against_reference(dtype, gamma):
    from focal_ref._hessian import _softmax_pieces

    x, y = _prob_rows(dtype)
    x64, y64 = x.double().numpy(), y.double().numpy()
    tiny = float(torch.finfo(dtype).tiny)
    for alpha in (None, (0.1, 0.2, 0.3, 0.4, 0.5)):
        leaf = x.clone().requires_grad_(True)
        loss = ft.softmax_focal_loss(leaf, y, alpha=alpha, gamma=gamma)
        loss.sum().backward()
        want = ref.softmax_focal_loss(x64, y64, alpha=alpha, gamma=gamma)
        np.testing.assert_allclose(loss.detach().double().numpy(), want, rtol=RTOL[dtype], atol=tiny)
        want_grad = ref.softmax_focal_loss_grad(x64, y64, alpha=alpha, gamma=gamma)
        # relative to the row's largest sum of |terms| (test_search's scale): the all-tied row with a
        # uniform target has gradient 0 from terms of 0.2, where no relative error exists
        t = _softmax_pieces(x64, y64, alpha, gamma, -1, None)[0]
        scale = (t.p * t.wg.sum(-1, keepdims=True) + t.wg * t.u).max(-1, keepdims=True)
        error = np.abs(leaf.grad.double().numpy() - want_grad)
        assert np.all(error <= RTOL[dtype] * np.maximum(scale, np.abs(want_grad)) + tiny), error
    e = torch.exp(x - x.amax(1, keepdim=True))
    k = prob_kern._class_of_one(e, 1, torch.empty_like(e)).squeeze(1)
    assert torch.equal(e.gather(1, k[:, None]).squeeze(1), torch.ones(len(x), dtype=dtype))
    assert int(k[0]) == 0 and int(k[1]) == 1  # the first class of e = 1


def test_class_by_layout():
    """The first class of the row maximum: along an innermost class axis from one matrix product of the
    marks (each row's count and marked class), falling back to the ranks where a row has tied maxima or
    a NaN; along an outer axis from the ranks. Both layouts give the same class, loss and gradient."""
    rows = torch.tensor([[1.0, 3.0, -1.0, -2.0], [0.5, 0.0, 0.0, 0.25], [5.0, -1.0, 4.0, 6.0]])
    marks = torch.sub(rows, rows.amax(1, keepdim=True)).sign_().add_(1.0)
    sole = prob_kern._sole_marked(marks, 1)
    assert sole is not None and torch.equal(sole.squeeze(1), torch.tensor([1, 0, 3]))
    maps = rows.T.reshape(1, 4, 3, 1)  # the same rows along dim 1 of (N, C, H, W)
    assert prob_kern._sole_marked(marks.T.reshape(1, 4, 3, 1), 1) is None  # not innermost
    assert torch.equal(prob_kern.first_argmax(maps, 1).flatten(), sole.flatten())
    tied = torch.tensor([[1.0, 3.0, 3.0, -2.0], [0.0, 0.0, 0.0, 0.0], [5.0, -1.0, 4.0, 6.0]])
    tied_marks = torch.sub(tied, tied.amax(1, keepdim=True)).sign_().add_(1.0)
    assert prob_kern._sole_marked(tied_marks, 1) is None
    assert torch.equal(prob_kern.first_argmax(tied, 1).squeeze(1), torch.tensor([1, 0, 3]))  # the first tied
    nan_row = tied.clone()
    nan_row[1, 2] = math.nan
    assert torch.equal(prob_kern.first_argmax(nan_row, 1).squeeze(1), torch.tensor([1, 0, 3]))
    e = torch.exp(rows - rows.amax(1, keepdim=True))
    assert torch.equal(prob_kern._class_of_one(e, 1, torch.empty_like(e)), sole)
    y = torch.softmax(torch.arange(12.0).reshape(3, 4) / 5, 1)
    for logits, gamma in itertools.product((rows, tied), (0.5, 2.0)):  # the product's route, the ranks'
        maps = logits.T.reshape(1, 4, 3, 1)
        flat = logits.clone().requires_grad_(True)
        flat_loss = ft.softmax_focal_loss(flat, y, alpha=None, gamma=gamma, reduction="none")
        flat_loss.sum().backward()
        nchw = maps.clone().requires_grad_(True)
        nchw_loss = ft.softmax_focal_loss(
            nchw, y.T.reshape(1, 4, 3, 1), alpha=None, gamma=gamma, reduction="none"
        )
        nchw_loss.sum().backward()
        torch.testing.assert_close(nchw_loss.detach().flatten(), flat_loss.detach(), rtol=1e-6, atol=0)
        assert nchw.grad is not None and flat.grad is not None
        torch.testing.assert_close(nchw.grad.reshape(4, 3).T, flat.grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("classes", [1, 16, 17, 19, 257, 1000, 4099])
def test_sole_marked_exact_in_every_matmul_precision(classes):
    """The class from the matrix product is exact also where float32 products run in bfloat16
    (``set_float32_matmul_precision("medium")`` on CPU: 8 significant bits, which would round a class
    index above 256): the columns hold base-16 digits. The loss and gradient do not change."""
    gen = torch.Generator().manual_seed(classes)
    x = torch.randn(512, classes, generator=gen) * 3
    y = torch.softmax(torch.randn(512, classes, generator=gen), 1)
    marks = torch.floor(torch.exp(x - x.amax(1, keepdim=True)))
    before = torch.get_float32_matmul_precision()
    results = []
    try:
        for precision in ("highest", "high", "medium"):
            torch.set_float32_matmul_precision(precision)
            k = prob_kern._sole_marked(marks, 1)
            assert k is not None and torch.equal(k.squeeze(1), x.argmax(1)), precision
            leaf = x.clone().requires_grad_(True)
            loss = ft.softmax_focal_loss(leaf, y, alpha=None, reduction="none")
            loss.sum().backward()
            results.append((loss.detach(), leaf.grad))
    finally:
        torch.set_float32_matmul_precision(before)
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1])


def test_prob_kernel_spread_beyond_the_range_on_a_zero_weight_class():
    # log p = -inf on a class of weight 0: loss and gradient finite (the guarded branch)
    x = torch.tensor([[3e38, -3e38, 0.0], [1.0, 2.0, 3.0]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    for gamma in (0.0, 0.5, 2.0):
        leaf = x.clone().requires_grad_(True)
        loss = ft.softmax_focal_loss(leaf, y, gamma=gamma, reduction="sum")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(leaf.grad).all()
        want = ref.softmax_focal_loss_grad(x.double().numpy(), y.double().numpy(), gamma=gamma)
        np.testing.assert_allclose(leaf.grad.double().numpy(), want, rtol=2e-5, atol=1e-30)


# ----------------------------------------------------------------------------------------------
# the per-sample kernels over cache-sized blocks (CPU_BLOCK made small so that small inputs block)


@pytest.mark.parametrize("block", [7, 40, 1000])
@pytest.mark.parametrize(("shape", "dim"), [((6, 5, 4, 3), 1), ((30, 19), 1), ((4, 3, 2), 0), ((5, 2, 9), 2)])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_per_sample_blocks_match_one_call_and_reference(monkeypatch, block, shape, dim, kind):
    import focal_ref._torch_autograd as autograd
    import focal_ref._torch_blocks as ag

    g = torch.Generator().manual_seed(block)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 4
    rest = shape[:dim] + shape[dim + 1 :]
    if kind == "index":
        target = torch.randint(0, shape[dim], rest, generator=g)
        target.view(-1)[::5] = -1
        kwargs = {"ignore_index": -1, "alpha": [(c + 1) / shape[dim] for c in range(shape[dim])]}
    else:
        target = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), dim)
        kwargs = {"alpha": None}
    want = ref.softmax_focal_loss(x.numpy(), target.numpy(), gamma=1.5, axis=dim, **kwargs)
    want_grad = ref.softmax_focal_loss_grad(x.numpy(), target.numpy(), gamma=1.5, axis=dim, **kwargs)
    monkeypatch.setattr(ag, "CPU_BLOCK", block)
    monkeypatch.setattr(autograd, "outgrows_cache", lambda x, buffers: True)  # blocks on any cache
    for reduction in ("none", "sum", "mean"):
        leaf = x.clone().requires_grad_(True)
        loss = ft.softmax_focal_loss(leaf, target, gamma=1.5, dim=dim, reduction=reduction, **kwargs)
        loss.sum().backward()
        kept = np.ones(rest, bool) if kind == "prob" else target.numpy() != -1
        count = max(kept.sum(), 1) if reduction == "mean" else 1
        expect = want if reduction == "none" else want.sum() / count
        np.testing.assert_allclose(loss.detach().numpy(), expect, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(leaf.grad.numpy(), want_grad / count, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_large_unshifted_sums_keep_the_gradient_digits(classes):
    # s = e^85 unshifted: wg_t / s is subnormal while the gradient (~1e-22) is a normal float32
    x = torch.zeros(4, classes)
    x[:, 0], x[:, 1] = 50.886, 84.963
    x[1, 0] = 84.0
    index = torch.tensor([1, 1, 0, 1])
    for gamma in (0.5, 2.0):
        _check(x, index, gamma)


# ----------------------------------------------------------------------------------------------
# keep="inputs": nothing kept beyond the inputs, the same values, every way of differentiating


def _saved_beyond_inputs(fn, *inputs) -> int:
    ptrs = {t.untyped_storage().data_ptr() for t in inputs}
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda v: (saved.append(v), v)[1], lambda v: v):
        out = fn()
    return out, sum(t.numel() * t.element_size() for t in saved if t.untyped_storage().data_ptr() not in ptrs)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(
    "case", ["sigmoid", "softmax-index", "softmax-prob", "softmax-2", "sigmoid-weighted"]
)
def test_keep_inputs_keeps_nothing_and_gives_the_same_values(case, reduction):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3
    extra: dict = {}
    if case.startswith("sigmoid"):
        target = torch.rand(50, 4, generator=g, dtype=torch.float64)
        if case == "sigmoid-weighted":
            extra = {"weight": torch.rand(4, dtype=torch.float64)}

        def loss(v, keep):
            return ft.sigmoid_focal_loss(v, target, reduction=reduction, keep=keep, **extra)
    else:
        if case == "softmax-2":
            x = x[:, :2].contiguous()
        c = x.shape[1]
        target = (
            torch.randint(0, c, (50,), generator=g)
            if case != "softmax-prob"
            else torch.softmax(torch.randn(50, c, generator=g, dtype=torch.float64), 1)
        )

        def loss(v, keep):
            return ft.softmax_focal_loss(v, target, gamma=1.5, reduction=reduction, keep=keep)

    results = {}
    for keep in ("derivative", "inputs"):
        leaf = x.clone().requires_grad_(True)
        inputs = (leaf, target, *extra.values())  # the caller's tensors, held by reference
        out, kept = _saved_beyond_inputs(lambda leaf=leaf, keep=keep: loss(leaf, keep), *inputs)
        (grad,) = torch.autograd.grad(out.sum(), leaf, create_graph=True)
        (hvp,) = torch.autograd.grad(grad.sum(), leaf)
        results[keep] = (out.detach(), grad.detach(), hvp, kept)
    assert results["inputs"][3] == 0 < results["derivative"][3]
    for a, b in zip(results["derivative"][:3], results["inputs"][:3], strict=True):
        assert torch.equal(a, b)  # bit for bit: the same kernel, run in backward
    # torch.func too (under its transforms the exponentials are always shifted: last-bit differences)
    fgrad = torch.func.grad(lambda v: loss(v, "inputs").sum())(x)
    torch.testing.assert_close(fgrad, results["derivative"][1], rtol=1e-13, atol=1e-300)


def test_keep_must_be_derivative_or_inputs():
    x, y = torch.zeros(3), torch.ones(3)
    for bad in ("none", None, 1):
        with pytest.raises(ValueError, match="keep"):
            ft.sigmoid_focal_loss(x, y, keep=bad)
        with pytest.raises(ValueError, match="keep"):
            ft.softmax_focal_loss(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), keep=bad)


def test_a_weight_that_requires_grad_is_named():
    x, y = torch.zeros(2, 3), torch.ones(2, 3)
    for name in ("weight", "pos_weight"):
        with pytest.raises(ValueError, match=f"^{name} must not require grad"):
            ft.sigmoid_focal_loss(x, y, **{name: torch.ones(3, requires_grad=True)})


def test_probability_kernel_leaves_the_targets_untouched():
    # gamma = 0 without alpha: the weights are the caller's target tensor, which must not be written
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.softmax(torch.randn(6, 5, dtype=torch.float64), 1)
    version, before = y._version, y.clone()
    ft.softmax_focal_loss(x, y, gamma=0.0, reduction="sum").backward()
    assert y._version == version and torch.equal(y, before)


@pytest.mark.parametrize("kind", ["index", "prob"])
def test_two_classes_through_torch_func_and_double_backward(kind):
    # the two-class paths under grad, vmap (per-sample gradients), jacfwd and the Hessian, against the
    # reference's gradient and the general C = 3 path with a class that takes no probability
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 2, generator=g, dtype=torch.float64) * 4
    x[0] = torch.tensor([0.0, 40.0])  # saturated
    if kind == "index":
        t = torch.tensor([0, 1, 1, 0, 1, 0])
    else:
        t = torch.softmax(torch.randn(6, 2, generator=g, dtype=torch.float64), 1)
        t[1] = torch.tensor([1e-9, 1.0 - 1e-9], dtype=torch.float64)  # next to one-hot

    def total(v):
        return ft.softmax_focal_loss(v, t, gamma=0.5, reduction="sum")

    want = ref.softmax_focal_loss_grad(x.numpy(), t.numpy(), gamma=0.5)
    torch.testing.assert_close(torch.func.grad(total)(x).numpy(), want, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(torch.func.jacfwd(total)(x).numpy(), want, rtol=1e-12, atol=1e-300)
    per_sample = torch.func.vmap(torch.func.grad(lambda v, s: total_one(v, s)))(x, t)
    torch.testing.assert_close(per_sample.numpy(), want, rtol=1e-12, atol=1e-300)
    h = torch.func.hessian(total)(x)
    want_h = ref.softmax_focal_loss_hessian(x.numpy(), t.numpy(), gamma=0.5)
    for i in range(6):
        torch.testing.assert_close(h[i, :, i, :].numpy(), want_h[i], rtol=1e-10, atol=1e-300)
    # double backward: H v for a random v (not v = 1: a softmax Hessian's rows sum to 0)
    v = torch.randn(6, 2, generator=g, dtype=torch.float64)
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(total(leaf), leaf, create_graph=True)
    (grad * v).sum().backward()
    hv = torch.einsum("ijkl,kl->ij", h, v)
    torch.testing.assert_close(leaf.grad, hv, rtol=1e-10, atol=1e-12 * float(h.abs().max()))


def total_one(v, s):
    return ft.softmax_focal_loss(v[None], s[None], gamma=0.5, reduction="sum")


def test_probability_blocks_only_where_the_buffers_outgrow_the_cache(monkeypatch):
    import focal_ref._torch_blocks as blocks

    x = torch.zeros(1000, 10)
    cache = blocks.last_level_cache_bytes()
    assert cache is None or cache > 0
    monkeypatch.setattr(blocks, "last_level_cache_bytes", lambda: 8 * 4 * 10_000)
    assert not blocks.outgrows_cache(x, 8)  # 320 kB of buffers in a 320 kB cache
    assert blocks.outgrows_cache(torch.zeros(1001, 10), 8)
    assert blocks.outgrows_cache(x.double(), 8)
    monkeypatch.setattr(blocks, "last_level_cache_bytes", lambda: None)
    assert blocks.outgrows_cache(x, 8)  # unknown cache: block
