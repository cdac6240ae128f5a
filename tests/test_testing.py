"""focal_ref.testing: the checker passes correct implementations, fails planted faults, names the region."""

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import focal_ref
from focal_ref import testing
from focal_ref.testing import (
    GRADIENTS,
    MODERATE,
    REGIONS,
    SATURATED,
    SOFT,
    check_sigmoid_focal_loss,
    check_softmax_focal_loss,
    summarize,
)



# ----------------------------------------------------------------------------------------------
# planted faults: each is a correct log-space torch focal loss with ONE thing changed


def _alpha_t(alpha, y):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def _ce_and_m(x, y):
    # softplus, not F.binary_cross_entropy_with_logits: its backward forms sigmoid(x) - y, which cancels.
    ce = y * F.softplus(-x) + (1.0 - y) * F.softplus(x)
    m = y * torch.sigmoid(-x) + (1.0 - y) * torch.sigmoid(x)  # 1 - p_t without cancellation
    return ce, m


def good_sigmoid(x, y, *, alpha, gamma):
    """Autograd of the log-space formula, with m**gamma kept away from m = 0 (where its derivative is infinite)."""
    ce, m = _ce_and_m(x, y)
    positive = m > 0
    factor = torch.where(positive, torch.where(positive, m, 1.0) ** gamma, 0.0**gamma)
    return _alpha_t(alpha, y) * factor * ce


def clamped_1e4(x, y, *, alpha, gamma):
    """The blog's clamp: p_t >= 1e-4, i.e. the CE of one example capped at -log(1e-4)."""
    ce, m = _ce_and_m(x, y)
    return _alpha_t(alpha, y) * m**gamma * ce.clamp(max=-math.log(1e-4))


def one_minus_sigmoid(x, y, *, alpha, gamma):
    """1 - p_t formed by subtraction from p = sigmoid(x): 0 once p rounds to 1."""
    ce, _ = _ce_and_m(x, y)
    p = torch.sigmoid(x)
    m = 1.0 - (p * y + (1.0 - p) * (1.0 - y))
    return _alpha_t(alpha, y) * m**gamma * ce


def naive_pow(x, y, *, alpha, gamma):
    """Right values, but autograd of m**gamma: gamma * m**(gamma-1) * 0 = inf * 0 = NaN where m = 0."""
    ce, m = _ce_and_m(x, y)
    return _alpha_t(alpha, y) * torch.pow(m, gamma) * ce


def alpha_on_negatives(x, y, *, alpha, gamma):
    """alpha weights class 0 instead of class 1."""
    ce, m = _ce_and_m(x, y)
    return _alpha_t(None if alpha is None else 1.0 - alpha, y) * m**gamma * ce


def softmax_clamped(x, t, *, alpha, gamma):
    """The blog's multi-class recipe in float32: softmax, clamp to [1e-4, 1], log."""
    p = torch.softmax(x, dim=1).clamp(1e-4, 1.0)
    p_t = p.gather(1, t[:, None])[:, 0]
    w = 1.0 if alpha is None else torch.tensor(alpha, dtype=x.dtype)[t]
    return -w * (1.0 - p_t) ** gamma * torch.log(p_t)


# ----------------------------------------------------------------------------------------------
# passes


def test_reference_passes_itself_in_float64():
    report = check_sigmoid_focal_loss(focal_ref.sigmoid_focal_loss)
    assert report.passed
    assert report.row(GRADIENTS).status == "skipped"  # NumPy cannot differentiate
    assert report.row(MODERATE).max_rel_err == 0.0
    assert check_softmax_focal_loss(focal_ref.softmax_focal_loss).passed


def test_good_autograd_loss_passes_every_region():
    report = check_sigmoid_focal_loss(good_sigmoid, framework="torch")
    assert report.passed, str(report)
    assert [r.status for r in report.rows] == ["pass"] * len(REGIONS)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_focal_ref_torch_passes(dtype):
    import focal_ref.torch as ft

    sig = check_sigmoid_focal_loss(ft.sigmoid_focal_loss, framework="torch", dtype=dtype)
    soft = check_softmax_focal_loss(ft.softmax_focal_loss, framework="torch", dtype=dtype)
    assert sig.passed, str(sig)
    assert soft.passed, str(soft)
    assert sig.row(GRADIENTS).status == soft.row(GRADIENTS).status == "pass"


