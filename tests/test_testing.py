"""focal_ref.testing: the checker passes correct implementations, fails planted faults, names the region."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import focal_ref
from focal_ref import testing
from focal_ref.testing import (
    ALL_REGIONS,
    GRADIENTS,
    LOW_GAMMA,
    MODERATE,
    REGIONS,
    SATURATED,
    SECOND_DERIVATIVES,
    SOFT,
    adapters,
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
    """Autograd of the log-space formula, m**gamma kept away from m = 0 (where its derivative is infinite)."""
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


def independent_sigmoid(x, y, *, alpha, gamma):
    """A float64 NumPy log-space formula written apart from the reference (logaddexp, not its helpers)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ce = y * np.logaddexp(0.0, -x) + (1.0 - y) * np.logaddexp(0.0, x)
    m = y * np.exp(-np.logaddexp(0.0, x)) + (1.0 - y) * np.exp(-np.logaddexp(0.0, -x))
    return _np_alpha_t(alpha, y) * m**gamma * ce


def _np_alpha_t(alpha, y):
    return 1.0 if alpha is None else alpha * y + (1.0 - alpha) * (1.0 - y)


def test_an_independent_float64_formula_passes_and_a_1e_12_error_fails():
    report = check_sigmoid_focal_loss(independent_sigmoid)
    assert report.passed, str(report)
    assert report.row(GRADIENTS).status == "skipped"  # NumPy cannot differentiate
    assert 0.0 < report.row(MODERATE).max_rel_err < report.row(MODERATE).tolerance  # not 0 by construction
    off = check_sigmoid_focal_loss(
        lambda x, y, *, alpha, gamma: independent_sigmoid(x, y, alpha=alpha, gamma=gamma) * (1 + 1e-12)
    )
    assert set(off.failed_regions) == {MODERATE, SATURATED, SOFT, LOW_GAMMA}, str(off)


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
    from focal_ref.blog import keras_blog

    adapter = adapters.keras_closure(keras_blog.focal_loss)
    report = check_sigmoid_focal_loss(keras_blog.focal_loss, framework="keras", adapter=adapter)
    assert report.failed_regions == REGIONS
    assert {r.note for r in report.rows} == {"returned None"}
    assert {r.short for r in report.rows} == {"FAIL error"}


