"""focal_ref.torch against the float64 NumPy reference, autograd, and its own memory contract."""

import warnings

import numpy as np
import pytest
import torch
from cases import ALPHAS, GAMMAS, sigmoid_cases, softmax_cases

import focal_ref as ref
import focal_ref._torch_blocks as blocks
import focal_ref._torch_fused as fused_mod
import focal_ref._torch_kernels as kern
import focal_ref.torch as ft

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
CLASS_ALPHAS = (None, 0.25, (0.1, 0.2, 0.3, 0.4, 0.5))

# (loss rtol, grad rtol) per dtype. float64: a few ulp. float32: a few tens of ulp (the gradient of a soft
# label cancels (p - y) against the focal term, which costs a few ulp more; the softmax index path takes
# p_c = exp(log_softmax) whose rounding grows with |log p_c|, times gamma up to 5). Half precision is computed
# in float32 and rounded once to the output dtype: one eps.
RTOL = {
    torch.float64: (1e-13, 1e-13),
    torch.float32: (5e-6, 1e-5),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (8e-3, 8e-3),
}


def _floor(dtype):
    """Values below the dtype's smallest normal number carry only absolute accuracy: with denormals
    flushed to zero (``torch.set_flush_denormal(True)``, which a process may have turned on) they are 0."""
    return torch.finfo(dtype).tiny


def _assert_close(actual, expected, rtol, floor, scale=None):
    actual = actual.detach().cpu().double().numpy()
    assert np.all(np.isfinite(actual))
    scale = np.abs(expected) if scale is None else scale
    # an absolute error up to ``floor`` is allowed: a subnormal result may be flushed to 0
    err = np.abs(actual - expected) / np.maximum(scale, floor / rtol)
    assert err.max() <= rtol, (
        f"worst relative error {err.max():.3g} > {rtol:g} at {np.unravel_index(err.argmax(), err.shape)}"
    )


def _rounded(values, dtype, device):
    """A tensor of ``dtype`` and the float64 array of exactly the values it holds."""
    tensor = torch.tensor(values, dtype=torch.float64).to(device=device, dtype=dtype)
    return tensor, tensor.cpu().double().numpy()


