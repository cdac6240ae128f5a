"""focal_ref.testing's argument regions (weight, pos_weight, ignore_index): passes, planted faults, skips.

Kept apart from tests/test_testing.py (already past the ~400-line guide). Every planted fault is a correct
log-space torch loss with ONE thing changed; the correct one passes all three regions, so each fault fails
because of its change, in the region named after the argument.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import focal_ref
from focal_ref.testing import REGIONS, SOFT, adapters, check_sigmoid_focal_loss, check_softmax_focal_loss
from focal_ref.testing.arguments import accepts, argument_battery
from focal_ref.testing.frameworks import NotSupported
from focal_ref.testing.regions import ARGUMENT_REGIONS, IGNORE_INDEX, POS_WEIGHT, SIGMOID_REGIONS, WEIGHT


def _fl(x, y, *, alpha, gamma, weight=None, pos_weight=None):
    """w alpha_t m^gamma [w+ y softplus(-x) + (1-y) softplus(x)], m = 1 - p_t without cancellation."""
    pw = 1.0 if pos_weight is None else pos_weight
    ce = pw * y * F.softplus(-x) + (1.0 - y) * F.softplus(x)
    m = y * torch.sigmoid(-x) + (1.0 - y) * torch.sigmoid(x)
    alpha_t = 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)
    # m**gamma kept away from m = 0 (sigmoid(-100) is 0 in float32): no inf * 0 gradient there
    positive = m != 0
    factor = torch.where(positive, torch.where(positive, m, 1.0) ** gamma, 0.0**gamma)
    loss = alpha_t * factor * ce
    return loss if weight is None else loss * weight


def _keep(y, ignore_index):
    return torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index


def _reduce(loss, reduction, count):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / count


def good(x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None):
    """Correct: ignored targets replaced by 0 before the loss, the loss masked, mean over the kept count."""
    keep = _keep(y, ignore_index)
    kept = torch.where(keep, y, 0.0)
    loss = torch.where(
        keep, _fl(x, kept, alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight), 0.0
    )
    return _reduce(loss, reduction, keep.sum().clamp(min=1))


def ignores_weight(x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None):
    """Takes ``weight`` and drops it."""
    kw = dict(pos_weight=pos_weight, ignore_index=ignore_index)
    return good(x, y, alpha=alpha, gamma=gamma, reduction=reduction, **kw)


def mean_over_weight_sum(
    x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None
):
    """The mean divided by the sum of the weights instead of the number of elements."""
    kw = dict(alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight, ignore_index=ignore_index)
    if reduction != "mean" or weight is None:
        return good(x, y, reduction=reduction, **kw)
    kept_weight = torch.where(_keep(y, ignore_index), torch.broadcast_to(weight, x.shape), 0.0)
    return good(x, y, reduction="sum", **kw) / kept_weight.sum()


def counts_ignored_in_mean(
    x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None
):
    """Ignored elements give 0 but stay in the mean's denominator."""
    kw = dict(alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight, ignore_index=ignore_index)
    if reduction != "mean":
        return good(x, y, reduction=reduction, **kw)
    return good(x, y, reduction="sum", **kw) / x.numel()


def pos_weight_on_whole_ce(
    x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None
):
    """pos_weight multiplies the whole CE (negatives too), not its positive term."""
    loss = good(x, y, alpha=alpha, gamma=gamma, weight=weight, ignore_index=ignore_index)
    if pos_weight is not None:
        loss = loss * pos_weight
    return _reduce(loss, reduction, _keep(y, ignore_index).sum().clamp(min=1))


def nan_mean_when_all_ignored(
    x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None
):
    """sum / count without the count = 0 case: 0 / 0 = NaN when every element is ignored."""
    kw = dict(alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight, ignore_index=ignore_index)
    if reduction != "mean":
        return good(x, y, reduction=reduction, **kw)
    return good(x, y, reduction="sum", **kw) / _keep(y, ignore_index).sum()


def masked_after_computing(
    x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None
):
    """The loss of the raw targets (-1 included), masked afterwards: right values, but m < 0 at an ignored
    element makes m**gamma NaN for gamma < 1, and where()'s zero gradient times that NaN is NaN."""
    keep = _keep(y, ignore_index)
    loss = _fl(x, y, alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight)
    return _reduce(torch.where(keep, loss, 0.0), reduction, keep.sum().clamp(min=1))


