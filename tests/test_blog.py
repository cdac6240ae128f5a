"""focal_ref.blog: each rebuilt blog implementation reproduces its published behaviour, faults included."""

import math

import numpy as np
import pytest
import torch

import focal_ref
from focal_ref.blog import torch_blog, torch_blog_multiclass

CAP = math.log(1e4)  # -log(1e-4) = 9.2103...
HAS_CUDA = torch.cuda.is_available()
cpu_only = pytest.mark.skipif(HAS_CUDA, reason="CUDA is available here: the hard-coded .cuda() works")
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


def t64(values):
    return torch.tensor(values, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# Keras closure


@pytest.fixture(scope="module")
def keras_blog():
    from focal_ref.blog import keras_blog

    return keras_blog


def _np(value):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def test_keras_published_closure_returns_none(keras_blog):
    loss = keras_blog.focal_loss(gamma=3, alpha=0.5)  # the post's compile() call
    assert loss(np.array([1.0, 0.0]), np.array([0.9, 0.2])) is None


def test_keras_returning_closure_is_the_formula_with_eps(keras_blog):
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.2, 0.3, 0.6])
    got = _np(keras_blog.focal_loss_returning()(y, p))  # defaults alpha=0.75, gamma=2
    p_t = y * p + (1 - y) * (1 - p) + 1e-7
    alpha_t = 0.75 * y + 0.25 * (1 - y)
    np.testing.assert_allclose(got, -alpha_t * (1 - p_t) ** 2 * np.log(p_t), rtol=1e-12)
    # and, away from the eps, the reference's probability-input loss with the same alpha
    np.testing.assert_allclose(got, focal_ref.binary_focal_loss(p, y, alpha=0.75), rtol=1e-5)


def test_keras_nan_at_gamma_half_when_p_is_one(keras_blog):
    fn = keras_blog.focal_loss_returning(gamma=0.5)
    got = _np(fn(np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.5])))
    assert np.isnan(got[0]) and np.isnan(got[1])  # p_t + eps = 1 + 1e-7 > 1: (negative) ** 0.5
    assert np.isfinite(got[2])
    assert focal_ref.binary_focal_loss([1.0, 0.0], [1.0, 0.0], gamma=0.5).tolist() == [0.0, 0.0]


def test_keras_eps_gives_negative_loss_and_caps_hard_examples(keras_blog):
    fn = keras_blog.focal_loss_returning(alpha=0.5, gamma=2.0)
    easy, hard = _np(fn(np.array([1.0, 1.0]), np.array([1.0, 0.0])))
    assert easy < 0.0  # -alpha * (1e-7)^2 * log(1 + 1e-7)
    assert easy == pytest.approx(-0.5 * 1e-14 * math.log1p(1e-7), rel=1e-6)
    assert hard == pytest.approx(-0.5 * (1 - 1e-7) ** 2 * math.log(1e-7), rel=1e-12)  # 8.06, not +inf