# ----------------------------------------------------------------------------------------------
# agreement with the reference on the shared cases


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_sigmoid_matches_reference(device, dtype, gamma):
    logits, targets = sigmoid_cases()
    y, y64 = _rounded(targets, dtype, device)
    loss_rtol, grad_rtol = RTOL[dtype]
    for alpha in ALPHAS:
        x, x64 = _rounded(logits, dtype, device)
        x.requires_grad_(True)
        loss = ft.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
        loss.backward(torch.ones_like(loss))
        assert loss.dtype == dtype and x.grad.dtype == dtype and loss.device == x.device
        _assert_close(
            loss, ref.sigmoid_focal_loss(x64, y64, alpha=alpha, gamma=gamma), loss_rtol, _floor(dtype)
        )
        expected = ref.sigmoid_focal_loss_grad(x64, y64, alpha=alpha, gamma=gamma)
        _assert_close(x.grad, expected, grad_rtol, _floor(dtype))
        direct = ft.sigmoid_focal_loss_grad(x.detach(), y, alpha=alpha, gamma=gamma)
        assert torch.equal(direct, x.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_softmax_matches_reference(device, dtype, gamma, kind):
    logits, index, soft = softmax_cases()
    loss_rtol, grad_rtol = RTOL[dtype]
    if kind == "indices":
        t, t64 = torch.tensor(index, device=device), index
    else:
        t, t64 = _rounded(soft, dtype, device)
    for alpha in CLASS_ALPHAS:
        x, x64 = _rounded(logits, dtype, device)
        x.requires_grad_(True)
        loss = ft.softmax_focal_loss(x, t, alpha=alpha, gamma=gamma)
        loss.sum().backward()
        assert loss.shape == (logits.shape[0],) and loss.dtype == dtype
        _assert_close(
            loss, ref.softmax_focal_loss(x64, t64, alpha=alpha, gamma=gamma), loss_rtol, _floor(dtype)
        )
        expected = ref.softmax_focal_loss_grad(x64, t64, alpha=alpha, gamma=gamma)
        # gradients relative to the largest component of each sample's gradient
        row_scale = np.abs(expected).max(axis=-1, keepdims=True)
        _assert_close(x.grad, expected, grad_rtol, _floor(dtype), scale=row_scale)
        direct = ft.softmax_focal_loss_grad(x.detach(), t, alpha=alpha, gamma=gamma)
        assert torch.equal(direct, x.grad)


@pytest.mark.parametrize("kind", ["indices", "probabilities"])
def test_softmax_class_axis_of_a_dense_map(kind):
    """(N, C, H, W) logits with dim=1 (and the same data with the class axis last, dim=-1)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 5.0, (2, 4, 3, 5))
    targets = (
        rng.integers(0, 4, (2, 3, 5))
        if kind == "indices"
        else rng.dirichlet(np.ones(4), (2, 3, 5)).transpose(0, 3, 1, 2)
    )
    alpha = (0.2, 0.4, 0.6, 0.8)
    x = torch.tensor(logits, requires_grad=True)
    loss = ft.softmax_focal_loss(x, torch.tensor(targets), alpha=alpha, gamma=1.5)
    loss.sum().backward()
    np.testing.assert_allclose(
        loss.detach().numpy(),
        ref.softmax_focal_loss(logits, targets, alpha=alpha, gamma=1.5, axis=1),
        rtol=1e-13,
    )
    expected_grad = ref.softmax_focal_loss_grad(logits, targets, alpha=alpha, gamma=1.5, axis=1)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-12, atol=1e-15)
    # the same map, classes moved last and given as dim=-1 (a non-contiguous view)
    last = torch.tensor(logits).movedim(1, -1)
    t_last = torch.tensor(targets) if kind == "indices" else torch.tensor(targets).movedim(1, -1)
    np.testing.assert_allclose(
        ft.softmax_focal_loss(last, t_last, alpha=alpha, gamma=1.5, dim=-1).numpy(),
        loss.detach().numpy(),
        rtol=1e-14,
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_probability_inputs_match_reference(gamma):
    rng = np.random.default_rng(5)
    probs = np.concatenate([rng.uniform(0, 1, 200), [0.0, 1e-12, 0.5, 1 - 1e-12, 1.0]])
    targets = np.concatenate(
        [
            np.where(rng.uniform(size=200) < 0.5, rng.integers(0, 2, 200), rng.uniform(0, 1, 200)),
            [0.0, 1.0, 0.3, 1.0, 1.0],
        ]
    )
    np.testing.assert_allclose(
        ft.binary_focal_loss(torch.tensor(probs), torch.tensor(targets), gamma=gamma).numpy(),
        ref.binary_focal_loss(probs, targets, gamma=gamma),
        rtol=1e-13,
        atol=1e-300,
    )
    p = rng.dirichlet(np.ones(5), 60)
    for targets in (rng.integers(0, 5, 60), rng.dirichlet(np.ones(5), 60)):
        np.testing.assert_allclose(
            ft.categorical_focal_loss(
                torch.tensor(p), torch.tensor(targets), alpha=(0.1, 0.2, 0.3, 0.4, 0.5), gamma=gamma
            ).numpy(),
            ref.categorical_focal_loss(p, targets, alpha=(0.1, 0.2, 0.3, 0.4, 0.5), gamma=gamma),
            rtol=1e-13,
        )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_focal_loss_star_matches_reference(dtype):
    logits, _ = sigmoid_cases()
    targets = (np.arange(logits.size) % 2).astype(np.float64)
    x, x64 = _rounded(logits, dtype, "cpu")
    x.requires_grad_(True)
    for gamma, beta, alpha in [(2.0, 1.0, 0.25), (0.5, -3.0, None), (4.0, 0.0, 0.75)]:
        x.grad = None
        loss = ft.sigmoid_focal_loss_star(
            x, torch.tensor(targets, dtype=dtype), gamma=gamma, beta=beta, alpha=alpha
        )
        loss.sum().backward()
        _assert_close(
            loss,
            ref.sigmoid_focal_loss_star(x64, targets, gamma=gamma, beta=beta, alpha=alpha),
            RTOL[dtype][0],
            _floor(dtype),
        )
        expected = ref.sigmoid_focal_loss_star_grad(x64, targets, gamma=gamma, beta=beta, alpha=alpha)
        _assert_close(x.grad, expected, RTOL[dtype][1], _floor(dtype))


# ----------------------------------------------------------------------------------------------
# the closed-form backward: gradcheck, autograd of the plain formula, finiteness


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 5, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    soft = torch.rand(4, 5, generator=gen, dtype=torch.float64)
    hard = (soft > 0.5).double()
    index = torch.randint(0, 5, (4,), generator=gen)
    probs = torch.softmax(x.detach(), 1).requires_grad_(True)
    sig = torch.sigmoid(x.detach()).requires_grad_(True)
    checks = [
        (lambda v: ft.sigmoid_focal_loss(v, soft, gamma=2.0), x),
        (lambda v: ft.sigmoid_focal_loss(v, hard, alpha=None, gamma=0.5, reduction="mean"), x),
        (lambda v: ft.softmax_focal_loss(v, index, gamma=2.0, alpha=(0.1, 0.2, 0.3, 0.4, 0.5)), x),
        (lambda v: ft.softmax_focal_loss(v, soft, gamma=0.7, reduction="sum"), x),
        (lambda v: ft.softmax_focal_loss(v.T, index, dim=0, gamma=3.0), x),
        (lambda v: ft.sigmoid_focal_loss_star(v, hard, gamma=2.0, beta=1.0), x),
        (lambda v: ft.binary_focal_loss(v, soft, gamma=1.5), sig),
        (lambda v: ft.categorical_focal_loss(v, index, gamma=1.5), probs),
    ]
    for fn, inputs in checks:
        assert torch.autograd.gradcheck(fn, (inputs,), eps=1e-6, atol=1e-9, rtol=1e-6)


def _plain_sigmoid_focal(x, y, alpha, gamma):
    """The textbook formula, differentiated by autograd (float64, moderate logits)."""
    p = torch.sigmoid(x)
    ce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    return (alpha * y + (1 - alpha) * (1 - y)) * (1 - p_t) ** gamma * ce


def _plain_softmax_focal(x, w, gamma):
    p = torch.softmax(x, 1)
    return -(w * (1 - p) ** gamma * torch.log(p)).sum(1)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.7])
def test_closed_form_backward_equals_autograd_of_plain_formula(gamma):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(300, generator=gen, dtype=torch.float64) * 4
    y = torch.where(
        torch.rand(300, generator=gen) < 0.5,
        (torch.rand(300, generator=gen) < 0.5).double(),
        torch.rand(300, generator=gen, dtype=torch.float64),
    )
    upstream = torch.rand(300, generator=gen, dtype=torch.float64)
    ours = x.clone().requires_grad_(True)
    plain = x.clone().requires_grad_(True)
    ft.sigmoid_focal_loss(ours, y, alpha=0.3, gamma=gamma).backward(upstream)
    _plain_sigmoid_focal(plain, y, 0.3, gamma).backward(upstream)
    torch.testing.assert_close(ours.grad, plain.grad, rtol=1e-10, atol=1e-14)

    logits = torch.randn(50, 6, generator=gen, dtype=torch.float64) * 3
    w = torch.rand(50, 6, generator=gen, dtype=torch.float64)
    upstream = torch.rand(50, generator=gen, dtype=torch.float64)
    ours = logits.clone().requires_grad_(True)
    plain = logits.clone().requires_grad_(True)
    ft.softmax_focal_loss(ours, w, gamma=gamma).backward(upstream)
    _plain_softmax_focal(plain, w, gamma).backward(upstream)
    torch.testing.assert_close(ours.grad, plain.grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.5, 0.9])
def test_finite_at_saturation_for_small_gamma(device, dtype, gamma):
    """gamma < 1 puts 0^(gamma-1) into the naive gradient where p_t -> 1; ours stays finite (and exact: 0
    or tiny). Logits up to a quarter of the dtype's largest number, labels agreeing and disagreeing."""
    big = torch.finfo(dtype).max / 4
    magnitudes = torch.tensor([9.0, 17.0, 40.0, 100.0, 745.0, 1e4, big], dtype=torch.float64)
    logits = torch.cat([magnitudes, -magnitudes]).to(dtype)
    logits = logits[torch.isfinite(logits)]
    for targets in (
        torch.ones_like(logits),
        torch.zeros_like(logits),
        (logits > 0).to(dtype),
        torch.full_like(logits, 0.5),
    ):
        x = logits.clone().to(device).requires_grad_(True)
        loss = ft.sigmoid_focal_loss(x, targets.to(device), gamma=gamma)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()
    # softmax: one saturated class per row, the target on it (p_t -> 1) and off it
    rows = torch.zeros(len(magnitudes), 3, dtype=torch.float64)
    rows[:, 0] = magnitudes
    for index in (0, 2):
        x = rows.to(dtype).to(device).requires_grad_(True)
        loss = ft.softmax_focal_loss(x, torch.full((len(magnitudes),), index, device=device), gamma=gamma)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()


def test_saturated_float32_is_exact_in_log_space():
    """At |x| >= 17, 1 - sigmoid(x) rounds to 0 in float32; the loss of a right answer must not."""
    x = torch.tensor([17.0, 30.0, 60.0, -17.0, -30.0, -60.0], requires_grad=True)
    y = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    loss = ft.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0)
    loss.sum().backward()
    expected = np.exp(-np.abs(x.detach().double().numpy()))  # CE = softplus(-|x|) ~ e^-|x| here
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), -np.sign(x.detach().numpy()) * expected, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# memory: what backward keeps