def test_focal_ref_keras_passes():
    import focal_ref.keras as fk

    sig = check_sigmoid_focal_loss(fk.sigmoid_focal_loss, framework="keras")
    soft = check_softmax_focal_loss(fk.softmax_focal_loss, framework="keras")
    assert sig.passed, str(sig)
    assert soft.passed, str(soft)
    assert sig.row(GRADIENTS).status == "pass"  # differentiated through the backend (TensorFlow or torch)


def test_keras_closure_returning_none_fails_every_region_with_a_note():
    import keras

    from focal_ref.blog import keras_blog

    def adapter(make_loss, logits, targets, *, alpha, gamma):
        return make_loss(alpha=alpha, gamma=gamma)(targets, keras.ops.sigmoid(logits))

    report = check_sigmoid_focal_loss(keras_blog.focal_loss, framework="keras", adapter=adapter)
    assert report.failed_regions == REGIONS
    assert {r.note for r in report.rows} == {"returned None"}
    assert {r.short for r in report.rows} == {"FAIL error"}


def _kornia_adapter(fn, logits, targets, *, alpha, gamma):
    # kornia wants (B, C, *): one channel.
    return fn(logits[:, None], targets[:, None], alpha=alpha, gamma=gamma)[:, 0]


def test_kornia_binary_passes_for_hard_labels_and_differs_on_soft_labels():
    from kornia.losses import binary_focal_loss_with_logits

    hard = check_sigmoid_focal_loss(
        binary_focal_loss_with_logits, framework="torch", adapter=_kornia_adapter, skip=[SOFT]
    )
    assert hard.passed, str(hard)
    assert hard.row(SOFT).status == "skipped"
    # With soft labels kornia modulates the two terms separately (t(1-p)^g log p + (1-t) p^g log(1-p)).
    soft = check_sigmoid_focal_loss(
        binary_focal_loss_with_logits, framework="torch", adapter=_kornia_adapter, regions=[SOFT]
    )
    assert soft.failed_regions == (SOFT,)


# ----------------------------------------------------------------------------------------------
# planted faults fail, in the region that shows them


@pytest.mark.parametrize(
    "fault, failing, passing",
    [
        (clamped_1e4, SATURATED, MODERATE),
        (one_minus_sigmoid, SATURATED, None),
        (naive_pow, GRADIENTS, SATURATED),
        (alpha_on_negatives, MODERATE, None),
    ],
)
def test_planted_fault_fails_in_its_region(fault, failing, passing):
    report = check_sigmoid_focal_loss(fault, framework="torch")
    assert not report.passed
    assert failing in report.failed_regions, str(report)
    row = report.row(failing)
    assert row.status == "FAIL" and row.max_rel_err > row.tolerance
    assert row.note  # the report says where
    if passing is not None:
        assert report.row(passing).passed, str(report)


def test_naive_pow_fails_only_the_gradients_with_a_nan_note():
    report = check_sigmoid_focal_loss(naive_pow, framework="torch")
    assert report.failed_regions == (GRADIENTS,)
    row = report.row(GRADIENTS)
    assert math.isinf(row.max_rel_err)
    assert "non-finite" in row.note and "nan gradient at x=100, y=1" in row.note and "gamma=0.25" in row.note
    assert row.short == "FAIL non-finite"


def test_clamp_note_names_a_hard_example():
    report = check_sigmoid_focal_loss(clamped_1e4, framework="torch", regions=[SATURATED], alphas=[0.5])
    row = report.row(SATURATED)
    assert row.status == "FAIL"
    # the worst case is a hard example: loss capped at 0.5 * 9.21 = 4.61 while the reference is 0.5 * 745
    assert row.note == "worst at x=-745, y=1, alpha=0.5, gamma=0: loss 4.61, reference 372"
    assert row.max_rel_err == pytest.approx(1.0 - math.log(1e4) / 745.0, rel=1e-6)


def test_softmax_clamp_fails_saturated_region_only():
    report = check_softmax_focal_loss(softmax_clamped, framework="torch", skip=[SOFT], gammas=[0.0, 2.0])
    assert SATURATED in report.failed_regions
    assert report.row(MODERATE).passed


