"""The detector's baselines (the paper's Table 1d: OHEM; inverse-frequency weighting), its calibration
experiment and the score-threshold check: configurations and per-run record makers.

Each maps (key, :class:`~focal_ref.detection.train.DetectorConfig`) to a record for
:func:`focal_ref.detection.sweeps.run_experiment`; ``scripts/run_detection_experiments.py`` runs them and
the book's tuning pages read the stored results (Lin et al. 2017, https://arxiv.org/abs/1708.02002).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from focal_ref.detection.train import DetectorConfig, train_detector

BASELINES: dict[str, dict] = {
    # plain CE (no alpha, no sampling): what OHEM and the class weights change
    "ce_plain": {"gamma": 0.0, "alpha": None},
    # the paper's Table 1d: OHEM with plain CE (no alpha), 1:3 negatives per positive or a fixed budget
    "ohem_1_3": {"gamma": 0.0, "alpha": None, "ohem": 3},
    "ohem_no_ratio": {"gamma": 0.0, "alpha": None, "ohem": 0, "ohem_batch": 128},
    # CE weighted by inverse frequency: of the K object classes (the existing switch), or of
    # foreground / background (alpha = negatives / all labelled anchors of the training set, per seed)
    "ce_class_inverse_frequency": {"gamma": 0.0, "alpha": None, "class_weight": "inverse_frequency"},
    "ce_fgbg_inverse_frequency": {"gamma": 0.0, "alpha": "inverse_frequency"},
}
"""The baselines of the paper's Table 1d and inverse-frequency weighting, as changes to a grid config."""
CALIBRATION_LOSSES: tuple[tuple[float, float], ...] = ((0.0, 0.75), (1.0, 0.25), (2.0, 0.25), (5.0, 0.25))
"""(gamma, alpha) of the calibration experiment: the best CE alpha of the grid, and FL at gamma 1, 2, 5."""


def _prepared(config: DetectorConfig) -> tuple:
    """Training scenes, test scenes, anchors, training labels and box targets of ``config`` (cached)."""
    from focal_ref.detection import train

    test_seed = config.seed + 1000 if config.test_seed is None else config.test_seed
    args = (config.ignore_band, config.seed, config.n_train, config.n_test, test_seed)
    return train._prepare(config.scenes, config.anchors, *args)


def inverse_frequency_alpha(config: DetectorConfig) -> float:
    """Negative anchors / (negative + positive anchors) of ``config``'s training scenes."""
    labels = _prepared(config)[3]
    n_pos, n_neg = int((labels >= 0).sum()), int((labels == -2).sum())
    return n_neg / (n_neg + n_pos)


def baseline_configs(seeds: Sequence[int], setting: str = "one_object") -> list[tuple[dict, DetectorConfig]]:
    """(key, config) of every baseline run: the grid's config with a :data:`BASELINES` change."""
    from focal_ref.detection.sweeps import SETTINGS  # sweeps re-exports this module: at call time

    scenes, anchors = SETTINGS[setting]
    runs = []
    for name, change in BASELINES.items():
        for s in seeds:
            config = DetectorConfig(scenes=scenes, anchors=anchors, seed=s)
            fields = dict(change)
            if fields.get("alpha") == "inverse_frequency":
                fields["alpha"] = inverse_frequency_alpha(config)
            runs.append(({"setting": setting, "baseline": name, "seed": s}, config.replace(**fields)))
    return runs


def calibration_configs(
    seeds: Sequence[int], setting: str = "one_object"
) -> list[tuple[dict, DetectorConfig]]:
    """(key, config) of the calibration runs: the grid's configs of :data:`CALIBRATION_LOSSES`."""
    from focal_ref.detection.sweeps import grid_configs  # sweeps re-exports this module: at call time

    return [(k, c) for k, c in grid_configs(seeds, setting) if (k["gamma"], k["alpha"]) in CALIBRATION_LOSSES]


