"""The detector studies: normalization modes, the default's bits, Figure 4's cumulative-loss helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import focal_ref
from focal_ref import detection as det
from focal_ref.detection import studies
from focal_ref.detection.model import retinanet_loss
from focal_ref.distributed import PositiveNormalizer

RESULTS = Path(__file__).resolve().parent.parent / "book" / "tuning" / "results"


def _example():
    """One image, five anchors, K = 2: anchor 0 is class 1, 1 is class 0, 2 ignored, 3-4 background."""
    logits = torch.tensor([[[-1.0, 2.0], [0.5, -0.5], [3.0, 3.0], [-2.0, 1.0], [0.0, -3.0]]])
    labels = torch.tensor([[1, 0, -1, -2, -2]])
    deltas = torch.tensor([[[0.1, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]] + [[0.0] * 4] * 3])
    targets = torch.zeros(1, 5, 4)
    return logits, deltas, labels, targets


def _by_hand():
    """The summed focal term (float64 reference, ignored anchor left out) and the summed Smooth-L1."""
    logits, deltas, labels, targets = _example()
    y = np.array([[0, 1], [1, 0], [0, 0], [0, 0], [0, 0]], dtype=np.float64)
    fl = focal_ref.sigmoid_focal_loss(logits[0].double().numpy(), y, alpha=0.25, gamma=2.0)
    fl_sum = fl[[0, 1, 3, 4]].sum()  # anchor 2 is ignored
    beta = 1 / 9  # |0.1| < beta: 0.5 * 0.01 / beta; 0.5 >= beta: 0.5 - beta / 2
    box_sum = 0.5 * 0.1**2 / beta + (0.5 - 0.5 * beta)
    return fl_sum, box_sum


@pytest.mark.parametrize("mode", ["num_pos", "mean", "ema"])
def test_normalization_modes_by_hand(mode):
    logits, deltas, labels, targets = _example()
    fl_sum, box_sum = _by_hand()
    normalizer = PositiveNormalizer(momentum=0.9, initial=100.0) if mode == "ema" else None
    cls, box, n = retinanet_loss(logits, deltas, labels, targets, normalization=mode, normalizer=normalizer)
    assert n == 2
    # num_pos: 2 positive anchors; mean: 4 non-ignored anchors x 2 classes = 8 elements;
    # ema: 0.9 * 100 + 0.1 * 2 = 90.2 for the focal and the box term alike
    cls_div, box_div = {"num_pos": (2, 2), "mean": (8, 2), "ema": (90.2, 90.2)}[mode]
    np.testing.assert_allclose(float(cls), fl_sum / cls_div, rtol=1e-6)
    np.testing.assert_allclose(float(box), box_sum / box_div, rtol=1e-6)


def test_ema_keeps_its_state_across_steps():
    logits, deltas, labels, targets = _example()
    fl_sum, _ = _by_hand()
    normalizer = PositiveNormalizer(momentum=0.9, initial=100.0)
    values = []
    for _ in range(3):
        cls, _, _ = retinanet_loss(
            logits, deltas, labels, targets, normalization="ema", normalizer=normalizer
        )
        values.append(fl_sum / float(cls))
    expected, v = [], 100.0
    for _ in range(3):
        v = 0.9 * v + 0.1 * 2
        expected.append(v)
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_num_pos_default_unchanged_arithmetic():
    logits, deltas, labels, targets = _example()
    a = retinanet_loss(logits, deltas, labels, targets)
    b = retinanet_loss(logits, deltas, labels, targets, normalization="num_pos")
    assert float(a[0]) == float(b[0]) and float(a[1]) == float(b[1])


def test_bad_normalization():
    logits, deltas, labels, targets = _example()
    with pytest.raises(ValueError, match="normalization"):
        retinanet_loss(logits, deltas, labels, targets, normalization="sum")
    with pytest.raises(ValueError, match="normalizer"):
        retinanet_loss(logits, deltas, labels, targets, normalization="ema")
    with pytest.raises(ValueError, match="normalization"):
        det.DetectorConfig(normalization="median")


def test_old_records_read_as_num_pos():
    record = json.loads((RESULTS / "detection_grid.json").read_text())["records"][0]
    assert "normalization" not in record["config"]
    assert det.DetectorConfig.from_dict(record["config"]).normalization == "num_pos"


def test_default_bits_match_the_stored_record():
    """The stored one-object run (also tuning/07's live check) re-runs bit for bit, history recorded."""
    records = json.loads((RESULTS / "detection_wins.json").read_text())["records"]
    key = {"setting": "one_object", "ignore_band": True, "gamma": 2.0, "alpha": 0.25, "seed": 0}
    record = next(r for r in records if r["key"] == key)
    history: list[dict] = []
    live = det.train_detector(det.DetectorConfig.from_dict(record["config"]), history=history)
    for m in ("AP", "AP50", "AP75", "final_loss"):
        assert live[m] == record[m], m
    assert len(history) == record["config"]["steps"]
    assert all(h["divisor"] == h["num_pos"] for h in history)


def test_training_divisors_of_each_mode():
    base = det.DetectorConfig(steps=3, n_train=32, n_test=8, batch_size=4)
    hists = {}
    for mode in ("num_pos", "mean", "ema"):
        hists[mode] = []
        det.train_detector(base.replace(normalization=mode), history=hists[mode])
    counts = [h["num_pos"] for h in hists["num_pos"]]
    assert [h["num_pos"] for h in hists["ema"]] == counts  # same batches
    v, ema = 100.0, []
    for c in counts:
        v = 0.9 * v + 0.1 * max(c, 1)
        ema.append(v)
    np.testing.assert_allclose([h["divisor"] for h in hists["ema"]], ema, rtol=1e-12)
    k = len(base.scenes.classes)
    assert all(h["divisor"] > 10 * k * c for h, c in zip(hists["mean"], counts, strict=True))
    assert hists["num_pos"][0]["loss"] != hists["mean"][0]["loss"]


def test_loss_cdf_by_hand():
    loss = np.array([6.0, 1.0, 2.0, 1.0])  # sorted 1, 1, 2, 6 of total 10
    np.testing.assert_allclose(
        studies.loss_cdf(loss, np.array([0, 0.25, 0.5, 0.75, 1.0])), [0, 0.1, 0.2, 0.4, 1.0], rtol=1e-15
    )
    np.testing.assert_allclose(studies.loss_cdf(loss, np.array([0.125])), [0.05])  # linear between points
    assert studies.hardest_share(loss, 0.25) == pytest.approx(0.6)
    assert studies.hardest_share(loss, 0.5) == pytest.approx(0.8)
    assert studies.fraction_for_share(loss, 0.6) == pytest.approx(0.25)
    assert studies.fraction_for_share(loss, 0.8) == pytest.approx(0.5)
    assert studies.fraction_for_share(loss, 0.9) == pytest.approx(0.75)  # hardest first: 6, 2, 1, 1
    assert studies.fraction_for_share(loss, 0.85) == pytest.approx(0.625)  # linear between points
    rng = np.random.default_rng(0)
    x = rng.exponential(size=101)
    np.testing.assert_array_equal(studies.loss_cdf(x), studies.loss_cdf(rng.permutation(x)))
    cdf = studies.loss_cdf(x)
    assert cdf[0] == 0 and cdf[-1] == pytest.approx(1.0) and np.all(np.diff(cdf) >= 0)
    # a convex curve: the sorted losses rise, so the curve lies below the diagonal
    assert np.all(cdf <= studies.CDF_GRID + 1e-12)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [0.0, 0.0], [1.0, np.nan]])