def test_exception_and_none_are_reported_not_raised():
    def raises(x, y, *, alpha, gamma):
        raise RuntimeError("Torch not compiled with CUDA enabled")

    report = check_sigmoid_focal_loss(raises, framework="torch")
    assert not report.passed
    assert report.row(MODERATE).note == "raised RuntimeError: Torch not compiled with CUDA enabled"
    none = check_sigmoid_focal_loss(lambda x, y, *, alpha, gamma: None, framework="torch", regions=[MODERATE])
    assert none.row(MODERATE).note == "returned None"


def test_wrong_shape_is_a_failure():
    report = check_sigmoid_focal_loss(
        lambda x, y, *, alpha, gamma: focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="mean"),
        regions=[MODERATE],
    )
    assert report.row(MODERATE).note == "loss has shape (), expected (48,)"


# ----------------------------------------------------------------------------------------------
# the report and the arguments


def test_report_formats_are_deterministic_and_complete():
    first = check_sigmoid_focal_loss(clamped_1e4, framework="torch", name="clamped")
    second = check_sigmoid_focal_loss(clamped_1e4, framework="torch", name="clamped")
    assert str(first) == str(second) and first._repr_html_() == second._repr_html_()
    text = str(first)
    assert text.splitlines()[0] == "clamped: sigmoid focal loss, torch float32 -- FAILED"
    assert text.splitlines()[1].split() == ["region", "cases", "max", "rel", "err", "tolerance", "result", "note"]
    for region in REGIONS:
        assert region in text
    assert "7.6e-06" in text  # the float32 loss tolerance, 64 ulp
    html = first._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 1 + len(REGIONS)
    assert first._repr_markdown_().count("\n| ") == 1 + len(REGIONS)


def test_summary_table_has_one_row_per_report():
    reports = [check_sigmoid_focal_loss(f, framework="torch", regions=[MODERATE]) for f in (good_sigmoid, alpha_on_negatives)]
    table = summarize(reports, ["good", "wrong alpha"])
    lines = str(table).splitlines()
    assert lines[0].split()[:3] == ["implementation", "moderate", "logits"]
    assert lines[2].startswith("good") and lines[2].rstrip().endswith("passed")
    assert lines[3].startswith("wrong alpha") and "FAIL 2.0e+00" in lines[3] and lines[3].endswith("FAILED")
    assert table._repr_html_().count("<tr>") == 3


def test_tolerances_scale_with_the_dtype():
    assert testing.TOLERANCES["float32"][0] == 64 * 2.0**-23
    assert testing.TOLERANCES["float64"][1] == 128 * 2.0**-52
    assert testing.TOLERANCES["float16"][0] == 4 * 2.0**-10


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"framework": "jax"}, ValueError),
        ({"dtype": "float8"}, ValueError),
        ({"skip": ["middle"]}, ValueError),
        ({"framework": "numpy", "dtype": "bfloat16"}, ValueError),
    ],
)
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error):
        check_sigmoid_focal_loss(focal_ref.sigmoid_focal_loss, **kwargs)


def test_load_callable():
    assert testing.load_callable("focal_ref:sigmoid_focal_loss") is focal_ref.sigmoid_focal_loss
    assert testing.load_callable("focal_ref.testing.summarize") is summarize
    with pytest.raises(ValueError):
        testing.load_callable("nomodule")


# ----------------------------------------------------------------------------------------------
# the command line


PLANTED = """
import numpy as np

def clamped(x, y, *, alpha, gamma):
    p = 1.0 / (1.0 + np.exp(-x))
    p_t = np.clip(p * y + (1 - p) * (1 - y), 1e-4, 1.0)
    return -(alpha * y + (1 - alpha) * (1 - y)) * (1 - p_t) ** gamma * np.log(p_t)
"""


def _cli(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    return subprocess.run(
        [sys.executable, "-m", "focal_ref", "check", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_passes_focal_ref_torch(tmp_path):
    done = _cli(["focal_ref.torch:sigmoid_focal_loss", "--kind", "sigmoid", "--framework", "torch"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].endswith("PASSED")


def test_cli_fails_a_planted_fault_and_rejects_bad_names(tmp_path):
    (tmp_path / "planted.py").write_text(textwrap.dedent(PLANTED))
    done = _cli(["planted:clamped", "--kind", "sigmoid", "--framework", "numpy"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout.splitlines()[0]
    saturated = [line for line in done.stdout.splitlines() if line.startswith(SATURATED)]
    assert saturated and "FAIL" in saturated[0]
    missing = _cli(["planted:nothing_here"], tmp_path)
    assert missing.returncode == 2 and "nothing_here" in missing.stderr
