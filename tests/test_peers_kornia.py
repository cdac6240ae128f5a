"""kornia 0.9.0 against the reference: ``binary_focal_loss_with_logits``, ``focal_loss`` (``kornia.losses``).

Where the conventions meet, and where they differ (read from the installed source,
kornia/losses/focal.py, and its docstrings):

binary_focal_loss_with_logits(pred, target, alpha=0.25, gamma=2.0, reduction="none", pos_weight=None,
weight=None, ignore_index=-100)
  * alpha weights the positive term and 1 - alpha the negative one, alpha=None weights both by 1: our
    convention, so alpha passes unchanged.
  * pred must have at least two dimensions (B, C, *): the battery's 1-d logits are passed as (N, 1).
  * Hard labels agree. Soft labels do NOT: kornia gives each CE term its own modulating factor,
    t alpha (1-p)^gamma (-log p) + (1-t)(1-alpha) p^gamma (-log(1-p)), while the reference (torchvision,
    Keras, DESIGN.md) multiplies the whole CE by (1-p_t)^gamma with p_t = p t + (1-p)(1-t). Kornia's soft
    loss is therefore t FL(x, 1) + (1-t) FL(x, 0) of the reference, which a test below asserts.
  * reductions: "mean" over every element and "sum", as in the reference.
  * numerics: log-sigmoid and exp(gamma log sigma(-x)), both accurate in float64; measured agreement
    about 1e-14, asserted at 1e-12 (losses) and 1e-12 relative (gradients, torch autograd).

focal_loss(pred, target, alpha, gamma=2.0, reduction="none", weight=None, ignore_index=-100) (softmax)
  * alpha is NOT per class in our sense: kornia weighs class 0 (the "background") by 1 - alpha and every
    other class by alpha. The reference's equivalent is the per-class alpha [1 - alpha, alpha, ..., alpha];
    alpha=None is None in both.
  * reduction "none" returns a (B, C, *) map with the loss in the target's slice and 0 elsewhere: the
    reference's per-sample loss is that map summed over dim 1.
  * reduction "mean" divides by every element of that map, B * C * (spatial size): it is the reference's
    mean divided by C. "sum" agrees.
  * ignore_index (default -100): an ignored sample gives 0, as in the reference, but stays in kornia's
    "mean" denominator, where the reference leaves it out: kornia_mean = reference_sum / (C * all samples).
  * numerics: kornia computes log p = log_softmax(x) and then 1 - p as 1 - exp(log p). When p_t -> 1 both
    lose relative accuracy: log p_t = -log(1 + s) with s = sum_{c != t} e^{x_c - x_t} is evaluated as
    log of a rounded 1 + s (absolute error about eps), and 1 - exp(log p_t) cancels. Its relative error is
    therefore about (gamma + 1) eps / (1 - p_t), which the tests allow (times 4, plus 1e-13): 1e-12 or
    better while 1 - p_t >= 1e-2, and no accuracy at all once 1 - p_t < eps (kornia then returns exactly 0,
    asserted below, where the reference returns the true, tiny loss). The reference itself is checked
    against mpmath in tests/test_reference.py.
"""

import numpy as np
import pytest
import torch
from cases import GAMMAS, sigmoid_cases, softmax_cases
from kornia import losses as kornia_losses

import focal_ref

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
ALPHAS = (None, 0.0, 0.25, 0.75, 1.0)


def assert_close(actual, desired, rtol, scale=None):
    """|actual - desired| <= rtol * max(scale, TINY) elementwise (scale defaults to |desired|)."""
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape
    scale = np.abs(desired) if scale is None else scale
    error = np.abs(actual - desired) / np.maximum(scale, TINY)
    bad = ~(error <= rtol)
    assert not bad.any(), f"{int(bad.sum())} values off (worst {np.nanmax(error):.3g} > {np.max(rtol):.3g})"


def _hard_sigmoid_cases():
    logits, targets = sigmoid_cases()
    hard = np.isin(targets, (0.0, 1.0))
    return logits[hard], targets[hard]


def _kornia_binary(x, y, alpha, gamma, reduction="none", requires_grad=False):
    pred = torch.tensor(x, dtype=torch.float64).reshape(-1, 1).requires_grad_(requires_grad)
    target = torch.tensor(y, dtype=torch.float64).reshape(-1, 1)
    loss = kornia_losses.binary_focal_loss_with_logits
    out = loss(pred, target, alpha=alpha, gamma=gamma, reduction=reduction)
    return pred, out