def gradient_leaks_at_ignored(
    x, y, *, alpha, gamma, reduction="none", weight=None, pos_weight=None, ignore_index=None
):
    """Value 0 at ignored elements, but their loss's gradient still flows (a detach on the wrong term)."""
    keep = _keep(y, ignore_index)
    full = _fl(x, torch.where(keep, y, 0.0), alpha=alpha, gamma=gamma, weight=weight, pos_weight=pos_weight)
    loss = torch.where(keep, full, full - full.detach())
    return _reduce(loss, reduction, keep.sum().clamp(min=1))


def _check(fn, **kwargs):
    return check_sigmoid_focal_loss(fn, framework="torch", regions=ARGUMENT_REGIONS, **kwargs)


# ----------------------------------------------------------------------------------------------
# correct implementations pass


def test_the_argument_regions_are_opt_in_and_sigmoid_only():
    default = check_sigmoid_focal_loss(focal_ref.sigmoid_focal_loss)
    assert [r.region for r in default.rows] == list(REGIONS)  # the peer audit's rows stay as they are
    with pytest.raises(ValueError, match="sigmoid check's only"):
        check_softmax_focal_loss(focal_ref.softmax_focal_loss, regions=[WEIGHT])


def test_battery_has_the_hard_inputs():
    battery = argument_battery(0, (0.25, 0.75), (0.0, 1.0, 2.0, 5.0), "float32")
    weights = [np.asarray(c.kwargs["weight"]) for c in battery[WEIGHT]]
    assert {w.shape for w in weights} == {(9, 4), (4,), (9, 1)}
    assert all(w.min() == 0.0 and w.max() == 1e6 for w in weights)
    pos = [c.kwargs["pos_weight"] for c in battery[POS_WEIGHT]]
    assert 3.0 in pos and any(np.ndim(p) == 1 and 0.0 in p for p in pos)
    ignored = battery[IGNORE_INDEX]
    assert any(np.all(c.y == -1.0) for c in ignored)  # everything ignored
    assert any("weight" in c.kwargs and "ignore_index" in c.kwargs for c in ignored)
    assert any(np.any((np.abs(c.x) >= 100) & (c.y == -1.0)) for c in ignored)  # ignored at saturation
    assert {c.gamma for c in ignored} == {0.0, 2.0, 0.5}


def test_an_independent_torch_loss_passes_and_the_reference_itself_passes():
    report = _check(good)
    assert [report.row(r).status for r in ARGUMENT_REGIONS] == ["pass"] * 3, str(report)
    ref = check_sigmoid_focal_loss(focal_ref.sigmoid_focal_loss, regions=ARGUMENT_REGIONS)
    assert ref.passed, str(ref)
    assert "numpy cannot differentiate: gradients not checked" in ref.row(WEIGHT).note
    off = check_sigmoid_focal_loss(
        lambda x, y, **kw: focal_ref.sigmoid_focal_loss(x, y, **kw) * (1 + 1e-12), regions=ARGUMENT_REGIONS
    )
    assert off.failed_regions == ARGUMENT_REGIONS, str(off)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_focal_ref_torch_passes_the_argument_regions(dtype):
    import focal_ref.torch as ft

    report = _check(ft.sigmoid_focal_loss, dtype=dtype)
    assert report.passed, str(report)
    assert [report.row(r).status for r in ARGUMENT_REGIONS] == ["pass"] * 3
    assert all(report.row(r).note == "" for r in ARGUMENT_REGIONS)  # every case ran: losses and gradients


def test_focal_ref_keras_passes_the_argument_regions():
    fk = pytest.importorskip("focal_ref.keras")
    report = check_sigmoid_focal_loss(fk.sigmoid_focal_loss, framework="keras", regions=ARGUMENT_REGIONS)
    assert [report.row(r).status for r in ARGUMENT_REGIONS] == ["pass"] * 3, str(report)
    assert all(report.row(r).note == "" for r in ARGUMENT_REGIONS)