def anchor_scores_on_test(config: DetectorConfig, model) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores (n, K) and 0/1 outcomes (n, K) of every non-ignored anchor of the test scenes."""
    import torch

    from focal_ref.detection import train

    _, test, anchors, _, _ = _prepared(config)
    labels, _ = train.label_scenes(test, anchors, config.ignore_band)
    with torch.no_grad():
        logits = torch.cat(
            [model(torch.from_numpy(test.images[i : i + 50]))[0] for i in range(0, len(test), 50)]
        )
    keep = labels != -1
    k = logits.shape[-1]
    onehot = torch.zeros_like(logits)
    pos = labels >= 0
    onehot[pos] = torch.nn.functional.one_hot(labels[pos], k).to(logits.dtype)
    return torch.sigmoid(logits[keep]).double().numpy(), onehot[keep].numpy().astype(np.int64)


def run_calibration_one(item: tuple[dict, DetectorConfig]) -> dict:
    """Train one config; its record plus the ECE and reliability data of its test-scene anchor scores."""
    from focal_ref.detection.calibration import expected_calibration_error, reliability

    key, config = item
    result = train_detector(config)
    scores, outcomes = anchor_scores_on_test(config, result.pop("model"))
    top = scores >= 0.05  # the scores the detector keeps as detections (postprocess's threshold)
    cal = {
        "ece": expected_calibration_error(scores, outcomes),
        "ece_above_005": expected_calibration_error(scores[top], outcomes[top]) if top.any() else None,
        "ece_positives": expected_calibration_error(scores[outcomes == 1], outcomes[outcomes == 1]),
        "mean_score": float(scores.mean()),
        "positive_rate": float(outcomes.mean()),
        "n_scores": int(scores.size),
        "n_above_005": int(top.sum()),
        "reliability": reliability(scores, outcomes).to_dict(),
    }
    return {"key": key, "config": config.to_dict(), **result, **cal}


THRESHOLDS = (0.05, 0.001)
"""Score thresholds of the threshold check: the paper's .05 (§4, "Inference") and a low one."""
THRESHOLD_LOSSES: tuple[tuple[float, float], ...] = ((2.0, 0.25), (0.0, 0.99))
"""(gamma, alpha) of the threshold check: the paper's FL and the top rung's best CE alpha."""


def run_threshold_one(item: tuple[dict, DetectorConfig]) -> dict:
    """Train one config; its record plus COCO AP at each of :data:`THRESHOLDS` and its test scores.

    A loss that leaves every score of a rare class under .05 gets AP 0 at the paper's threshold however
    well it ranks; the low threshold tells the two apart (Chen et al. 2019, arXiv 1909.04868, set the
    threshold per class for this reason).
    """
    import torch

    from focal_ref.detection import train
    from focal_ref.detection.inference import postprocess
    from focal_ref.detection.metrics import coco_ap

    key, config = item
    result = train_detector(config)
    model = result.pop("model")
    _, test, anchors, _, _ = _prepared(config)
    model.eval()
    with torch.no_grad():
        outs = [model(torch.from_numpy(test.images[i : i + 50])) for i in range(0, len(test), 50)]
    logits, deltas = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    at = {}
    for thr in THRESHOLDS:
        dets: tuple[list, list, list] = ([], [], [])
        for lg, dl in zip(logits, deltas, strict=True):
            for out, v in zip(dets, postprocess(lg, dl, anchors, score_threshold=thr), strict=True):
                out.append(v.numpy())
        at[str(thr)] = coco_ap(test.boxes, test.labels, *dets, num_classes=len(test.config.classes))
    labels, _ = train.label_scenes(test, anchors, config.ignore_band)
    pos = labels >= 0
    scores = torch.sigmoid(logits)
    pos_scores = scores[pos].gather(1, labels[pos][:, None])[:, 0].double().numpy()
    return {
        "key": key,
        "config": config.to_dict(),
        **result,
        "AP_at_threshold": at,
        "max_score": float(scores.max()),
        "positive_score_quantiles": [float(q) for q in np.quantile(pos_scores, (0.5, 0.9, 1.0))],
    }