def _class_alpha(alpha, num_classes):
    """kornia's softmax alpha (1 - alpha for class 0, alpha for the others) as per-class weights."""
    return None if alpha is None else [1.0 - alpha] + [alpha] * (num_classes - 1)


def _one_minus_p_t(logits, index):
    """1 - p_t from the reference's CE (gamma = 0): -expm1(-CE), accurate as p_t -> 1."""
    return -np.expm1(-focal_ref.softmax_focal_loss(logits, index, alpha=None, gamma=0.0))


def _kornia_softmax_rtol(logits, index, gamma):
    """kornia's relative error: about (gamma + 1) eps / (1 - p_t) (see the module docstring), capped at 1
    (kornia's 0 for a positive loss) where 1 - p_t is so small that no digit is left."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.minimum(1e-13 + 4.0 * (gamma + 1.0) * EPS / _one_minus_p_t(logits, index), 1.0)


# ----------------------------------------------------------------------------------------------
# binary_focal_loss_with_logits


@pytest.mark.parametrize("gamma", GAMMAS + (0.1,))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_binary_matches_reference_on_hard_labels(gamma, alpha):
    x, y = _hard_sigmoid_cases()
    _, out = _kornia_binary(x, y, alpha, gamma)
    want = focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma)
    assert_close(out.detach().numpy()[:, 0], want, 1e-12)


@pytest.mark.parametrize("gamma", GAMMAS + (0.1,))
@pytest.mark.parametrize("alpha", (None, 0.25))
def test_binary_gradient_matches_reference(gamma, alpha):
    """torch autograd through kornia's loss against the reference's gradient (gamma < 1 included)."""
    x, y = _hard_sigmoid_cases()
    pred, out = _kornia_binary(x, y, alpha, gamma, requires_grad=True)
    out.sum().backward()
    grad = pred.grad.numpy()[:, 0]
    assert np.all(np.isfinite(grad))
    assert_close(grad, focal_ref.sigmoid_focal_loss_grad(x, y, alpha=alpha, gamma=gamma), 1e-12)


@pytest.mark.parametrize("reduction", ("mean", "sum"))
def test_binary_reductions(reduction):
    x, y = _hard_sigmoid_cases()
    _, out = _kornia_binary(x, y, 0.25, 2.0, reduction=reduction)
    want = focal_ref.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction=reduction)
    assert_close(out.item(), want, 1e-13)


@pytest.mark.parametrize("gamma", (0.5, 2.0))
def test_binary_soft_labels_differ_as_documented(gamma):
    """kornia's soft-label loss is t FL(x, 1) + (1-t) FL(x, 0) of the reference, not FL(x, t)."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 3.0, 50)
    t = rng.uniform(0.05, 0.95, 50)
    _, out = _kornia_binary(x, t, 0.25, gamma)
    kornia = out.detach().numpy()[:, 0]
    per_term = t * focal_ref.sigmoid_focal_loss(x, np.ones_like(x), gamma=gamma) + (
        1 - t
    ) * focal_ref.sigmoid_focal_loss(x, np.zeros_like(x), gamma=gamma)
    assert_close(kornia, per_term, 1e-12)
    reference = focal_ref.sigmoid_focal_loss(x, t, gamma=gamma)
    assert np.all(np.abs(kornia - reference) > 1e-3 * reference)  # a different loss, not rounding


# ----------------------------------------------------------------------------------------------
# focal_loss (softmax, integer labels)


def _kornia_softmax(logits, index, alpha, gamma, reduction="none", requires_grad=False, **kwargs):
    pred = torch.tensor(logits, dtype=torch.float64).requires_grad_(requires_grad)
    target = torch.tensor(index, dtype=torch.int64)
    out = kornia_losses.focal_loss(pred, target, alpha=alpha, gamma=gamma, reduction=reduction, **kwargs)
    return pred, out