# ----------------------------------------------------------------------------------------------
# planted faults fail in the region of their argument, with a note that says where


@pytest.mark.parametrize(
    "fault, failing, passing, note",
    [
        (ignores_weight, WEIGHT, POS_WEIGHT, "weight="),
        (mean_over_weight_sum, WEIGHT, POS_WEIGHT, "reduction=mean"),
        (counts_ignored_in_mean, IGNORE_INDEX, WEIGHT, "reduction=mean"),
        (pos_weight_on_whole_ce, POS_WEIGHT, WEIGHT, "pos_weight="),
        (nan_mean_when_all_ignored, IGNORE_INDEX, POS_WEIGHT, "[every element ignored] reduction=mean"),
        (masked_after_computing, IGNORE_INDEX, WEIGHT, "nan gradient at [ignore_index=-1"),
        (gradient_leaks_at_ignored, IGNORE_INDEX, POS_WEIGHT, "gradient"),
    ],
)
def test_planted_fault_fails_the_region_of_its_argument(fault, failing, passing, note):
    report = _check(fault)
    assert failing in report.failed_regions, str(report)
    assert report.row(passing).passed, str(report)
    assert note in report.row(failing).note, report.row(failing).note


def test_each_fault_fails_only_where_its_argument_is_used():
    assert _check(counts_ignored_in_mean).failed_regions == (IGNORE_INDEX,)
    assert _check(nan_mean_when_all_ignored).failed_regions == (IGNORE_INDEX,)
    nan = _check(masked_after_computing).row(IGNORE_INDEX)
    assert nan.cause == "non-finite" and math.isinf(nan.max_rel_err) and "gamma=0.5" in nan.note
    assert _check(ignores_weight).failed_regions == (WEIGHT, IGNORE_INDEX)  # the ignore + weight case
    assert _check(pos_weight_on_whole_ce).failed_regions == (POS_WEIGHT, IGNORE_INDEX)
    leak = _check(gradient_leaks_at_ignored).row(IGNORE_INDEX)
    assert "reference 0" in leak.note and "gradient" in leak.note  # the value was right, the gradient not


@settings(max_examples=5)
@given(
    seed=st.integers(0, 2**31 - 1),
    alpha=st.sampled_from([None, 0.25, 0.9]),
    gamma=st.sampled_from([0.0, 1.0, 2.0, 3.5]),
)
def test_every_seed_and_hyperparameter_passes_a_correct_loss_and_fails_a_fault(seed, alpha, gamma):
    import focal_ref.torch as ft

    kw = dict(seed=seed, alphas=(alpha,), gammas=(gamma,))
    for fn in (good, ft.sigmoid_focal_loss):
        report = _check(fn, **kw)
        assert [report.row(r).status for r in ARGUMENT_REGIONS] == ["pass"] * 3, str(report)
    assert _check(counts_ignored_in_mean, **kw).failed_regions == (IGNORE_INDEX,)
    assert WEIGHT in _check(mean_over_weight_sum, **kw).failed_regions


# ----------------------------------------------------------------------------------------------
# a loss that cannot take an argument is skipped, and says so


def no_keywords(x, y, *, alpha, gamma):
    return good(x, y, alpha=alpha, gamma=gamma)


def weight_only(x, y, *, alpha, gamma, weight=None):
    return good(x, y, alpha=alpha, gamma=gamma, weight=weight)


def forwards_kwargs(x, y, *, alpha, gamma, **kwargs):
    return no_keywords(x, y, alpha=alpha, gamma=gamma, **kwargs)


def test_a_loss_without_the_keyword_is_skipped_with_a_note():
    report = _check(no_keywords)
    for region in ARGUMENT_REGIONS:
        row = report.row(region)
        assert row.status == "skipped" and row.cases == 0
        assert row.note == f"does not accept {region}"
    assert SIGMOID_REGIONS[-3:] == ARGUMENT_REGIONS


def test_a_loss_without_reduction_is_checked_elementwise_and_says_so():
    report = _check(weight_only)
    row = report.row(WEIGHT)
    assert row.status == "pass" and row.cases > 0
    assert "does not accept reduction: only the elementwise loss checked" in row.note
    assert report.row(POS_WEIGHT).note == "does not accept pos_weight"
    # **kwargs hides what the loss takes: the TypeError of the call is read as "does not accept"
    hidden = _check(forwards_kwargs).row(WEIGHT)
    assert hidden.status == "skipped" and "does not accept 'reduction'" in hidden.note