def test_loss_cdf_rejects(bad):
    with pytest.raises(ValueError, match="loss"):
        studies.loss_cdf(np.array(bad))


def test_figure4_measure_by_hand():
    logits = np.array([2.0, -1.0, -4.0, 0.5, -6.0])
    targets = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    out = studies.figure4_measure(logits, targets, gammas=(0.0, 2.0))
    assert (out["n_pos"], out["n_neg"]) == (2, 3)
    ce = np.log1p(np.exp(-logits * (2 * targets - 1)))  # softplus(-x_t)
    neg = ce[2:]
    g0 = out["gammas"]["0"]
    np.testing.assert_allclose(g0["neg_cdf"], np.round(studies.loss_cdf(neg), 6))
    assert g0["neg_loss_share"] == pytest.approx(neg.sum() / ce.sum())
    p = 1 / (1 + np.exp(-logits[2:]))
    fl2 = p**2 * ce[2:]
    assert out["gammas"]["2"]["neg_top1"] == pytest.approx(studies.hardest_share(fl2, 0.01))
    # gamma = 2 concentrates the negatives' loss on the hardest (x = 0.5)
    assert out["gammas"]["2"]["neg_frac90"] < g0["neg_frac90"]


def test_trace_summary_and_expected_first_loss():
    step = {"box_loss": 0.0, "num_pos": 1, "divisor": 1.0, "cls_loss": 1.0}
    h = [dict(step, loss=v, grad_norm=g) for v, g in ((5.0, 50.0), (float("nan"), 1.0), (1.0, 2.0))]
    s = studies.trace_summary(h, early=2)
    assert s["diverged"] and s["loss_max"] == 5.0 and s["clipped_fraction"] == pytest.approx(1 / 3)
    # prior .01: the negatives' term per positive is (1 - r) / r * -log(.99)
    r = 0.001
    expected = -np.log(0.01) + (1 - r) / r * -np.log(0.99)
    assert studies.expected_first_loss(r, 0.01, None, 0.0) == pytest.approx(expected)


def test_study_configs():
    prior = studies.prior_configs([0, 1, 2])
    assert len(prior) == 2 * 2 * 3 + 2 * 2 * 2  # the lr probe on the first two seeds
    assert {k["seed"] for k, c in prior if c.lr != studies.PRIOR_LRS[0]} == {0, 1}
    assert {c.prior for _, c in prior} == {0.01, None}
    norm = studies.normalization_configs([0])
    assert sorted({c.normalization for _, c in norm}) == ["ema", "mean", "num_pos"]
    # the num_pos rows are the grid's configs: same arithmetic as the stored grid runs
    from focal_ref.detection import sweeps

    grid = {(k["gamma"], k["alpha"], k["seed"]): c for k, c in sweeps.grid_configs([0])}
    for k, c in norm:
        if k["normalization"] == "num_pos":
            assert c == grid[(k["gamma"], k["alpha"], k["seed"])]