def test_kornia_binary_passes_for_hard_labels_and_differs_on_soft_labels():
    from kornia.losses import binary_focal_loss_with_logits

    hard = check_sigmoid_focal_loss(
        binary_focal_loss_with_logits, framework="torch", adapter=adapters.kornia_binary, skip=[SOFT]
    )
    assert hard.passed, str(hard)
    assert hard.row(SOFT).status == "skipped"
    # With soft labels kornia modulates the two terms separately (t(1-p)^g log p + (1-t) p^g log(1-p)).
    soft = check_sigmoid_focal_loss(
        binary_focal_loss_with_logits, framework="torch", adapter=adapters.kornia_binary, regions=[SOFT]
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
        lambda x, y, *, alpha, gamma: focal_ref.sigmoid_focal_loss(
            x, y, alpha=alpha, gamma=gamma, reduction="mean"
        ),
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
    assert text.splitlines()[1].split() == [
        "region",
        "cases",
        "max",
        "rel",
        "err",
        "tolerance",
        "result",
        "note",
    ]
    for region in REGIONS:
        assert region in text
    assert "7.6e-06" in text  # the float32 loss tolerance, 64 ulp
    html = first._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 1 + len(REGIONS)
    assert first._repr_markdown_().count("\n| ") == 1 + len(REGIONS)


def test_summary_table_has_one_row_per_report():
    reports = [
        check_sigmoid_focal_loss(f, framework="torch", regions=[MODERATE])
        for f in (good_sigmoid, alpha_on_negatives)
    ]
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
        [sys.executable, "-m", "focal_ref", "check", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
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


# ----------------------------------------------------------------------------------------------
# the public adapters


def test_blog_adapters_run_the_blog_modules_and_show_their_faults():
    from focal_ref.blog import torch_blog, torch_blog_multiclass

    binary = check_sigmoid_focal_loss(
        torch_blog.FocalLoss, framework="torch", adapter=adapters.torch_per_example()
    )
    assert binary.row(MODERATE).passed and SATURATED in binary.failed_regions, str(binary)
    multilabel = check_sigmoid_focal_loss(
        torch_blog.FocalLoss_MultiLabel,
        framework="torch",
        adapter=adapters.multilabel_per_example,
        regions=[MODERATE],
    )
    assert multilabel.passed, str(multilabel)
    multiclass = check_softmax_focal_loss(
        torch_blog_multiclass.FocalLoss,
        framework="torch",
        adapter=adapters.multiclass_per_row(torch_blog_multiclass.FocalLoss),
        skip=[SOFT],
    )
    assert multiclass.row(MODERATE).passed and SATURATED in multiclass.failed_regions, str(multiclass)
    ce = check_softmax_focal_loss(
        torch_blog_multiclass.CELoss,
        framework="torch",
        gammas=[0.0],
        regions=[MODERATE],
        adapter=adapters.multiclass_per_row(torch_blog_multiclass.CELoss, gamma_free=True),
    )
    assert ce.passed, str(ce)


def test_keras_builtin_adapters_pass_moderate_logits():
    import keras

    binary = check_sigmoid_focal_loss(
        keras.losses.BinaryFocalCrossentropy,
        framework="keras",
        adapter=adapters.keras_binary_focal_crossentropy(True),
        regions=[MODERATE],
    )
    assert binary.passed, str(binary)
    # without class balancing Keras ignores alpha: the moderate region shows it
    unbalanced = check_sigmoid_focal_loss(
        keras.losses.BinaryFocalCrossentropy,
        framework="keras",
        adapter=adapters.keras_binary_focal_crossentropy(False),
        regions=[MODERATE],
    )
    assert unbalanced.failed_regions == (MODERATE,)
    categorical = check_softmax_focal_loss(
        keras.losses.CategoricalFocalCrossentropy,
        framework="keras",
        adapter=adapters.keras_categorical_focal_crossentropy,
        regions=[MODERATE],
    )
    assert categorical.passed, str(categorical)


def test_kornia_softmax_adapter_maps_its_alpha_and_refuses_other_weights():
    from kornia.losses import focal_loss

    ok = check_softmax_focal_loss(
        focal_loss,
        framework="torch",
        adapter=adapters.kornia_softmax,
        alphas=[None, (0.75, 0.25, 0.25, 0.25, 0.25)],
        regions=[MODERATE],
    )
    assert ok.passed, str(ok)
    refused = check_softmax_focal_loss(
        focal_loss, framework="torch", adapter=adapters.kornia_softmax, regions=[MODERATE]
    )
    assert refused.row(MODERATE).note.startswith("raised ValueError: kornia's alpha can only express")


# ----------------------------------------------------------------------------------------------
# checker faults (issue 16): each fails before its fix


def test_a_complex_result_fails_instead_of_dropping_its_imaginary_part():
    def complex_numpy(x, y, *, alpha, gamma):
        return focal_ref.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma) + 0j

    report = check_sigmoid_focal_loss(complex_numpy, regions=[MODERATE])
    assert report.row(MODERATE).status == "FAIL" and "complex" in report.row(MODERATE).note

    def complex_torch(x, y, *, alpha, gamma):
        return good_sigmoid(x, y, alpha=alpha, gamma=gamma).to(torch.complex64) * (1 + 1e-3j)

    report = check_sigmoid_focal_loss(complex_torch, framework="torch", regions=[MODERATE, GRADIENTS])
    assert report.failed_regions == (MODERATE, GRADIENTS), str(report)
    assert all("complex" in report.row(r).note for r in (MODERATE, GRADIENTS))


@pytest.mark.parametrize(
    "check, kwargs, named",
    [
        (check_sigmoid_focal_loss, {"gammas": [2.0, -1.0]}, "gammas"),
        (check_sigmoid_focal_loss, {"gammas": [float("nan")]}, "gammas"),
        (check_sigmoid_focal_loss, {"alphas": [1.5]}, "alphas"),
        (check_sigmoid_focal_loss, {"alphas": [True]}, "alphas"),
        (check_sigmoid_focal_loss, {"gammas": []}, "gammas"),
        (check_softmax_focal_loss, {"alphas": [(0.1, 0.2)]}, "alphas"),
        (check_softmax_focal_loss, {"alphas": [(0.1, 0.2, 0.3, 0.4, 1.2)]}, "alphas"),
        (check_softmax_focal_loss, {"alphas": [{0.1, 0.2, 0.3, 0.4, 0.5}]}, "alphas"),
        (check_softmax_focal_loss, {"num_classes": 1}, "num_classes"),
        (check_softmax_focal_loss, {"regions": ["hessians"]}, "region"),
    ],
)
def test_invalid_checker_arguments_raise_naming_the_argument(check, kwargs, named):
    calls = []
    fn = focal_ref.sigmoid_focal_loss if check is check_sigmoid_focal_loss else focal_ref.softmax_focal_loss
    with pytest.raises(ValueError, match=named):
        check(lambda *a, **k: calls.append(1) or fn(*a, **k), **kwargs)
    assert not calls  # raised before the implementation ran: not a finding against it


def test_one_softmax_alpha_is_a_weight_for_every_class():
    seen = []

    def spy(x, t, *, alpha, gamma):
        seen.append(alpha)
        return focal_ref.softmax_focal_loss(x, t, alpha=alpha, gamma=gamma)

    report = check_softmax_focal_loss(spy, alphas=[0.25], regions=[MODERATE])
    assert report.passed, str(report)
    assert set(seen) == {(0.25,) * 5}


def test_a_system_exit_in_the_implementation_is_a_failure_not_the_end_of_the_run():
    def exits(x, y, *, alpha, gamma):
        raise SystemExit(0)

    report = check_sigmoid_focal_loss(exits, framework="torch")
    assert report.failed_regions == REGIONS
    assert report.row(MODERATE).note == "raised SystemExit: 0"


# the torch fault of issue 16: the others-sum of the softmax prob-target gradient by subtraction


def _softmax_prob_grad(x, y, gamma, subtract):
    log_p, u = focal_ref.log_softmax_parts(x)
    p = np.exp(log_p)
    h = np.where(u > 0, -p * np.where(p > 0, log_p, 0.0) / np.where(u > 0, u, 1.0), 1.0)
    wg = y * u**gamma * (1.0 + gamma * h)
    if subtract:  # the planted fault: others_j = sum_c wg_c - wg_j
        others = wg.sum(axis=-1, keepdims=True) - wg
    else:  # the reference's way, through its public gradient
        return focal_ref.softmax_focal_loss_grad(x, y, gamma=gamma)
    return p * others - wg * u


class _ProbTargetLoss(torch.autograd.Function):
    """float64 probability-target softmax focal loss: exact forward, a closed-form backward."""

    @staticmethod
    def forward(ctx, x, y, gamma, subtract):
        xs, ys = x.detach().numpy(), y.detach().numpy()
        ctx.save_for_backward(x, y)
        ctx.gamma, ctx.subtract = gamma, subtract
        return torch.from_numpy(focal_ref.softmax_focal_loss(xs, ys, gamma=gamma))

    @staticmethod
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        grad = _softmax_prob_grad(x.detach().numpy(), y.numpy(), ctx.gamma, ctx.subtract)
        return grad_out[:, None] * torch.from_numpy(grad), None, None, None


def _prob_target_loss(subtract):
    def fn(x, t, *, alpha, gamma):
        y = t if t.ndim == 2 else F.one_hot(t, x.shape[1]).to(x.dtype)
        return _ProbTargetLoss.apply(x, y, gamma, subtract)

    return fn


def test_near_one_hot_rows_fail_the_planted_others_subtraction():
    # the case: float64 logits [35, 0, -1], targets [1 - 1e-12, .5e-12, .5e-12], gamma = 0
    x = np.array([[35.0, 0.0, -1.0]])
    y = np.array([[1 - 1e-12, 0.5e-12, 0.5e-12]])
    faulty, right = _softmax_prob_grad(x, y, 0.0, True), focal_ref.softmax_focal_loss_grad(x, y, gamma=0.0)
    assert np.max(np.abs(faulty - right)) / np.max(np.abs(right)) > 1e-5  # the fault is real: digits lost
    kw = dict(framework="torch", dtype="float64", alphas=[None], regions=[SOFT, GRADIENTS])
    bad = check_softmax_focal_loss(_prob_target_loss(subtract=True), **kw)
    good = check_softmax_focal_loss(_prob_target_loss(subtract=False), **kw)
    assert good.passed, str(good)
    assert bad.failed_regions == (GRADIENTS,), str(bad)
    assert "soft target [1," in bad.row(GRADIENTS).note and "gamma=0" in bad.row(GRADIENTS).note


def test_plain_autograd_of_log_softmax_loses_the_same_digits():
    """Also torch's own soft-label cross entropy: the near-one-hot rows hold every implementation to them."""

    def cross_entropy(x, t, *, alpha, gamma):
        return F.cross_entropy(x, t, reduction="none")

    report = check_softmax_focal_loss(
        cross_entropy,
        framework="torch",
        dtype="float64",
        alphas=[None],
        gammas=[0.0],
        regions=[SOFT, GRADIENTS],
    )
    assert GRADIENTS in report.failed_regions, str(report)
    assert "soft target [1," in report.row(GRADIENTS).note


# second derivatives (opt-in)


def exp_gamma_log_m(x, y, *, alpha, gamma):
    """(1 - p_t)^gamma as exp(gamma log m): d2 log m / dx2 divides by m^2, which underflows."""
    ce, m = _ce_and_m(x, y)
    return _alpha_t(alpha, y) * torch.exp(gamma * torch.log(m)) * ce


def zero_hessian(x, y, *, alpha, gamma):
    """The right loss and gradient with a zero second derivative, as a first-order-only backward gives."""
    loss = good_sigmoid(x, y, alpha=alpha, gamma=gamma)
    (grad,) = torch.autograd.grad(loss.sum(), x, retain_graph=True) if x.requires_grad else (None,)
    if grad is None:
        return loss
    return loss.detach() + (x - x.detach()) * grad.detach() + 0.0 * x**2


class _FirstOrderOnly(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, alpha, gamma):
        ctx.save_for_backward(x, y)
        ctx.alpha, ctx.gamma = alpha, gamma
        return good_sigmoid(x, y, alpha=alpha, gamma=gamma)

    @staticmethod
    def backward(ctx, grad_out):
        x, y = ctx.saved_tensors
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(good_sigmoid(z, y, alpha=ctx.alpha, gamma=ctx.gamma).sum(), z)
        return grad_out * g, None, None, None


def first_order_only(x, y, *, alpha, gamma):
    return _FirstOrderOnly.apply(x, y, alpha, gamma)


def test_second_derivatives_are_opt_in_and_pass_a_good_loss():
    assert SECOND_DERIVATIVES not in REGIONS
    assert all(
        r.region != SECOND_DERIVATIVES for r in check_sigmoid_focal_loss(good_sigmoid, framework="torch").rows
    )
    report = check_sigmoid_focal_loss(good_sigmoid, framework="torch", regions=[*REGIONS, SECOND_DERIVATIVES])
    assert report.passed, str(report)
    assert report.row(SECOND_DERIVATIVES).cases > 0


def test_second_derivatives_of_a_good_softmax_pass():
    def good_softmax(x, t, *, alpha, gamma):
        log_p = F.log_softmax(x, 1)
        w = F.one_hot(t, x.shape[1]).to(x.dtype)
        if alpha is not None:
            w = w * torch.tensor(alpha, dtype=x.dtype)
        u = -torch.expm1(log_p)
        keep = u > 0
        factor = torch.where(keep, torch.where(keep, u, 1.0) ** gamma, 0.0**gamma)
        return -torch.where(w > 0, w * factor * log_p, 0.0).sum(1)

    report = check_softmax_focal_loss(
        good_softmax, framework="torch", dtype="float64", regions=[SECOND_DERIVATIVES]
    )
    assert report.passed, str(report)


@pytest.mark.parametrize(
    "fault, cause, note",
    [
        (zero_hessian, "", "second derivative 0,"),
        (exp_gamma_log_m, "non-finite", "nan second derivative"),
        (one_minus_sigmoid, "non-finite", "second derivative"),
        (first_order_only, "error", "no second derivative"),
    ],
)
def test_second_derivative_region_fails_each_planted_fault(fault, cause, note):
    report = check_sigmoid_focal_loss(
        fault, framework="torch", regions=[MODERATE, GRADIENTS, SECOND_DERIVATIVES]
    )
    assert SECOND_DERIVATIVES in report.failed_regions, str(report)
    row = report.row(SECOND_DERIVATIVES)
    assert row.cause == cause and note in row.note, row.note
    if fault in (
        zero_hessian,
        first_order_only,
    ):  # right values and first derivatives: only this region shows it
        assert report.row(MODERATE).passed and report.row(GRADIENTS).passed, str(report)


def test_numpy_skips_second_derivatives():
    report = check_sigmoid_focal_loss(independent_sigmoid, regions=[SECOND_DERIVATIVES])
    assert report.row(SECOND_DERIVATIVES).status == "skipped"


# the command line: import failures


@pytest.mark.parametrize(
    "source, error",
    [("def broken(:\n", "SyntaxError"), ("raise RuntimeError('no GPU here')\n", "RuntimeError")],
)
def test_cli_module_that_fails_to_import_exits_3_with_a_message(tmp_path, source, error):
    (tmp_path / "bad_module.py").write_text(source)
    done = _cli(["bad_module:fn"], tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"importing 'bad_module:fn' raised {error}" in done.stderr
    assert done.stdout == ""


def test_cli_implementation_calling_exit_gets_a_report(tmp_path):
    (tmp_path / "exits.py").write_text("import sys\n\ndef fn(x, y, *, alpha, gamma):\n    sys.exit(0)\n")
    done = _cli(["exits:fn"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "raised SystemExit: 0" in done.stdout


GOOD_TORCH = """
import torch
import torch.nn.functional as F


def loss(x, y, *, alpha, gamma):
    ce = y * F.softplus(-x) + (1 - y) * F.softplus(x)
    m = y * torch.sigmoid(-x) + (1 - y) * torch.sigmoid(x)
    keep = m > 0
    factor = torch.where(keep, torch.where(keep, m, 1.0) ** gamma, 0.0**gamma)
    return (alpha * y + (1 - alpha) * (1 - y)) * factor * ce


def first_order(x, y, *, alpha, gamma):
    value = loss(x, y, alpha=alpha, gamma=gamma)
    if not x.requires_grad:
        return value
    (grad,) = torch.autograd.grad(value.sum(), x, retain_graph=True)
    return value.detach() + (x - x.detach()) * grad.detach() + 0.0 * x**2
"""


def test_cli_second_derivatives_flag_adds_the_region(tmp_path):
    (tmp_path / "good_torch.py").write_text(GOOD_TORCH)
    args = ["--framework", "torch", "--second-derivatives"]
    good = _cli(["good_torch:loss", *args], tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert any(line.startswith(SECOND_DERIVATIVES + " ") for line in good.stdout.splitlines())
    zero = _cli(["good_torch:first_order", *args], tmp_path)
    assert zero.returncode == 1, zero.stdout + zero.stderr
    rows = {r: [line for line in zero.stdout.splitlines() if line.startswith(r + " ")] for r in ALL_REGIONS}
    assert "FAIL" in rows[SECOND_DERIVATIVES][0]
    assert all("pass" in rows[r][0] for r in (MODERATE, SATURATED, SOFT, LOW_GAMMA, GRADIENTS)), zero.stdout