def test_accepts_reads_signatures():
    assert accepts(good, "weight") and accepts(forwards_kwargs, "pos_weight")
    assert accepts(no_keywords, "weight") is False
    assert accepts(max, "weight") is None  # no readable signature: the call decides


# ----------------------------------------------------------------------------------------------
# kornia: the arguments it has are mapped; the cases it cannot express are skipped, by name


def test_kornia_maps_per_class_weights_and_keeps_ignored_elements_in_its_mean():
    kornia = pytest.importorskip("kornia")
    fn = kornia.losses.binary_focal_loss_with_logits
    report = _check(fn, adapter=adapters.kornia_binary)
    assert report.row(WEIGHT).status == report.row(POS_WEIGHT).status == "pass", str(report)
    assert "kornia's weight is per class: shape (C,) only, not (9, 4)" in report.row(WEIGHT).note
    assert "kornia's pos_weight is per class: shape (C,) only, not (9, 4)" in report.row(POS_WEIGHT).note
    # kornia documents that an ignored element "still counts in the 'mean' denominator"
    ignore = report.row(IGNORE_INDEX)
    assert report.failed_regions == (IGNORE_INDEX,) and "reduction=mean" in ignore.note, str(report)

    def kept_mean(fn, logits, targets, *, reduction=None, ignore_index=None, **kw):
        if reduction != "mean":
            return adapters.kornia_binary(
                fn, logits, targets, reduction=reduction, ignore_index=ignore_index, **kw
            )
        total = adapters.kornia_binary(fn, logits, targets, reduction="sum", ignore_index=ignore_index, **kw)
        return total / (targets != ignore_index).sum().clamp(min=1)

    assert _check(fn, adapter=kept_mean).row(IGNORE_INDEX).passed  # so only the denominator differs


def test_kornia_adapter_refuses_a_per_element_weight():
    x = torch.zeros(2, 3)
    with pytest.raises(NotSupported, match="per class"):
        adapters.kornia_binary(lambda *a, **k: None, x, x, alpha=0.25, gamma=2.0, weight=torch.ones(2, 1))
    # the default regions' (N,) inputs are unchanged: one channel in, (N,) out
    kornia = pytest.importorskip("kornia")
    fn = kornia.losses.binary_focal_loss_with_logits
    assert check_sigmoid_focal_loss(fn, framework="torch", adapter=adapters.kornia_binary, skip=[SOFT]).passed


# ----------------------------------------------------------------------------------------------
# Keras's BinaryFocalCrossentropy: weight is its sample_weight, "mean" its sum_over_batch_size


def test_keras_builtin_adapter_maps_weight_and_reduction():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-2.0, 2.0, (3, 4)), rng.integers(0, 2, (3, 4)).astype(np.float64)
    w = np.array([0.0, 0.5, 1.0, 3.0])
    adapter = adapters.keras_binary_focal_crossentropy(True)
    ops = keras.ops
    for reduction in ("none", "sum", "mean"):
        got = adapter(
            keras.losses.BinaryFocalCrossentropy,
            ops.convert_to_tensor(x, "float32"),
            ops.convert_to_tensor(y, "float32"),
            alpha=0.25,
            gamma=2.0,
            reduction=reduction,
            weight=ops.convert_to_tensor(w, "float32"),
        )
        want = focal_ref.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction=reduction, weight=w)
        np.testing.assert_allclose(ops.convert_to_numpy(got), want, rtol=1e-5, err_msg=reduction)
    report = check_sigmoid_focal_loss(
        keras.losses.BinaryFocalCrossentropy, framework="keras", adapter=adapter, regions=ARGUMENT_REGIONS
    )
    assert report.row(WEIGHT).cases > 0  # it ran (and shows Keras's saturation faults, see the peer audit)
    assert report.row(POS_WEIGHT).note == "does not accept pos_weight"
    assert report.row(IGNORE_INDEX).note == "does not accept ignore_index"
