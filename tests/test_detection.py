"""focal_ref.detection: anchor labelling, boxes, NMS, COCO AP, the loss, and a training run that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from focal_ref.detection import (
    BACKGROUND,
    IGNORE,
    AnchorConfig,
    DetectorConfig,
    SceneConfig,
    box_iou,
    coco_ap,
    decode,
    encode,
    label_anchors,
    make_anchors,
    make_scenes,
    nms,
    retinanet_loss,
    train_detector,
)
from focal_ref.detection.data import SPLITS, split_indices

GT = torch.tensor([[0.0, 0.0, 10.0, 10.0]])


def _strip(h: float) -> list[float]:
    """An anchor [0, 0, 10, h] inside GT: IoU with GT is exactly h / 10."""
    return [0.0, 0.0, 10.0, h]


# --- anchors and labelling ---------------------------------------------------------------------------


def test_make_anchors_layout_and_count():
    cfg = AnchorConfig(strides=(4, 8), sizes=(8.0, 16.0), scales=(1.0, 2.0), ratios=(0.5, 1.0, 2.0))
    a = make_anchors(32, cfg)
    assert a.shape == ((8 * 8 + 4 * 4) * 6, 4)
    # first location of level 1: centre (2, 2); ratio .5, scale 1: w = 8 / sqrt(.5), h = 8 * sqrt(.5)
    w, h = 8 / 0.5**0.5, 8 * 0.5**0.5
    torch.testing.assert_close(a[0], torch.tensor([2 - w / 2, 2 - h / 2, 2 + w / 2, 2 + h / 2]))
    # anchor 6 is the next column (x centre 6), same shape
    torch.testing.assert_close(a[6], a[0] + torch.tensor([4.0, 0.0, 4.0, 0.0]))
    # every anchor has height / width equal to its ratio
    wh = a[:, 2:] - a[:, :2]
    ratios = torch.tensor([0.5, 0.5, 1.0, 1.0, 2.0, 2.0]).repeat(8 * 8 + 4 * 4)
    torch.testing.assert_close(wh[:, 1] / wh[:, 0], ratios)


def test_box_iou_hand_values():
    a = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    b = torch.tensor([[5.0, 0, 15, 10], [0, 0, 10, 10], [40, 40, 50, 50]])
    expected = torch.tensor([[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(box_iou(a, b), expected)


def test_iou_band_positive_ignored_negative():
    # a perfect anchor, then anchors at IoU .5, .45, .39 and a far one; the perfect anchor is GT's best
    anchors = torch.tensor([_strip(10.0), _strip(5.0), _strip(4.5), _strip(3.9), [50.0, 50, 60, 60]])
    torch.testing.assert_close(box_iou(GT, anchors)[0], torch.tensor([1.0, 0.5, 0.45, 0.39, 0.0]))
    labels, matched = label_anchors(anchors, GT, torch.tensor([3]))
    assert labels.tolist() == [3, 3, IGNORE, BACKGROUND, BACKGROUND]
    assert matched[:2].tolist() == [0, 0]
    # without the band (neg_iou = pos_iou = .5) the .45 anchor is a negative
    labels, _ = label_anchors(anchors, GT, torch.tensor([3]), neg_iou=0.5)
    assert labels.tolist() == [3, 3, BACKGROUND, BACKGROUND, BACKGROUND]


def test_forced_best_anchor_makes_num_pos_count_every_object():
    # the second GT's best anchor has IoU .3 only: forced positive; the first GT's .45 anchor stays ignored
    gts = torch.tensor([[0.0, 0, 10, 10], [100.0, 100, 110, 110]])
    anchors = torch.tensor([_strip(10.0), _strip(4.5), [100.0, 100, 110, 103], [100.0, 100, 110, 102]])
    labels, matched = label_anchors(anchors, gts, torch.tensor([0, 1]))
    assert labels.tolist() == [0, IGNORE, 1, BACKGROUND]
    assert matched[2] == 1
    assert int((labels >= 0).sum()) == 2
    labels, _ = label_anchors(anchors, gts, torch.tensor([0, 1]), force_best=False)
    assert labels.tolist() == [0, IGNORE, BACKGROUND, BACKGROUND]


def test_two_objects_anchor_goes_to_higher_iou_and_no_gt_means_all_background():
    gts = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 6]])
    anchors = torch.tensor([_strip(6.0), _strip(10.0)])
    labels, matched = label_anchors(anchors, gts, torch.tensor([0, 1]))
    assert labels.tolist() == [1, 0] and matched.tolist() == [1, 0]
    labels, _ = label_anchors(anchors, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert labels.tolist() == [BACKGROUND, BACKGROUND]


def test_label_anchors_rejects_inverted_thresholds():
    with pytest.raises(ValueError, match="neg_iou"):
        label_anchors(GT, GT, torch.tensor([0]), pos_iou=0.4, neg_iou=0.5)


boxes_st = st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(0.5, 60), st.floats(0.5, 60)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(boxes_st, boxes_st), min_size=1, max_size=8))
def test_encode_decode_round_trip(pairs):
    anchors = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    boxes = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    deltas = encode(anchors, boxes)
    torch.testing.assert_close(decode(anchors, deltas, max_log_scale=10.0), boxes, rtol=1e-9, atol=1e-9)


def test_encode_hand_value_and_decode_caps_growth():
    torch.testing.assert_close(
        encode(torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[1.0, 0, 5, 8]])),
        torch.tensor([[0.25, 0.5, 0.0, float(np.log(2))]]),
    )
    big = decode(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[0.0, 0, 1e6, 1e6]]))
    assert torch.isfinite(big).all() and float(big[0, 2] - big[0, 0]) == pytest.approx(np.exp(4.0))


# --- NMS ------------------------------------------------------------------------------------------------


def test_nms_hand_case():
    boxes = torch.tensor(
        [[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 5], [50, 50, 60, 60], [51, 50, 61, 60]]
    )
    scores = torch.tensor([0.6, 0.9, 0.5, 0.4, 0.8])
    # 1 (0.9) suppresses 0 (IoU 81/119 = .68); 4 (0.8) suppresses 3 (IoU .82); 2 overlaps 0 at .5, 1 at .3
    assert nms(boxes, scores, 0.5).tolist() == [1, 4, 2]
    assert nms(boxes, scores, 0.25).tolist() == [1, 4]
    assert nms(boxes, scores, 0.9).tolist() == [1, 4, 0, 2, 3]


@settings(max_examples=100, deadline=None)
@given(st.lists(boxes_st, min_size=1, max_size=12), st.floats(0.1, 0.9), st.integers(0, 2**31 - 1))
def test_nms_properties(boxes, thr, seed):
    b = torch.tensor(boxes, dtype=torch.float64)
    s = torch.rand(len(boxes), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    keep = nms(b, s, thr)
    iou = box_iou(b, b)
    kept = set(keep.tolist())
    assert (s[keep][:-1] >= s[keep][1:]).all()
    for i in keep.tolist():  # no two kept boxes overlap beyond the threshold
        assert all(iou[i, j] <= thr for j in kept if j != i)
    for j in (
        set(range(len(boxes))) - kept
    ):  # every dropped box overlaps a kept box that scores at least as high
        assert any(iou[i, j] > thr and s[i] >= s[j] for i in kept)


# --- COCO AP ------------------------------------------------------------------------------------------


def test_coco_ap_perfect_prediction_is_one():
    gts = [np.array([[0.0, 0, 10, 10], [20, 20, 30, 34]]), np.array([[5.0, 5, 17, 12]])]
    labels = [np.array([0, 1]), np.array([1])]
    scores = [np.array([0.9, 0.8]), np.array([0.7])]
    ap = coco_ap(gts, labels, gts, scores, labels, num_classes=2)
    assert ap == pytest.approx({"AP": 1.0, "AP50": 1.0, "AP75": 1.0})


def test_coco_ap_shifted_box_counts_the_thresholds_it_passes():
    # IoU .78 passes the thresholds .50, .55, ..., .75 (6 of 10): AP .6, AP50 and AP75 1
    gt, dt = [np.array([[0.0, 0, 10, 10]])], [np.array([_strip(7.8)])]
    ap = coco_ap(gt, [np.array([0])], dt, [np.array([0.9])], [np.array([0])], num_classes=1)
    assert ap == pytest.approx({"AP": 0.6, "AP50": 1.0, "AP75": 1.0})
    # IoU .58 passes .50 and .55 only
    ap = coco_ap(gt, [np.array([0])], [np.array([_strip(5.8)])], [np.array([0.9])], [np.array([0])], 1)
    assert ap == pytest.approx({"AP": 0.2, "AP50": 1.0, "AP75": 0.0})


def test_coco_ap_wrong_class_and_no_detection_give_zero():
    gt, lab = [np.array([[0.0, 0, 10, 10]])], [np.array([0])]
    assert coco_ap(gt, lab, gt, [np.array([0.9])], [np.array([1])], 2)["AP"] == 0.0
    assert coco_ap(gt, lab, [np.zeros((0, 4))], [np.zeros(0)], [np.zeros(0, int)], 1) == {
        "AP": 0.0,
        "AP50": 0.0,
        "AP75": 0.0,
    }


def test_coco_ap_false_positive_ranked_first_halves_ap50():
    # two images, one object each; a confident false positive on image 0 outranks both true detections
    gts = [np.array([[0.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 10]])]
    lab = [np.array([0]), np.array([0])]
    dts = [np.array([[0.0, 0, 10, 10], [40, 40, 50, 50]]), np.array([[0.0, 0, 10, 10]])]
    ap = coco_ap(gts, lab, dts, [np.array([0.5, 0.9]), np.array([0.4])], [np.array([0, 0]), np.array([0])], 1)
    # interpolated precision is 2/3 at every recall up to 1: COCO's 101-point AP50 is 2/3
    assert ap["AP50"] == pytest.approx(2 / 3, abs=1e-9)


# --- data ---------------------------------------------------------------------------------------------


def test_digit_splits_are_disjoint_and_cover_the_data():
    parts = [set(split_indices(s).tolist()) for s in SPLITS]
    assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert len(set().union(*parts)) == 1797
    with pytest.raises(ValueError, match="split"):
        split_indices("dev")


def test_scenes_are_deterministic_and_boxes_lie_on_ink():
    cfg = SceneConfig(canvas=48)
    a, b = make_scenes(8, "train", 3, cfg), make_scenes(8, "train", 3, cfg)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, make_scenes(8, "train", 4, cfg).images)
    assert not np.array_equal(a.images, make_scenes(8, "test", 3, cfg).images)
    for img, boxes, labels in zip(a.images, a.boxes, a.labels, strict=False):
        assert len(boxes) == len(labels) >= 1 and set(labels.tolist()) <= {0, 1, 2}
        for x0, y0, x1, y1 in boxes.astype(int):
            assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48
            assert img[0, y0:y1, x0:x1].max() > 0.5  # the box holds ink
    empty = make_scenes(20, "val", 0, SceneConfig(empty=1.0))
    assert all(len(bx) == 0 for bx in empty.boxes)


# --- the loss -----------------------------------------------------------------------------------------


def test_retinanet_loss_masks_ignored_and_normalizes_by_num_pos():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    deltas = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    targets = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor(
        [[0, IGNORE, BACKGROUND, 2, BACKGROUND], [IGNORE, BACKGROUND, BACKGROUND, 1, IGNORE]]
    )
    cls, box, num_pos = retinanet_loss(
        logits, deltas, labels, targets, alpha=0.75, gamma=0.0, smooth_l1_beta=0.5
    )
    assert num_pos == 3
    onehot = torch.zeros(2, 5, 3, dtype=torch.float64)
    for (i, j), k in zip([(0, 0), (0, 3), (1, 3)], [0, 2, 1], strict=False):
        onehot[i, j, k] = 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    w = (0.75 * onehot + 0.25 * (1 - onehot)) * (labels != IGNORE).unsqueeze(-1)
    torch.testing.assert_close(cls, (w * bce).sum() / 3)
    pos = labels >= 0
    torch.testing.assert_close(
        box, torch.nn.functional.smooth_l1_loss(deltas[pos], targets[pos], beta=0.5, reduction="sum") / 3
    )
    cls.backward()
    assert (logits.grad[labels == IGNORE] == 0).all()


# --- training ----------------------------------------------------------------------------------------


def test_a_short_training_run_learns():
    cfg = DetectorConfig(
        scenes=SceneConfig(canvas=48, objects=(1, 2)), steps=200, n_train=256, n_test=100, seed=0
    )
    untrained = train_detector(cfg.replace(steps=0))
    trained = train_detector(cfg)
    assert untrained["AP50"] < 0.05
    assert trained["AP50"] > 0.2, trained  # chance (the untrained detector) is ~0
    assert trained["AP"] > untrained["AP"] + 0.08


def test_training_is_deterministic_on_cpu():
    cfg = DetectorConfig(steps=15, n_train=64, n_test=30, seed=5)
    a, b = train_detector(cfg), train_detector(cfg)
    assert (a["final_loss"], a["AP"]) == (b["final_loss"], b["AP"])
    for p, q in zip(a["model"].parameters(), b["model"].parameters(), strict=False):
        assert torch.equal(p, q)


def test_ohem_keeps_positives_and_the_hardest_negatives_at_one_to_three():
    from focal_ref.detection.train import _ohem_mask

    labels = torch.tensor(
        [[0, BACKGROUND, BACKGROUND, BACKGROUND, BACKGROUND, BACKGROUND, IGNORE, BACKGROUND]]
    )
    per_anchor = torch.tensor([[0.1, 0.5, 0.9, 0.2, 0.8, 0.7, 5.0, 0.05]])
    loss = torch.stack([per_anchor, torch.zeros_like(per_anchor)], -1)  # (1, M, K=2): summed over classes
    keep = _ohem_mask(loss, labels, DetectorConfig(ohem=3))
    assert keep[0].tolist() == [True, False, True, False, True, True, False, False]
    # without the ratio: the 3 hardest non-ignored anchors, whatever their label
    keep = _ohem_mask(loss, labels, DetectorConfig(ohem=0, ohem_batch=3))
    assert keep[0].tolist() == [False, False, True, False, True, True, False, False]


def test_inverse_frequency_class_weights():
    from focal_ref.detection.train import class_weights

    labels = torch.tensor([[0, 0, 0, 1, BACKGROUND, BACKGROUND, IGNORE, BACKGROUND]])  # 7 labelled anchors
    w = class_weights(labels, 2)
    raw = torch.tensor([7 / 3, 7 / 1])
    torch.testing.assert_close(w, raw / raw.mean())


def test_ohem_and_class_weighting_runs_train():
    cfg = DetectorConfig(steps=3, n_train=32, n_test=10, seed=1)
    for variant in (
        cfg.replace(ohem=3, gamma=0.0, alpha=None),
        cfg.replace(class_weight="inverse_frequency"),
    ):
        result = train_detector(variant)
        assert np.isfinite(result["final_loss"]) and 0.0 <= result["AP"] <= 1.0


# --- the "where FL wins" experiment --------------------------------------------------------------------


def _neg_per_pos(setting: str, n: int, seed: int = 0) -> float:
    from focal_ref.detection import sweeps
    from focal_ref.detection.train import anchor_stats, label_scenes

    scenes, anchors = sweeps.SETTINGS[setting]
    scenes_n = make_scenes(n, "train", seed, scenes)
    labels, _ = label_scenes(scenes_n, make_anchors(scenes.canvas, anchors), True)
    return anchor_stats(labels)["neg_per_pos"]


def test_the_ladders_top_rung_is_near_one_to_ten_thousand_and_above_sparser():
    top = _neg_per_pos("dense_sparsest", 768)
    assert 5_000 < top < 20_000, top  # ~1:10,000, the far end
    assert top > 3 * _neg_per_pos("sparser", 256)


def test_wins_configs_keep_the_stored_settings_and_add_the_top_rungs_run_length():
    from focal_ref.detection import sweeps

    for key, cfg in sweeps.wins_configs([0], sweeps.WINS_SETTINGS):  # the stored runs' configs, unchanged
        scenes, anchors = sweeps.SETTINGS[key["setting"]]
        base = DetectorConfig(scenes=scenes, anchors=anchors, ignore_band=key["ignore_band"])
        assert cfg == base.replace(gamma=key["gamma"], alpha=key["alpha"])
    top = sweeps.wins_configs([2], ["dense_sparsest"], (True,))
    assert len(top) == len(sweeps.WINS_LOSSES)
    assert all(c.n_train == 2048 and c.steps == 900 and c.anchors.strides == (2, 4, 8) for _, c in top)
    assert all(k["ignore_band"] and k["seed"] == 2 for k, _ in top)
    assert {k["ignore_band"] for k, _ in sweeps.wins_configs([0], ["one_object"], (True, False))} == {True}


def _record(setting, seed, gamma, alpha, ap, band=True, steps=300):
    key = {"setting": setting, "ignore_band": band, "gamma": gamma, "alpha": alpha, "seed": seed}
    return {"key": key, "config": {"steps": steps}, "AP": ap, "neg_per_pos": 100.0 + seed}


def test_wins_summary_pairs_seeds_against_the_alpha_best_on_the_mean():
    from focal_ref.detection import sweeps

    aps = {  # (gamma, alpha): AP on seeds 0, 1, 2
        (2.0, 0.25): (0.30, 0.20, 0.25),
        (2.0, 0.5): (0.10, 0.10, 0.10),
        (0.0, 0.75): (0.40, 0.00, 0.05),  # mean .15, best seed 0 only
        (0.0, 0.9): (0.20, 0.15, 0.16),  # mean .17: the best CE alpha
    }
    recs = [_record("s", seed, g, a, v[seed]) for (g, a), v in aps.items() for seed in range(3)]
    (row,) = sweeps.wins_summary(recs)
    assert row["best_ce_alpha"] == 0.9 and row["best_fl_alpha"] == 0.25 and row["seeds"] == [0, 1, 2]
    np.testing.assert_allclose(row["gain_fl_025_by_seed"], [0.10, 0.05, 0.09])
    np.testing.assert_allclose(row["gain_fl_025"], np.mean([0.10, 0.05, 0.09]))
    np.testing.assert_allclose(row["gain_fl_025_sd"], np.std([0.10, 0.05, 0.09]))
    assert row["neg_per_pos"] == 101.0 and row["steps"] == 300


def test_load_wins_merges_the_files_present_and_refuses_a_run_stored_twice(tmp_path):
    import json

    from focal_ref.detection import sweeps

    def write(name, recs):
        (tmp_path / name).write_text(json.dumps({"provenance": {"wall_s": 1.0}, "records": recs}))

    write("a.json", [_record("s", 0, 2.0, 0.25, 0.1)])
    write("b.json", [_record("s", 1, 2.0, 0.25, 0.2)])
    recs, prov = sweeps.load_wins(tmp_path, ["a.json", "missing.json", "b.json"])
    assert [r["key"]["seed"] for r in recs] == [0, 1] and list(prov) == ["a.json", "b.json"]
    write("c.json", [_record("s", 1, 2.0, 0.25, 0.3)])
    with pytest.raises(ValueError, match="stored twice"):
        sweeps.load_wins(tmp_path, ["a.json", "b.json", "c.json"])


def test_threshold_record_at_the_papers_threshold_is_the_training_runs_ap():
    from focal_ref.detection import sweeps

    key, cfg = sweeps.wins_configs([0], ["one_object"], (True,))[0]
    rec = sweeps.run_threshold_one((key, cfg.replace(steps=40, n_train=64, n_test=30)))
    at = rec["AP_at_threshold"]
    assert set(at) == {str(t) for t in sweeps.THRESHOLDS}
    assert at["0.05"]["AP"] == rec["AP"] and at["0.05"]["AP50"] == rec["AP50"]
    assert at["0.001"]["AP50"] >= at["0.05"]["AP50"] - 1e-12  # more detections, never fewer recalled
    q = rec["positive_score_quantiles"]
    assert 0.0 < q[0] <= q[1] <= q[2] <= rec["max_score"] <= 1.0


def test_each_stored_wins_file_holds_the_runs_wins_runs_names():
    import json
    from pathlib import Path

    from focal_ref.detection import sweeps

    results = Path(__file__).resolve().parent.parent / "book" / "tuning" / "results"
    for name, (seeds, names, bands) in sweeps.WINS_RUNS.items():
        payload = json.loads((results / name).read_text())
        expected = sweeps.wins_configs(seeds, names, bands)
        assert [r["key"] for r in payload["records"]] == [k for k, _ in expected], name
        assert [DetectorConfig.from_dict(r["config"]) for r in payload["records"]] == [c for _, c in expected]
        assert payload["provenance"]["seeds"] == list(seeds)
