"""ECE and reliability data (focal_ref.detection.calibration); the baselines and calibration run configs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focal_ref.detection.calibration import N_BINS, expected_calibration_error, reliability


def _ece_loop(s, y, n_bins):
    """A plain loop over the bins: the definition, written out."""
    s, y = np.asarray(s, float), np.asarray(y, float)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (s >= lo) & ((s < hi) if b < n_bins - 1 else (s <= hi))
        if m.any():
            total += m.sum() / len(s) * abs(y[m].mean() - s[m].mean())
    return total


def test_hand_worked():
    # bin [0, .5): scores .1, .15 (mean .125), outcomes 0, 1 (freq .5): gap .375
    # bin [.5, 1]: scores .9, .95 (mean .925), outcomes 1, 1: gap .075; ECE = (2 * .375 + 2 * .075) / 4
    assert expected_calibration_error([0.1, 0.15, 0.9, 0.95], [0, 1, 1, 1], n_bins=2) == pytest.approx(0.225)


def test_perfectly_calibrated_bins_give_zero():
    s = np.array([0.3] * 10 + [0.8] * 5)
    y = np.array([1] * 3 + [0] * 7 + [1] * 4 + [0])
    assert expected_calibration_error(s, y) == pytest.approx(0.0, abs=1e-15)


def test_always_wrong_confident_gives_one():
    assert expected_calibration_error([1.0, 1.0, 0.0], [0, 0, 1]) == 1.0


def test_scores_on_an_edge_go_to_the_upper_bin():
    for n in range(1, 40):
        for b in range(n):
            r = reliability([b / n], [0], n_bins=n)
            assert r.count[b] == 1, (n, b)


def test_bin_edges_left_closed_and_one_in_last_bin():
    r = reliability([0.0, 0.5, 0.9999, 1.0], [0, 0, 1, 1], n_bins=2)
    assert r.count.tolist() == [1, 3]
    np.testing.assert_array_equal(r.edges, [0.0, 0.5, 1.0])
    r15 = reliability([1 / 15, 14 / 15], [0, 1])
    assert r15.count[1] == 1 and r15.count[14] == 1 and len(r15.count) == N_BINS


def test_empty_bins_are_nan_and_serialize_as_none():
    r = reliability([0.05, 0.95], [0, 1], n_bins=3)
    assert np.isnan(r.confidence[1]) and np.isnan(r.frequency[1]) and r.count[1] == 0
    d = r.to_dict()
    assert d["confidence"][1] is None and d["count"] == [1, 0, 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60),
    st.integers(1, 20),
)
def test_matches_the_definition(pairs, n_bins):
    s = [p for p, _ in pairs]
    y = [int(b) for _, b in pairs]
    ece = expected_calibration_error(s, y, n_bins)
    assert ece == pytest.approx(_ece_loop(s, y, n_bins), abs=1e-12)
    assert 0.0 <= ece <= 1.0
    r = reliability(s, y, n_bins)
    assert r.count.sum() == len(s)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_one_bin_is_the_gap_of_the_means(s):
    y = (np.arange(len(s)) % 2).astype(int)
    assert expected_calibration_error(s, y, 1) == pytest.approx(abs(y.mean() - np.mean(s)), abs=1e-12)


@pytest.mark.parametrize(
    ("scores", "outcomes", "n_bins", "match"),
    [
        ([0.5], [1, 0], 15, "same size"),
        ([], [], 15, "empty"),
        ([1.5], [1], 15, r"\[0, 1\]"),
        ([-0.1], [1], 15, r"\[0, 1\]"),
        ([float("nan")], [1], 15, "finite"),
        ([0.5], [2], 15, "0 or 1"),
        ([0.5], [1], 0, "n_bins"),
        ([0.5], [1], True, "n_bins"),
        ([0.5], [1], 2.0, "n_bins"),
    ],
)
def test_bad_input_raises(scores, outcomes, n_bins, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(scores, outcomes, n_bins)


def test_boolean_outcomes_accepted():
    assert expected_calibration_error([0.2, 0.7], [False, True]) == expected_calibration_error(
        [0.2, 0.7], [0, 1]
    )


def test_experiment_configs():
    from focal_ref.detection import sweeps

    base = sweeps.baseline_configs([0])
    assert [k["baseline"] for k, _ in base] == list(sweeps.BASELINES)
    by = {k["baseline"]: c for k, c in base}
    grid0 = dict(sweeps.grid_configs([0])[0][1].to_dict())
    for name, c in by.items():  # each baseline differs from a grid config only in its loss switches
        d = c.to_dict()
        for f in ("scenes", "anchors", "steps", "batch_size", "lr", "n_train", "n_test", "seed", "prior"):
            assert d[f] == grid0[f], (name, f)
        assert c.gamma == 0.0
    assert by["ohem_1_3"].ohem == 3 and by["ohem_no_ratio"].ohem == 0
    assert by["ce_class_inverse_frequency"].class_weight == "inverse_frequency"
    a = by["ce_fgbg_inverse_frequency"].alpha
    assert a is not None and 0.99 < a < 1.0  # about 1 : 177 background anchors per positive
    two = {
        k["seed"]: c.alpha
        for k, c in sweeps.baseline_configs([0, 1])
        if k["baseline"] == "ce_fgbg_inverse_frequency"
    }
    assert two[0] == a and two[1] != a  # each seed's own training set (regression: seed 0's alpha was reused)
    assert two[1] == sweeps.inverse_frequency_alpha(sweeps.grid_configs([1])[0][1])
    cal = sweeps.calibration_configs([0, 1])
    assert sorted({(k["gamma"], k["alpha"]) for k, _ in cal}) == sorted(sweeps.CALIBRATION_LOSSES)
    assert len(cal) == 2 * len(sweeps.CALIBRATION_LOSSES)


def test_calibration_record_on_a_short_run():
    from focal_ref.detection import sweeps, train
    from focal_ref.detection.train import label_scenes

    key, config = sweeps.calibration_configs([0])[0]
    config = config.replace(steps=2, n_train=16, n_test=4)
    rec = sweeps.run_calibration_one((key, config))
    _, test, anchors, _, _ = train._prepare(config.scenes, config.anchors, config.ignore_band, 0, 16, 4, 1000)
    labels, _ = label_scenes(test, anchors, config.ignore_band)
    k = len(config.scenes.classes)
    assert rec["n_scores"] == int((labels != -1).sum()) * k  # every non-ignored anchor, every class
    assert rec["positive_rate"] * rec["n_scores"] == pytest.approx(int((labels >= 0).sum()))
    assert sum(rec["reliability"]["count"]) == rec["n_scores"] and len(rec["reliability"]["count"]) == N_BINS
    assert 0 <= rec["ece"] <= 1 and "model" not in rec
    # after 2 steps the scores are still near the prior .01: ECE is about |prior - positive rate|
    assert rec["mean_score"] == pytest.approx(0.01, abs=0.01)