@pytest.mark.parametrize("gamma", GAMMAS + (0.1,))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_softmax_matches_reference(gamma, alpha):
    """Per sample: kornia's (B, C) map summed over classes; 1e-12 where 1 - p_t is not small (module doc)."""
    logits, index, _ = softmax_cases()
    _, out = _kornia_softmax(logits, index, alpha, gamma)
    kornia = out.detach().numpy()
    assert kornia.shape == logits.shape
    off_target = np.arange(logits.shape[1]) != index[:, None]
    assert np.all(kornia[off_target] == 0.0)
    weights = _class_alpha(alpha, logits.shape[1])
    reference = focal_ref.softmax_focal_loss(logits, index, alpha=weights, gamma=gamma)
    rtol = _kornia_softmax_rtol(logits, index, gamma)
    assert_close(kornia.sum(axis=1), reference, rtol)
    assert np.sum(rtol <= 1e-12) >= 90  # most of the battery is held to 1e-12


@pytest.mark.parametrize("gamma", GAMMAS + (0.1,))
@pytest.mark.parametrize("alpha", (None, 0.25))
def test_softmax_gradient_matches_reference(gamma, alpha):
    """torch autograd through kornia against the reference's gradient, relative to the row's largest entry."""
    logits, index, _ = softmax_cases()
    pred, out = _kornia_softmax(logits, index, alpha, gamma, requires_grad=True)
    out.sum().backward()
    grad = pred.grad.numpy()
    assert np.all(np.isfinite(grad))
    weights = _class_alpha(alpha, logits.shape[1])
    reference = focal_ref.softmax_focal_loss_grad(logits, index, alpha=weights, gamma=gamma)
    scale = np.abs(reference).max(axis=1, keepdims=True)
    rtol = _kornia_softmax_rtol(logits, index, gamma)[:, None]
    assert_close(grad, reference, rtol, scale)


def test_softmax_reductions_and_ignore_index():
    """'sum' agrees; kornia's 'mean' is the reference's sum over C * (all samples, ignored ones included)."""
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 2.0, (40, 4))
    index = rng.integers(0, 4, 40)
    ref_alpha = _class_alpha(0.25, 4)
    kwargs = dict(alpha=0.25, gamma=2.0)
    ref_sum = focal_ref.softmax_focal_loss(logits, index, alpha=ref_alpha, gamma=2.0, reduction="sum")
    assert_close(_kornia_softmax(logits, index, reduction="sum", **kwargs)[1].item(), ref_sum, 1e-13)
    ref_mean = focal_ref.softmax_focal_loss(logits, index, alpha=ref_alpha, gamma=2.0, reduction="mean")
    assert_close(_kornia_softmax(logits, index, reduction="mean", **kwargs)[1].item(), ref_mean / 4, 1e-13)

    ignored = index.copy()
    ignored[::3] = -100
    ref_sum = focal_ref.softmax_focal_loss(
        logits, ignored, alpha=ref_alpha, gamma=2.0, reduction="sum", ignore_index=-100
    )
    ref_mean = focal_ref.softmax_focal_loss(
        logits, ignored, alpha=ref_alpha, gamma=2.0, reduction="mean", ignore_index=-100
    )
    kept = int(np.sum(ignored != -100))
    assert_close(ref_mean, ref_sum / kept, 1e-15)
    k_sum = _kornia_softmax(logits, ignored, reduction="sum", ignore_index=-100, **kwargs)[1].item()
    k_mean = _kornia_softmax(logits, ignored, reduction="mean", ignore_index=-100, **kwargs)[1].item()
    assert_close(k_sum, ref_sum, 1e-13)
    assert_close(k_mean, ref_sum / (4 * len(ignored)), 1e-13)  # ignored samples stay in kornia's denominator
    assert kept < len(ignored)


@pytest.mark.parametrize("big", (40.0, 100.0, 745.0))
def test_softmax_saturated_rows_kornia_returns_zero(big):
    """The documented numerical difference: once 1 - p_t < eps, kornia's log_softmax gives log p_t = 0 and
    the loss 0; the reference keeps the true value, (1 - p_t)^gamma (-log p_t) ~ (4 e^-big)^(gamma + 1)."""
    logits = np.array([[big, 0.0, 0.0, 0.0, 0.0]])
    index = np.array([0])
    kornia = _kornia_softmax(logits, index, None, 1.0)[1].detach().numpy().sum()
    reference = focal_ref.softmax_focal_loss(logits, index, alpha=None, gamma=1.0)[0]
    assert kornia == 0.0
    true = (4.0 * np.exp(-big)) ** 2  # log1p(s) = s to far below eps at these sizes
    if true > TINY:
        assert_close(reference, true, 1e-14)
    else:
        assert reference == pytest.approx(true, abs=TINY * 1e-12)