def test_alpha_default_flips_between_keras_and_pytorch(keras_blog):
    y, p = np.array([1.0]), np.array([0.5])
    keras_loss = _np(keras_blog.focal_loss_returning(gamma=0.0)(y, p))[0]
    torch_loss = torch_blog.FocalLoss(gamma=0, device="cpu")(t64([0.5]), t64([1.0])).item()
    assert keras_loss == pytest.approx(0.75 * -math.log(0.5 + 1e-7), rel=1e-12)
    assert torch_loss == pytest.approx(0.25 * math.log(2.0), rel=1e-7)
    assert keras_loss / torch_loss == pytest.approx(3.0, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# PyTorch binary FocalLoss


@cpu_only
def test_hard_coded_cuda_raises_without_cuda():
    with pytest.raises((AssertionError, RuntimeError), match="CUDA|NVIDIA|cuda"):
        torch_blog.FocalLoss()  # torch.tensor(alpha).cuda() in __init__
    criterion = torch_blog.FocalLoss_MultiLabel()  # builds its FocalLoss (and .cuda()) only in forward
    with pytest.raises((AssertionError, RuntimeError), match="CUDA|NVIDIA|cuda"):
        criterion(torch.full((2, 3), 0.5), torch.ones(2, 3))


@needs_cuda
def test_hard_coded_cuda_works_on_a_gpu_and_matches_cpu():
    pred, target = torch.tensor([0.2, 0.7, 0.9]), torch.tensor([0.0, 1.0, 0.0])
    on_gpu = torch_blog.FocalLoss()(pred.cuda(), target.cuda())
    assert on_gpu.device.type == "cuda"
    assert on_gpu.item() == pytest.approx(torch_blog.FocalLoss(device="cpu")(pred, target).item(), rel=1e-6)


def test_binary_loss_matches_reference_inside_the_clamp():
    pred = t64([0.01, 0.3, 0.5, 0.8, 0.99, 0.6])
    target = t64([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    for size_average, reduction in ((True, "mean"), (False, "sum")):
        got = torch_blog.FocalLoss(alpha=0.25, gamma=2, size_average=size_average, device="cpu")(pred, target)
        want = focal_ref.binary_focal_loss(
            pred.numpy(), target.numpy(), alpha=0.25, gamma=2.0, reduction=reduction
        )
        assert got.item() == pytest.approx(want, rel=1e-6)  # alpha and 1 - alpha are float32 in the blog


def test_binary_loss_is_capped_at_minus_log_1e4():
    loss = torch_blog.FocalLoss(alpha=0.5, gamma=0, device="cpu")
    for p_wrong in (1e-5, 1e-30, 0.0):
        # a positive predicted at p, a negative predicted at 1 - p: both have p_t = p < 1e-4
        assert loss(t64([p_wrong]), t64([1.0])).item() == pytest.approx(0.5 * CAP, rel=1e-12)
        assert loss(t64([1.0 - p_wrong]), t64([0.0])).item() == pytest.approx(0.5 * CAP, rel=1e-6)
    assert CAP == pytest.approx(9.2103, abs=1e-4)
    at_1e_30 = focal_ref.binary_focal_loss([1e-30], [1.0], alpha=0.5, gamma=0.0)[0]
    assert at_1e_30 == pytest.approx(0.5 * 30 * math.log(10))


def test_binary_gradient_is_exactly_zero_below_the_clamp():
    pred = t64([1e-5, 1.0 - 1e-5, 2e-4, 0.5]).requires_grad_(True)
    target = t64([1.0, 0.0, 1.0, 1.0])
    torch_blog.FocalLoss(gamma=2, device="cpu", size_average=False)(pred, target).backward()
    assert pred.grad[0].item() == 0.0 and pred.grad[1].item() == 0.0  # the hardest examples: no signal
    assert pred.grad[2].item() < -100.0 and pred.grad[3].item() < 0.0  # just above the clamp: a steep one


def test_binary_view_rejects_non_contiguous_input():
    pred = torch.rand(3, 4, dtype=torch.float64).t()
    target = torch.ones(4, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="view"):
        torch_blog.FocalLoss(device="cpu")(pred, target)
    assert torch_blog.FocalLoss(device="cpu")(pred.contiguous(), target).ndim == 0


def test_multilabel_loop_equals_one_vectorized_call():
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(16, 5, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    target = (torch.rand(16, 5, generator=gen) < 0.3).double()
    mean = torch_blog.FocalLoss_MultiLabel(device="cpu")(pred, target)
    total = torch_blog.FocalLoss_MultiLabel(size_average=False, device="cpu")(pred, target)
    ref = focal_ref.binary_focal_loss(pred.numpy(), target.numpy(), alpha=0.25, gamma=2.0)
    assert mean.item() == pytest.approx(ref.mean(), rel=1e-6)
    assert total.item() == pytest.approx(ref.sum(), rel=1e-6)
    assert mean.dtype == torch.float32  # the per-label results go into a float32 zeros(1, L) buffer


# ----------------------------------------------------------------------------------------------
# PyTorch multi-class CELoss and FocalLoss


LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [1.0, -2.0, 0.5]])
LABELS = torch.tensor([0, 2, 1, 1])


@cpu_only
def test_multiclass_cuda_raises_in_forward_without_cuda():
    ce = torch_blog_multiclass.CELoss(3)  # without use_alpha nothing is placed in __init__
    with pytest.raises((AssertionError, RuntimeError), match="CUDA|NVIDIA|cuda"):
        ce(LOGITS, LABELS)
    with pytest.raises((AssertionError, RuntimeError), match="CUDA|NVIDIA|cuda"):
        torch_blog_multiclass.FocalLoss(3, alpha=[0.2, 0.3, 0.5], use_alpha=True)


@needs_cuda
def test_multiclass_cuda_works_on_a_gpu():
    got = torch_blog_multiclass.FocalLoss(3)(LOGITS.cuda(), LABELS.cuda())
    want = torch_blog_multiclass.FocalLoss(3, device="cpu")(LOGITS, LABELS)
    assert got.device.type == "cuda" and got.item() == pytest.approx(want.item(), rel=1e-6)


def test_multiclass_matches_reference_inside_the_clamp_and_is_float64():
    alpha = [0.2, 0.3, 0.5]
    for cls, gamma in ((torch_blog_multiclass.FocalLoss, 2.0), (torch_blog_multiclass.CELoss, 0.0)):
        kwargs = {} if cls is torch_blog_multiclass.CELoss else {"gamma": 2}
        plain = cls(3, device="cpu", **kwargs)(LOGITS, LABELS)
        weighted = cls(3, alpha=alpha, use_alpha=True, device="cpu", **kwargs)(LOGITS, LABELS)
        assert plain.dtype == weighted.dtype == torch.float64  # from float32 logits
        x, t = LOGITS.numpy(), LABELS.numpy()
        want = focal_ref.softmax_focal_loss(x, t, gamma=gamma, reduction="mean")
        assert plain.item() == pytest.approx(want, rel=1e-6)
        assert weighted.item() == pytest.approx(
            focal_ref.softmax_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="mean"), rel=1e-6
        )


def test_multiclass_use_alpha_requires_alpha():
    with pytest.raises(RuntimeError, match="Could not infer dtype of NoneType"):
        torch_blog_multiclass.FocalLoss(3, use_alpha=True, device="cpu")
    ignored = torch_blog_multiclass.FocalLoss(3, alpha=[9.0, 9.0, 9.0], device="cpu")(LOGITS, LABELS)
    assert ignored.item() == torch_blog_multiclass.FocalLoss(3, device="cpu")(LOGITS, LABELS).item()


def test_multiclass_clamp_caps_loss_and_zeroes_gradient():
    x = torch.tensor([[0.0, 20.0, 0.0], [0.0, 40.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    t = torch.tensor([0, 0, 0])
    ce = torch_blog_multiclass.CELoss(3, size_average=False, device="cpu")
    per_sample = [ce(x[i : i + 1], t[i : i + 1]).item() for i in range(3)]
    assert per_sample[0] == per_sample[1] == pytest.approx(CAP, rel=1e-6)  # the true values: 20 and 40
    true_values = focal_ref.softmax_focal_loss(x.detach().numpy(), t.numpy(), gamma=0.0)[:2]
    assert true_values == pytest.approx([20.0, 40.0], rel=1e-7)
    fl = torch_blog_multiclass.FocalLoss(3, gamma=2, size_average=False, device="cpu")
    assert fl(x[:1], t[:1]).item() == pytest.approx((1 - 1e-4) ** 2 * CAP, rel=1e-6)
    fl(x, t).backward()
    assert torch.all(x.grad[:2] == 0.0)  # the two hardest samples give no gradient at all
    assert torch.all(x.grad[2] != 0.0)


def test_multiclass_view_mixes_channels_and_pixels_on_nchw():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 2, 2, generator=gen, dtype=torch.float64)  # (N, C, H, W)
    t = torch.randint(0, 3, (2, 2, 2), generator=gen)  # (N, H, W)
    loss = torch_blog_multiclass.FocalLoss(3, gamma=2, device="cpu")
    with pytest.raises(RuntimeError):
        loss(x, t)  # target (N, H, W) does not fit the (N, C) one-hot built from target.size(0)
    got = loss(x, t.reshape(-1)).item()  # flattening the target makes it run...
    right = focal_ref.softmax_focal_loss(x.numpy(), t.numpy(), axis=1, reduction="mean")
    assert abs(got - right) > 0.05 * right  # ...to a different number: rows of view(-1, C) are not pixels
    mixed = focal_ref.softmax_focal_loss(x.numpy().reshape(-1, 3), t.numpy().reshape(-1), reduction="mean")
    assert got == pytest.approx(mixed, rel=1e-12)  # what it computes: C consecutive values of one channel


def test_importing_the_blog_package_imports_no_framework():
    import subprocess
    import sys

    code = "import sys, focal_ref.blog; print('torch' in sys.modules, 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


ALPHA3 = [0.2, 0.3, 0.5]


@pytest.mark.parametrize(
    "build",
    [
        lambda device: torch_blog.FocalLoss(device=device),
        lambda device: torch_blog_multiclass.FocalLoss(3, alpha=ALPHA3, use_alpha=True, device=device),
        lambda device: torch_blog_multiclass.CELoss(3, alpha=ALPHA3, use_alpha=True, device=device),
    ],
)
def test_device_none_calls_cuda_as_published_and_a_device_replaces_it(build, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: calls.append(1) or self)
    build(None)
    published = len(calls)
    build("cpu")
    assert len(calls) == published  # device="cpu": no .cuda() call at all
    if published == 0:  # the constructor places nothing without an alpha tensor: the forward pass does
        pytest.fail("the published constructor should place its alpha tensor with .cuda()")