def _saved_bytes(fn, *inputs, targets=None):
    """Bytes autograd keeps for backward, excluding the inputs and the targets themselves (held by
    reference, never copied: the caller holds them); each storage counted once."""
    excluded = list(inputs) + ([] if targets is None else [targets])
    input_storages = {t.untyped_storage().data_ptr() for t in excluded}
    seen = {}

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in input_storages:
            seen[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    out.backward()
    return sum(seen.values())


def _torchvision_formula(x, y, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, written out as autograd runs it."""
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return (alpha_t * loss).mean()


@pytest.mark.parametrize(
    "dtype, per_element",
    [(torch.float32, 4), (torch.float16, 4), (torch.bfloat16, 4), (torch.float64, 8)],
    ids=str,
)
def test_saved_bytes_per_element(dtype, per_element):
    n = 12_345
    x = torch.randn(n, dtype=dtype, requires_grad=True)
    y = (torch.rand(n) < 0.3).to(dtype)
    assert (
        _saved_bytes(lambda v: ft.sigmoid_focal_loss(v, y, reduction="mean"), x, targets=y) == per_element * n
    )
    assert (
        _saved_bytes(lambda v: ft.sigmoid_focal_loss(v, y, gamma=0.5, alpha=None).sum(), x, targets=y)
        == per_element * n
    )
    logits = torch.randn(n // 5, 5, dtype=dtype, requires_grad=True)
    index = torch.randint(0, 5, (n // 5,))
    assert (
        _saved_bytes(lambda v: ft.softmax_focal_loss(v, index, reduction="mean"), logits, targets=index)
        == per_element * logits.numel()
    )
    soft = torch.softmax(torch.randn(n // 5, 5), 1).to(dtype)
    assert (
        _saved_bytes(lambda v: ft.softmax_focal_loss(v, soft, reduction="sum"), logits, targets=soft)
        == per_element * logits.numel()
    )


def test_torchvision_formula_keeps_about_24_bytes_per_element():
    n = 10_000
    x = torch.randn(n, requires_grad=True)
    y = (torch.rand(n) < 0.3).float()
    kept = _saved_bytes(_torchvision_formula, x, y) / n
    assert 20 <= kept <= 32, kept  # p, 1-p, p_t's pieces, (1-p_t), its power, ce, alpha_t
    assert _saved_bytes(lambda v: ft.sigmoid_focal_loss(v, y, reduction="mean"), x, targets=y) / n == 4


def test_no_grad_keeps_nothing_and_gives_the_same_loss():
    x = torch.randn(1000, requires_grad=True)
    y = torch.rand(1000)
    with torch.no_grad():
        a = ft.sigmoid_focal_loss(x, y)
    assert torch.equal(a, ft.sigmoid_focal_loss(x, y).detach())
    assert _saved_bytes(lambda v: ft.sigmoid_focal_loss(v.detach(), y).sum().requires_grad_(), x) == 0


# ----------------------------------------------------------------------------------------------
# autograd contract: targets, double backward, non-contiguous input, upstream gradients


def test_targets_that_require_grad_raise():
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.rand(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="targets must not require grad"):
        ft.sigmoid_focal_loss(x, y)
    with pytest.raises(ValueError, match="targets must not require grad"):
        ft.softmax_focal_loss(x, y)
    assert ft.sigmoid_focal_loss(x, y.detach()).shape == (4, 3)


def test_grad_functions_take_logits_that_require_grad():
    """The *_grad functions are plain evaluations: logits inside a graph give a detached result."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.rand(6, 5, generator=gen, dtype=torch.float64)
    grad = ft.sigmoid_focal_loss_grad(x, y, gamma=0.5)
    assert not grad.requires_grad
    np.testing.assert_allclose(
        grad.numpy(), ref.sigmoid_focal_loss_grad(x.detach().numpy(), y.numpy(), gamma=0.5), rtol=1e-13
    )
    index = torch.tensor([0, 4, 2, 1, 3, 0])
    grad = ft.softmax_focal_loss_grad(x, index, gamma=0.5)
    assert not grad.requires_grad
    np.testing.assert_allclose(
        grad.numpy(),
        ref.softmax_focal_loss_grad(x.detach().numpy(), index.numpy(), gamma=0.5),
        rtol=1e-13,
        atol=1e-300,
    )


def test_double_backward_gives_the_second_derivative():
    """create_graph=True, then backward: the closed-form second derivative (once a RuntimeError)."""
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = torch.rand(5, dtype=torch.float64)
    loss = ft.sigmoid_focal_loss(x, y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x, create_graph=True)
    grad.sum().backward()
    eps = 1e-6
    xd = x.detach()
    numeric = (ft.sigmoid_focal_loss_grad(xd + eps, y) - ft.sigmoid_focal_loss_grad(xd - eps, y)) / (2 * eps)
    torch.testing.assert_close(x.grad, numeric, rtol=1e-7, atol=1e-9)


def test_upstream_gradient_and_non_contiguous_input():
    base = torch.randn(6, 8, dtype=torch.float64)
    y = torch.rand(8, 6, dtype=torch.float64)
    x = base.clone().requires_grad_(True)
    upstream = torch.rand(8, 6, dtype=torch.float64)
    ft.sigmoid_focal_loss(x.T, y, gamma=1.5).backward(upstream)
    expected = ref.sigmoid_focal_loss_grad(base.T.numpy(), y.numpy(), gamma=1.5) * upstream.numpy()
    np.testing.assert_allclose(x.grad.T.numpy(), expected, rtol=1e-13)


# ----------------------------------------------------------------------------------------------
# reductions, ignore_index, edge cases


def test_reductions():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    y = torch.rand(7, 4, generator=gen, dtype=torch.float64)
    none = ft.sigmoid_focal_loss(x, y)
    torch.testing.assert_close(ft.sigmoid_focal_loss(x, y, reduction="sum"), none.sum(), rtol=1e-15, atol=0)
    torch.testing.assert_close(ft.sigmoid_focal_loss(x, y, reduction="mean"), none.mean(), rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        ft.sigmoid_focal_loss(x, y, reduction="mean").item(),
        ref.sigmoid_focal_loss(x.numpy(), y.numpy(), reduction="mean"),
        rtol=1e-14,
    )
    index = torch.randint(0, 4, (7,), generator=gen)
    per_sample = ft.softmax_focal_loss(x, index)
    torch.testing.assert_close(
        ft.softmax_focal_loss(x, index, reduction="sum"), per_sample.sum(), rtol=1e-15, atol=0
    )
    torch.testing.assert_close(
        ft.softmax_focal_loss(x, index, reduction="mean"), per_sample.mean(), rtol=1e-15, atol=0
    )
    # empty input: "mean" over nothing is 0, as in the reference
    empty = torch.zeros(0, requires_grad=True)
    assert ft.sigmoid_focal_loss(empty, torch.zeros(0), reduction="mean").item() == 0.0
    # 0-d input and plain lists
    assert np.isclose(
        ft.sigmoid_focal_loss(torch.tensor(2.0, dtype=torch.float64), torch.tensor(1.0)).item(),
        ref.sigmoid_focal_loss(2.0, 1.0),
    )
    np.testing.assert_allclose(
        ft.sigmoid_focal_loss([2.0, -1.0], [1.0, 0.0]).numpy(),
        ref.sigmoid_focal_loss([2.0, -1.0], [1.0, 0.0]),
        rtol=1e-6,
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_mean_of_many_elements_does_not_overflow(dtype):
    """The sum of 2M half-precision losses exceeds float16's range (65504); their mean does not.

    Reductions run in the float32 compute dtype, and only the mean is rounded to the input's dtype.
    """
    n = 2_000_000
    x = torch.zeros(n, dtype=dtype, requires_grad=True)
    y = torch.ones(n, dtype=dtype)
    mean = ft.sigmoid_focal_loss(x, y, reduction="mean")
    expected = float(ref.sigmoid_focal_loss(0.0, 1.0))  # 0.25 * 0.5**2 * log 2 per element
    assert mean.dtype == dtype and float(mean.detach()) == pytest.approx(expected, rel=torch.finfo(dtype).eps)
    mean.backward()
    # d mean / dx_i = grad_i / n, about -3.7e-8: subnormal in float16, so within one subnormal step there
    expected_grad = float(ref.sigmoid_focal_loss_grad(0.0, 1.0)) / n
    assert torch.isfinite(x.grad).all()
    assert float(x.grad[0]) == pytest.approx(expected_grad, rel=torch.finfo(dtype).eps, abs=2.0**-24)
    logits = torch.zeros(n, 2, dtype=dtype)
    softmax_mean = ft.softmax_focal_loss(logits, torch.zeros(n, dtype=torch.long), reduction="mean")
    assert float(softmax_mean) == pytest.approx(
        float(ref.softmax_focal_loss([[0.0, 0.0]], [0])[0]), rel=torch.finfo(dtype).eps
    )
    if dtype == torch.float16:
        assert torch.isinf(ft.sigmoid_focal_loss(x, y, reduction="sum"))  # the sum itself is out of range


def test_cpu_blocks_sum_as_they_go(monkeypatch):
    """A "mean"/"sum" over CPU blocks is added up block by block, with no loss tensor of the input's size;
    up to 2 * CPU_BLOCK elements in one call, above it in blocks of ELEMENTWISE_BLOCK."""
    monkeypatch.setattr(blocks, "CPU_BLOCK", 2048)  # one call up to 4096 elements
    monkeypatch.setattr(blocks, "ELEMENTWISE_BLOCK", 1024)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5000, generator=gen, dtype=torch.float64) * 10
    y = torch.rand(5000, generator=gen, dtype=torch.float64)
    expected = ref.sigmoid_focal_loss(x.numpy(), y.numpy())
    elementwise = x.clone().requires_grad_(True)
    ft.sigmoid_focal_loss(elementwise, y).backward(torch.ones_like(x))  # the "none" path: same blocks
    for reduction, value in (("sum", expected.sum()), ("mean", expected.mean())):
        leaf = x.clone().requires_grad_(True)
        loss = ft.sigmoid_focal_loss(leaf, y, reduction=reduction)
        assert loss.shape == () and float(loss.detach()) == pytest.approx(value, rel=1e-13)
        loss.backward()
        scale = 1.0 if reduction == "sum" else 1.0 / 5000
        torch.testing.assert_close(leaf.grad, elementwise.grad * scale, rtol=1e-15, atol=0)
        sizes = []
        original = kern.sigmoid_kernel
        monkeypatch.setattr(
            kern,
            "sigmoid_kernel",
            lambda *a, _s=sizes, _o=original, **k: _s.append(a[0].numel()) or _o(*a, **k),
        )
        ft.sigmoid_focal_loss(x, y, reduction=reduction)
        ft.sigmoid_focal_loss(x[:4096], y[:4096], reduction=reduction)
        monkeypatch.setattr(kern, "sigmoid_kernel", original)
        assert sizes == [1024] * 4 + [904] + [4096]


def test_ignore_index():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    index = torch.tensor([0, -100, 2, 1, -100, 2])
    x = logits.clone().requires_grad_(True)
    loss = ft.softmax_focal_loss(x, index, ignore_index=-100, alpha=(0.2, 0.5, 0.8))
    loss.sum().backward()
    expected = ref.softmax_focal_loss(
        logits.numpy(), index.numpy(), ignore_index=-100, alpha=(0.2, 0.5, 0.8), axis=1
    )
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-14)
    assert loss[1].item() == 0.0 and loss[4].item() == 0.0
    assert torch.all(x.grad[[1, 4]] == 0)
    mean = ft.softmax_focal_loss(logits, index, ignore_index=-100, alpha=(0.2, 0.5, 0.8), reduction="mean")
    np.testing.assert_allclose(mean.item(), expected.sum() / 4, rtol=1e-14)
    all_ignored = torch.full((6,), 7)
    assert ft.softmax_focal_loss(logits, all_ignored, ignore_index=7, reduction="mean").item() == 0.0
    assert ft.categorical_focal_loss(torch.softmax(logits, 1), index, ignore_index=-100)[1].item() == 0.0


# ----------------------------------------------------------------------------------------------
# bad input: each raises naming the argument


def _cases_bad():
    x, y = torch.randn(4, 3), torch.rand(4, 3)
    index = torch.tensor([0, 1, 2, 0])
    return [
        (ValueError, "gamma", lambda: ft.sigmoid_focal_loss(x, y, gamma=-1.0)),
        (ValueError, "gamma", lambda: ft.sigmoid_focal_loss(x, y, gamma=float("nan"))),
        (TypeError, "gamma", lambda: ft.softmax_focal_loss(x, index, gamma="2")),
        (ValueError, "alpha", lambda: ft.sigmoid_focal_loss(x, y, alpha=1.5)),
        (TypeError, "alpha", lambda: ft.sigmoid_focal_loss(x, y, alpha="0.25")),
        (ValueError, "alpha", lambda: ft.softmax_focal_loss(x, index, alpha=(0.5, 0.5))),
        (ValueError, "alpha", lambda: ft.softmax_focal_loss(x, index, alpha=(0.5, 0.5, -0.1))),
        (ValueError, "reduction", lambda: ft.sigmoid_focal_loss(x, y, reduction="avg")),
        (ValueError, "dim", lambda: ft.softmax_focal_loss(x, index, dim=2)),
        (TypeError, "dim", lambda: ft.softmax_focal_loss(x, index, dim=1.0)),
        (ValueError, "targets must have the shape", lambda: ft.sigmoid_focal_loss(x, y[:2])),
        (ValueError, "targets must have the shape", lambda: ft.softmax_focal_loss(x, index[:2])),
        (TypeError, "targets", lambda: ft.softmax_focal_loss(x, index.double())),
        (TypeError, "logits", lambda: ft.sigmoid_focal_loss(torch.ones(3, dtype=torch.int64), torch.ones(3))),
        (ValueError, "ignore_index", lambda: ft.softmax_focal_loss(x, y, ignore_index=-100)),
        (TypeError, "ignore_index", lambda: ft.softmax_focal_loss(x, index, ignore_index=1.5)),
        (ValueError, "gamma", lambda: ft.sigmoid_focal_loss_star(x, (y > 0.5).float(), gamma=0.0)),
        (ValueError, "beta", lambda: ft.sigmoid_focal_loss_star(x, (y > 0.5).float(), beta=float("inf"))),
        # value checks, opt-in (they synchronise with the device)
        (
            ValueError,
            "logits must be finite",
            lambda: ft.sigmoid_focal_loss(torch.tensor([float("nan")]), torch.ones(1), validate=True),
        ),
        (ValueError, "targets must lie in", lambda: ft.sigmoid_focal_loss(x, y + 1, validate=True)),
        (
            ValueError,
            "targets must lie in",
            lambda: ft.sigmoid_focal_loss(x, y * float("nan"), validate=True),
        ),
        (
            ValueError,
            "targets must be class indices",
            lambda: ft.softmax_focal_loss(x, index + 1, validate=True),
        ),
        (
            ValueError,
            "targets must be class indices",
            lambda: ft.softmax_focal_loss(x, index - 1, ignore_index=-100, validate=True),
        ),
        (ValueError, "targets must lie in", lambda: ft.softmax_focal_loss(x, -y, validate=True)),
        (ValueError, "targets must be hard", lambda: ft.sigmoid_focal_loss_star(x, y, validate=True)),
        (ValueError, "probs must lie in", lambda: ft.binary_focal_loss(x, y, validate=True)),
        (ValueError, "probs must lie in", lambda: ft.categorical_focal_loss(x, index, validate=True)),
        (ValueError, "gamma", lambda: ft.SigmoidFocalLoss(gamma=-2.0)),
        (ValueError, "alpha", lambda: ft.SoftmaxFocalLoss(alpha=(0.5, 2.0))),
        (ValueError, "reduction", lambda: ft.SoftmaxFocalLoss(reduction="batchmean")),
    ]


@pytest.mark.parametrize("case", range(len(_cases_bad())))
def test_bad_input_raises_naming_the_argument(case):
    error, name, call = _cases_bad()[case]
    with pytest.raises(error, match=name):
        call()


def test_valid_edge_cases_pass_validation():
    x = torch.randn(4, 3)
    index = torch.tensor([0, -100, 2, 0])
    ft.sigmoid_focal_loss(x, torch.rand(4, 3), alpha=None, gamma=0.0, validate=True)
    for alpha in (0.0, 1.0, None):
        ft.sigmoid_focal_loss(x, torch.rand(4, 3), alpha=alpha, validate=True)
    ft.softmax_focal_loss(x, index, ignore_index=-100, validate=True)
    ft.sigmoid_focal_loss_star(x, (x > 0).float(), validate=True)
    ft.binary_focal_loss(torch.rand(4, 3), torch.rand(4, 3), validate=True)


# ----------------------------------------------------------------------------------------------
# Module wrappers


def test_module_wrappers():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(5, 4, generator=gen)
    y = torch.rand(5, 4, generator=gen)
    index = torch.randint(0, 4, (5,), generator=gen)
    probs = torch.softmax(x, 1)
    pairs = [
        (
            ft.SigmoidFocalLoss(alpha=0.4, gamma=1.0),
            lambda: ft.sigmoid_focal_loss(x, y, alpha=0.4, gamma=1.0, reduction="mean"),
            (x, y),
        ),
        (
            ft.BinaryFocalLoss(gamma=3.0, reduction="sum"),
            lambda: ft.binary_focal_loss(torch.sigmoid(x), y, gamma=3.0, reduction="sum"),
            (torch.sigmoid(x), y),
        ),
        (
            ft.SoftmaxFocalLoss(alpha=torch.tensor([0.1, 0.2, 0.3, 0.4]), gamma=2.0, reduction="none"),
            lambda: ft.softmax_focal_loss(x, index, alpha=(0.1, 0.2, 0.3, 0.4), gamma=2.0),
            (x, index),
        ),
        (
            ft.CategoricalFocalLoss(gamma=0.5),
            lambda: ft.categorical_focal_loss(probs, index, gamma=0.5, reduction="mean"),
            (probs, index),
        ),
    ]
    for module, functional, args in pairs:
        assert torch.equal(module(*args), functional())
        assert isinstance(module, torch.nn.Module) and "gamma=" in repr(module)
    model = torch.nn.Linear(4, 4)
    ft.SoftmaxFocalLoss(dim=1)(model(x), index).backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


# ----------------------------------------------------------------------------------------------
# the optional fused path (torch.compile) and the benchmark script


@pytest.mark.parametrize(
    "loss_fn, kernel",
    [
        (ft.sigmoid_focal_loss, kern.sigmoid_kernel),
        (ft.binary_focal_loss, kern.binary_kernel),
        (
            lambda x, y, **kw: ft.sigmoid_focal_loss_star(x, y, beta=1.5, **kw),
            lambda x, y, alpha, gamma, need_grad: kern.star_kernel(x, y, alpha, gamma, 1.5, need_grad),
        ),
    ],
    ids=["sigmoid", "binary", "star"],
)
def test_cpu_blocks_give_the_values_of_one_call(monkeypatch, loss_fn, kernel):
    """Large CPU inputs run the kernel block by block: the same values as one call, any shape and layout.

    Not always the same bits: which elements fall in PyTorch's scalar loop tails (rather than its SIMD
    loops, whose exp/log1p may differ in the last bit) depends on the block boundaries and the layout.
    """
    monkeypatch.setattr(blocks, "CPU_BLOCK", 1024)  # a multiple of every SIMD loop stride, as the default
    monkeypatch.setattr(blocks, "ELEMENTWISE_BLOCK", 1024)
    gen = torch.Generator().manual_seed(11)
    base = torch.randn(50, 97, generator=gen) * 12
    inputs = base.T  # non-contiguous (97, 50): 4850 elements, 4 full blocks and one of 754
    y = (torch.rand(97, 50, generator=gen) < 0.5).float()
    if kernel is kern.binary_kernel:
        inputs = torch.sigmoid(inputs / 4)  # probabilities short of 0 and 1, where dFL/dp is finite
    if kernel is not kern.star_kernel:  # soft labels too (FL* takes hard labels only)
        y = torch.where(torch.rand(97, 50, generator=gen) < 0.5, y, torch.rand(97, 50, generator=gen))
    gamma = 2.0 if kernel is kern.star_kernel else 1.5
    leaf = inputs.clone().requires_grad_(True)
    loss = loss_fn(leaf, y, gamma=gamma)
    loss.backward(torch.ones_like(loss))
    whole_loss, whole_grad = kernel(inputs, y, 0.25, gamma, need_grad=True)
    assert loss.shape == (97, 50)
    torch.testing.assert_close(loss.detach(), whole_loss, rtol=4e-7, atol=0)
    torch.testing.assert_close(leaf.grad, whole_grad, rtol=4e-7, atol=1e-30)
    with torch.no_grad():
        torch.testing.assert_close(loss_fn(inputs, y, gamma=gamma), whole_loss, rtol=4e-7, atol=0)
    contiguous = inputs.contiguous()  # same order and SIMD-aligned block boundaries: the same bits
    assert torch.equal(
        loss_fn(contiguous, y.contiguous(), gamma=gamma),
        kernel(contiguous, y.contiguous(), 0.25, gamma, need_grad=False)[0],
    )
    assert (
        _saved_bytes(lambda v: loss_fn(v, y, gamma=gamma, reduction="mean"), leaf, targets=y)
        == 4 * leaf.numel()
    )


def test_fused_path_matches_eager_and_keeps_the_same_tensor():
    """One compile (tens of seconds on 2 cores): same loss and gradient as eager, same 4 bytes/element."""
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(3000, generator=gen) * 8
    y = torch.where(
        torch.rand(3000, generator=gen) < 0.5, (logits > 0).float(), torch.rand(3000, generator=gen)
    )
    eager, fused = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ft.sigmoid_focal_loss(eager, y, reduction="sum").backward()
    with warnings.catch_warnings():
        # a fallback to eager would warn: the compiled kernel must run here
        warnings.filterwarnings("error", message="focal_ref.torch: fused", category=RuntimeWarning)
        loss = ft.sigmoid_focal_loss(fused, y, reduction="sum", fused=True)
    loss.backward()
    torch.testing.assert_close(loss, ft.sigmoid_focal_loss(logits, y, reduction="sum"), rtol=1e-6, atol=0)
    torch.testing.assert_close(fused.grad, eager.grad, rtol=1e-5, atol=1e-7)
    assert (
        _saved_bytes(lambda v: ft.sigmoid_focal_loss(v, y, reduction="mean", fused=True), fused, targets=y)
        == 4 * 3000
    )
    module = ft.SigmoidFocalLoss(fused=True)
    assert torch.allclose(module(logits, y), ft.sigmoid_focal_loss(logits, y, reduction="mean"), rtol=1e-6)


def test_inside_a_user_compiled_training_step():
    """A training step under torch.compile that calls the losses: same loss and gradients as eager."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    x, y = torch.randn(32, 8), (torch.rand(32, 4) > 0.5).float()
    index = torch.randint(0, 4, (32,))

    def step(x, y, index):
        logits = model(x)
        return ft.sigmoid_focal_loss(logits, y, reduction="mean") + ft.softmax_focal_loss(
            logits, index, reduction="sum"
        )

    compiled_loss = torch.compile(step)(x, y, index)
    compiled_loss.backward()
    compiled_grad = model.weight.grad.clone()
    model.zero_grad()
    eager_loss = step(x, y, index)
    eager_loss.backward()
    torch.testing.assert_close(compiled_loss.detach(), eager_loss.detach(), rtol=1e-6, atol=0)
    # the weight gradient sums 32 samples' terms: compiled code may add them in another order
    scale = float(model.weight.grad.abs().max())
    torch.testing.assert_close(compiled_grad, model.weight.grad, rtol=1e-5, atol=1e-5 * scale)


def test_fused_path_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setitem(fused_mod.COMPILED, "sigmoid", broken)
    x, y = torch.randn(50, dtype=torch.float64), torch.rand(50, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="fused=True is unavailable") as record:
        loss = ft.sigmoid_focal_loss(x, y, fused=True)
    assert record[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_allclose(loss.numpy(), ref.sigmoid_focal_loss(x.numpy(), y.numpy()), rtol=1e-13)
    assert fused_mod.COMPILED["sigmoid"] is False
    ft.sigmoid_focal_loss(x, y, fused=True)  # no second warning, no error


def _bench_torch():
    """benchmarks/bench_torch.py as a module (the benchmarks are scripts, not a package)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_torch.py"
    spec = importlib.util.spec_from_file_location("bench_torch", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_script_runs_and_measures_memory():
    bench = _bench_torch()
    lines = []
    rows = bench.run([2000], reps=1, fused=False, out=lines.append, sample_elements=1)
    kept = {
        row["implementation"]: row["kept_bytes_per_element"]
        for row in rows
        if "kept_bytes_per_element" in row
    }
    assert kept["focal_ref"] == 4 and kept["torchvision"] == 24
    assert any("focal_ref" in line for line in lines)
    (bandwidth,) = [row for row in rows if "bandwidth" in row]  # the same rows CUDA reports, here for the CPU
    assert (
        bandwidth["implementation"] == "focal_ref"
        and bandwidth["bandwidth"] > 0
        and bandwidth["copy_bandwidth"] > 0
    )
    assert bandwidth["fraction_of_copy"] == bandwidth["bandwidth"] / bandwidth["copy_bandwidth"]
    assert any("of a same-device copy" in line for line in lines)


def test_benchmark_ratios_are_paired_within_rounds(monkeypatch):
    """The benchmark's ratio is the median over rounds of the time divided by the baseline's in the same
    round, not the ratio of the two medians (which compares different rounds when the speed drifts)."""
    bench = _bench_torch()
    base = [9.0, 1.0, 4.0, 2.0, 3.0]  # round 0 warms up and is dropped
    fast = [9.0, 0.4, 2.0, 1.0, 1.8]  # per round: 0.4, 0.5, 0.5, 0.6 of the baseline
    durations = iter(d for pair in zip(base, fast, strict=True) for d in pair)
    now = [0.0]

    def call(x, y):
        now[0] += next(durations)
        return (x * 0).sum()

    monkeypatch.setattr(bench, "clock", lambda: now[0])
    x = torch.zeros(4, requires_grad=True)
    ratios: dict = {}
    medians = bench.time_interleaved({"base": call, "fast": call}, x, x, 4, 1, None, ratios, "base")
    assert medians == pytest.approx({"base": 2.5, "fast": 1.4})  # their ratio, 0.56, pairs no round
    assert ratios == pytest.approx({"base": 1.0, "fast": 0.5})


def test_from_logits_classes_equal_the_logit_classes():
    """API decision 1: BinaryFocalLoss(from_logits=True) is SigmoidFocalLoss, and
    CategoricalFocalLoss(from_logits=True) is SoftmaxFocalLoss; from_logits=False takes probabilities."""
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 5
    y = torch.rand(6, 4, generator=gen, dtype=torch.float64)
    index = torch.randint(0, 4, (6,), generator=gen)
    kw = dict(alpha=0.3, gamma=1.5, reduction="none")
    assert torch.equal(ft.BinaryFocalLoss(from_logits=True, **kw)(x, y), ft.SigmoidFocalLoss(**kw)(x, y))
    assert torch.equal(
        ft.BinaryFocalLoss(**kw)(torch.sigmoid(x), y), ft.binary_focal_loss(torch.sigmoid(x), y, **kw)
    )
    kw = dict(alpha=(0.1, 0.2, 0.3, 0.4), gamma=0.5, reduction="sum", dim=1)
    assert torch.equal(
        ft.CategoricalFocalLoss(from_logits=True, **kw)(x, index), ft.SoftmaxFocalLoss(**kw)(x, index)
    )
    probs = torch.softmax(x, 1)
    assert torch.equal(
        ft.CategoricalFocalLoss(**kw)(probs, index), ft.categorical_focal_loss(probs, index, **kw)
    )
    assert "from_logits=True" in repr(ft.BinaryFocalLoss(from_logits=True))
    with pytest.raises(TypeError):
        ft.SoftmaxFocalLoss(alpha={0.1, 0.2})


# ----------------------------------------------------------------------------------------------
# Module classes with weight, pos_weight and ignore_index (issue 13: what BCEWithLogitsLoss and kornia's
# BinaryFocalLossWithLogits take in their constructors)

_MODULE_ARGS = [
    dict(weight=torch.tensor([0.0, 1.0, 3.0, 1e6], dtype=torch.float64)),
    dict(pos_weight=torch.tensor([0.0, 2.0, 0.5, 1e6], dtype=torch.float64)),
    dict(pos_weight=3.0, ignore_index=-1),
    dict(
        weight=torch.rand(6, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
        pos_weight=torch.tensor([1.0, 2.0, 0.5, 4.0], dtype=torch.float64),
        ignore_index=-1,
    ),
    dict(ignore_index=2.5),
]


def _module_inputs(from_logits=True, seed=21):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64) * 6
    y = torch.randint(0, 2, (6, 4), generator=gen).double()
    y[torch.rand(6, 4, generator=gen) < 0.3] = -1.0  # marks: ignored (or relabelled 1 by the test)
    return x if from_logits else torch.sigmoid(x), y


@pytest.mark.parametrize("kwargs", _MODULE_ARGS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("cls", ["SigmoidFocalLoss", "BinaryFocalLoss", "BinaryFocalLoss-logits"])
def test_module_with_weight_args_equals_its_function(cls, reduction, kwargs):
    """Each class equals its function with the same arguments, in the loss and in the gradient."""
    from_logits = cls != "BinaryFocalLoss"
    x, y = _module_inputs(from_logits)
    ignore = kwargs.get("ignore_index")
    y = torch.where(y < 0, torch.tensor(-1.0 if ignore == -1 else 1.0, dtype=y.dtype), y)
    if ignore == 2.5:
        y[0, :2] = 2.5
    common = dict(alpha=0.3, gamma=1.5, reduction=reduction)
    if cls == "SigmoidFocalLoss":
        module, fn = ft.SigmoidFocalLoss(**common, **kwargs), ft.sigmoid_focal_loss
    else:
        module = ft.BinaryFocalLoss(**common, from_logits=from_logits, **kwargs)
        fn = ft.sigmoid_focal_loss if from_logits else ft.binary_focal_loss
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = module(xa, y), fn(xb, y, **common, **kwargs)
    assert torch.equal(got, want)
    got.sum().backward()
    want.sum().backward()
    assert torch.equal(xa.grad, xb.grad)
    # and the reference's number (float64)
    np_kwargs = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
    ref_fn = ref.sigmoid_focal_loss if from_logits else ref.binary_focal_loss
    expected = ref_fn(x.numpy(), y.numpy(), **common, **np_kwargs)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12, atol=1e-300)


def test_module_ignore_index_mean_counts_kept_elements_and_all_ignored_is_zero():
    x = torch.tensor([[3.0, -2.0], [0.5, 40.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    module = ft.SigmoidFocalLoss(ignore_index=-1)
    only = ft.sigmoid_focal_loss(x[:1, :1], y[:1, :1], reduction="sum")
    assert torch.equal(module(x, y), only)  # one kept element: mean = its loss
    module(x, y).backward()
    assert torch.equal(x.grad[y == -1], torch.zeros(3, dtype=torch.float64))
    everything = torch.full_like(y, -1.0)
    out = module(x, everything)
    assert out.item() == 0.0 and torch.isfinite(out)


def test_module_weight_buffers_move_with_to_and_live_in_state_dict():
    weight = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float32)
    module = ft.SigmoidFocalLoss(weight=weight, pos_weight=torch.tensor([3.0, 1.0, 0.5]), ignore_index=-1)
    assert set(module.state_dict()) == {"weight", "pos_weight"}
    assert dict(module.named_buffers())["weight"] is weight  # kept as given, as BCEWithLogitsLoss
    module = module.to(torch.float64)
    assert module.weight.dtype == torch.float64 and module.pos_weight.dtype == torch.float64
    x = torch.randn(5, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (5, 3)).double()
    expected = ref.sigmoid_focal_loss(
        x.numpy(),
        y.numpy(),
        weight=weight.double().numpy(),
        pos_weight=np.array([3.0, 1.0, 0.5]),
        ignore_index=-1,
        reduction="mean",
    )
    np.testing.assert_allclose(module(x, y).item(), expected, rtol=1e-13)
    # a fresh module built with placeholders of the right shape gets the values from the state_dict
    fresh = ft.SigmoidFocalLoss(weight=torch.ones(3), pos_weight=torch.ones(3), ignore_index=-1)
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh.weight, module.weight) and torch.equal(fresh(x, y), module(x, y))
    # without the new arguments nothing changes: no buffers in the state_dict, the same repr
    plain = ft.BinaryFocalLoss()
    assert plain.state_dict() == {} and "ignore_index" not in repr(plain)
    assert "ignore_index=-1.0" in repr(ft.BinaryFocalLoss(ignore_index=-1))
    # Python numbers and lists become tensors of the default dtype; integer tensors become floating
    assert ft.BinaryFocalLoss(pos_weight=2).pos_weight.dtype == torch.get_default_dtype()
    assert ft.BinaryFocalLoss(weight=torch.tensor([1, 2])).weight.is_floating_point()
    assert ft.BinaryFocalLoss(weight=[1.0, 2.0]).weight.shape == (2,)


@CUDA
def test_module_weight_buffers_move_to_cuda():
    module = ft.SigmoidFocalLoss(weight=torch.tensor([1.0, 2.0]), pos_weight=torch.tensor([2.0, 1.0])).to(
        "cuda"
    )
    assert module.weight.is_cuda and module.pos_weight.is_cuda
    x, y = torch.randn(3, 2, device="cuda"), torch.randint(0, 2, (3, 2), device="cuda").float()
    cpu = ft.SigmoidFocalLoss(weight=torch.tensor([1.0, 2.0]), pos_weight=torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(module(x, y).cpu(), cpu(x.cpu(), y.cpu()))


_BAD_MODULE_ARGS = [
    ("weight", ValueError, dict(weight=torch.tensor([1.0, -0.5]))),
    ("weight", ValueError, dict(weight=float("nan"))),
    ("weight", ValueError, dict(weight=torch.tensor([1.0, float("inf")]))),
    ("weight", TypeError, dict(weight=True)),
    ("weight", TypeError, dict(weight="heavy")),
    ("weight", TypeError, dict(weight=torch.tensor([True, False]))),
    ("weight", TypeError, dict(weight=torch.tensor([1.0 + 1j]))),
    ("weight", ValueError, dict(weight=torch.ones(2, requires_grad=True))),
    ("pos_weight", ValueError, dict(pos_weight=-1.0)),
    ("pos_weight", ValueError, dict(pos_weight=torch.tensor([float("nan"), 1.0]))),
    ("pos_weight", TypeError, dict(pos_weight=object())),
    ("pos_weight", TypeError, dict(pos_weight=torch.tensor(1j))),
    ("ignore_index", ValueError, dict(ignore_index=0.5)),
    ("ignore_index", ValueError, dict(ignore_index=1)),
    ("ignore_index", ValueError, dict(ignore_index=float("-inf"))),
    ("ignore_index", TypeError, dict(ignore_index=True)),
    ("ignore_index", TypeError, dict(ignore_index="-1")),
    ("ignore_index", TypeError, dict(ignore_index=torch.tensor(-1.0))),
]


@pytest.mark.parametrize("cls", [ft.SigmoidFocalLoss, ft.BinaryFocalLoss])
@pytest.mark.parametrize("name, error, kwargs", _BAD_MODULE_ARGS)
def test_module_bad_weight_args_raise_naming_the_argument(cls, name, error, kwargs):
    with pytest.raises(error, match=name):
        cls(**kwargs)


def test_module_weight_of_the_wrong_shape_raises_at_the_call():
    module = ft.SigmoidFocalLoss(weight=torch.ones(3))
    with pytest.raises(ValueError, match="weight"):
        module(torch.zeros(2, 4), torch.zeros(2, 4))
    module = ft.BinaryFocalLoss(pos_weight=torch.ones(5))
    with pytest.raises(ValueError, match="pos_weight"):
        module(torch.full((2, 4), 0.5), torch.zeros(2, 4))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("shape", [(6, 4), (2, 4, 3, 5)])
def test_module_agrees_with_kornia_binary_focal_loss_class(shape, reduction):
    """kornia's BinaryFocalLossWithLogits(alpha, gamma, reduction, pos_weight, weight, ignore_index) and
    focal_ref's class on hard labels: kornia's (C,) weights act along dim 1, focal_ref's broadcast from the
    right, so a (C, H, W) map gets (C, 1, 1). kornia's mean keeps ignored elements in its count; focal_ref's
    leaves them out (N_kept / N times kornia's)."""
    kornia_losses = pytest.importorskip("kornia.losses")
    gen = torch.Generator().manual_seed(8)
    num_classes = shape[1]
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 4
    y = torch.randint(0, 2, shape, generator=gen).double()
    y[torch.rand(shape, generator=gen) < 0.25] = -1.0
    weight = torch.rand(num_classes, generator=gen, dtype=torch.float64) * 3
    pos_weight = torch.rand(num_classes, generator=gen, dtype=torch.float64) * 5
    trailing = (num_classes,) + (1,) * (len(shape) - 2)
    for alpha, gamma in ((0.25, 2.0), (None, 0.5), (0.7, 0.0)):
        theirs = kornia_losses.BinaryFocalLossWithLogits(
            alpha, gamma, reduction, pos_weight=pos_weight, weight=weight, ignore_index=-1
        )
        ours = ft.SigmoidFocalLoss(
            alpha,
            gamma,
            reduction,
            weight=weight.view(trailing),
            pos_weight=pos_weight.view(trailing),
            ignore_index=-1,
        )
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        got, want = ours(xa, y), theirs(xb, y)
        if reduction == "mean":
            want = want * y.numel() / (y != -1).sum()
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-300)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("from_logits", [True, False])
def test_module_weight_args_search_against_the_reference(from_logits):
    """Hypothesis over the hard regions: saturated logits (where the plain formula loses p near 1), gamma
    below 1, weights with zeros and large values broadcast as (C,), (N, 1) or (N, C), pos_weight 0 or large,
    ignored elements anywhere (whole rows, everything). The class must give the float64 reference."""
    from hypothesis import given
    from hypothesis import strategies as st

    def _weights(draw, n, c, large):
        shape = draw(st.sampled_from([(c,), (n, 1), (n, c), ()]))
        values = draw(
            st.lists(
                st.sampled_from([0.0, 0.5, 1.0, 3.0, large]),
                min_size=int(np.prod(shape, dtype=int)),
                max_size=int(np.prod(shape, dtype=int)),
            )
        )
        return np.array(values, dtype=np.float64).reshape(shape)

    @st.composite
    def case(draw):
        n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        magnitude = draw(st.sampled_from([1.0, 20.0, 80.0, 700.0]))
        x = (
            np.array(draw(st.lists(st.floats(-1, 1), min_size=n * c, max_size=n * c))).reshape(n, c)
            * magnitude
        )
        y = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, -1.0]), min_size=n * c, max_size=n * c)))
        kwargs = {}
        if draw(st.booleans()):
            kwargs["weight"] = _weights(draw, n, c, 1e6)
        if draw(st.booleans()):
            kwargs["pos_weight"] = _weights(draw, n, c, 1e3)
        ignore = draw(st.booleans())
        if ignore:
            kwargs["ignore_index"] = -1
        y = y.reshape(n, c) if ignore else np.abs(y).reshape(n, c)
        gamma = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 5.0]))
        alpha = draw(st.sampled_from([None, 0.25, 1.0]))
        return x, y, alpha, gamma, kwargs

    @given(case(), st.sampled_from(["none", "sum", "mean"]))
    def check(drawn, reduction):
        x, y, alpha, gamma, kwargs = drawn
        module_kwargs = {
            k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()
        }
        module = ft.BinaryFocalLoss(alpha, gamma, reduction, from_logits=from_logits, **module_kwargs)
        inputs = x if from_logits else 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))  # probs away from 0 and 1
        tensor = torch.tensor(inputs, dtype=torch.float64, requires_grad=True)
        got = module(tensor, torch.from_numpy(y))
        ref_fn = ref.sigmoid_focal_loss if from_logits else ref.binary_focal_loss
        want = np.asarray(ref_fn(inputs, y, alpha=alpha, gamma=gamma, reduction=reduction, **kwargs))
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-300)
        if from_logits:
            (grad,) = torch.autograd.grad(got.sum(), tensor)
            want_grad = ref.sigmoid_focal_loss_grad(x, y, alpha=alpha, gamma=gamma, **kwargs)
            if reduction == "mean":
                want_grad = want_grad / max(int((y != -1).sum()) if "ignore_index" in kwargs else y.size, 1)
            assert np.all(np.isfinite(grad.numpy()))
            np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-11, atol=1e-300)

    check()
