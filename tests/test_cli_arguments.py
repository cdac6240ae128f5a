"""``python -m focal_ref check ... --arguments``: the command line adds the sigmoid family's argument regions
(``focal_ref.testing.ARGUMENT_REGIONS``: weight, pos_weight, ignore_index) to the regions it runs."""

import os
import subprocess
import sys
import textwrap

import pytest

from focal_ref.__main__ import EXIT_FAILED, EXIT_PASSED, EXIT_USAGE, main
from focal_ref.testing import ARGUMENT_REGIONS, IGNORE_INDEX, POS_WEIGHT, REGIONS, WEIGHT

# Three losses of the documented signature, written to a module in the test's working directory:
# the reference without the keywords, one that takes only ignore_index but keeps ignored elements in the
# mean's count (kornia's convention), and one that computes the loss of the target -1 and masks it
# afterwards by a multiplication (NaN at gamma < 1, which the mask does not remove).
LOSSES = """
import numpy as np
import focal_ref


def plain(logits, targets, *, alpha, gamma):
    return focal_ref.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma)


def counts_ignored(logits, targets, *, alpha, gamma, reduction="none", ignore_index=None):
    out = focal_ref.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, ignore_index=ignore_index)
    return {"none": out, "sum": out.sum(), "mean": out.mean()}[reduction]


def masks_afterwards(logits, targets, *, alpha, gamma, reduction="none", ignore_index=None):
    y = np.asarray(targets, dtype=float)
    keep = np.ones(y.shape) if ignore_index is None else (y != ignore_index).astype(float)
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits)))
    with np.errstate(all="ignore"):
        ce = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        m = y * (1 - p) + (1 - y) * p  # 3p - 1 at y = -1: negative, and m**gamma NaN for gamma < 1
        alpha_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
        out = alpha_t * m**gamma * ce * keep  # NaN * 0 = NaN
    return {"none": out, "sum": out.sum(), "mean": out.sum() / max(keep.sum(), 1)}[reduction]
"""


@pytest.fixture
def losses_module(tmp_path, monkeypatch):
    (tmp_path / "cli_losses.py").write_text(textwrap.dedent(LOSSES))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cli_losses", None)
    yield tmp_path
    sys.modules.pop("cli_losses", None)


def _rows(text):
    """{region: its line} of a printed report."""
    regions = (*REGIONS, *ARGUMENT_REGIONS)
    return {
        region: line
        for line in text.splitlines()
        for region in regions
        if line.startswith(region + " ") or line == region
    }


def test_arguments_flag_adds_the_argument_regions_and_torch_passes(capsys):
    code = main(["check", "focal_ref.torch:sigmoid_focal_loss", "--framework", "torch", "--arguments"])
    out = capsys.readouterr().out
    assert code == EXIT_PASSED, out
    rows = _rows(out)
    for region in ARGUMENT_REGIONS:
        assert region in rows and " pass" in rows[region], out
    code = main(
        ["check", "focal_ref.torch:sigmoid_focal_loss", "--framework", "torch", "--skip", "gradients"]
    )
    out = capsys.readouterr().out
    assert code == EXIT_PASSED and not set(ARGUMENT_REGIONS) & set(_rows(out)), out


def test_arguments_rows_are_skipped_for_a_loss_without_the_keywords(losses_module, capsys):
    code = main(["check", "cli_losses:plain", "--arguments"])
    out = capsys.readouterr().out
    rows = _rows(out)
    assert code == EXIT_PASSED, out
    for region in ARGUMENT_REGIONS:
        assert "skipped" in rows[region] and f"does not accept {region}" in rows[region], out


def test_arguments_flag_fails_a_mean_that_counts_ignored_elements(losses_module, capsys):
    code = main(["check", "cli_losses:counts_ignored", "--arguments"])
    out = capsys.readouterr().out
    rows = _rows(out)
    assert code == EXIT_FAILED, out
    assert "FAIL" in rows[IGNORE_INDEX], out
    assert "skipped" in rows[WEIGHT] and "skipped" in rows[POS_WEIGHT], out
    # without the flag the same loss passes: its fault is in the argument only
    assert main(["check", "cli_losses:counts_ignored"]) == EXIT_PASSED
    capsys.readouterr()


def test_arguments_flag_with_skip_and_softmax_usage_error(losses_module, capsys):
    code = main(["check", "cli_losses:counts_ignored", "--arguments", "--skip", IGNORE_INDEX])
    out = capsys.readouterr().out
    # the failing region is left out (the checker drops a skipped argument region from the table)
    assert code == EXIT_PASSED and "FAIL" not in _rows(out).get(IGNORE_INDEX, ""), out
    code = main(["check", "focal_ref:softmax_focal_loss", "--kind", "softmax", "--arguments"])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE and "--kind sigmoid" in captured.err and captured.out == ""
    with pytest.raises(SystemExit) as exc:  # argparse: an unknown region to skip
        main(["check", "focal_ref:sigmoid_focal_loss", "--skip", "no such region"])
    assert exc.value.code == EXIT_USAGE
    capsys.readouterr()


def test_command_line_arguments_flag_in_a_subprocess(losses_module):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0")
    done = subprocess.run(
        [sys.executable, "-m", "focal_ref", "check", "cli_losses:masks_afterwards", "--arguments"],
        cwd=losses_module,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "FAIL" in _rows(done.stdout)[IGNORE_INDEX], done.stdout
    assert (
        "--arguments"
        in subprocess.run(
            [sys.executable, "-m", "focal_ref", "check", "--help"], capture_output=True, text=True, env=env
        ).stdout
    )
