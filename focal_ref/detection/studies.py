"""The detector studies of the tuning pages: prior initialization, loss normalization and Figure 4.

Lin et al. 2017 (https://arxiv.org/abs/1708.02002) make three claims these studies re-measure on the tiny
RetinaNet of :mod:`focal_ref.detection`:

* §3.3/§4.1: the prior bias ``b = -log((1 - pi) / pi)`` of the class head stabilizes training; plain cross
  entropy without it diverges. :func:`prior_configs` trains with and without it, at two learning rates.
* §4.1: the summed loss is divided by the number of positive anchors; Detectron2 by a moving average of it.
  :func:`normalization_configs` compares ``num_pos``, ``mean`` and ``ema``.
* §5.1, Figure 4: in a converged γ = 2 model most of the negatives' loss comes from a few hard negatives.
  :func:`figure4_record` measures the normalized cumulative loss of a trained detector's test anchors,
  with :func:`loss_cdf` and :func:`hardest_share`.

``scripts/run_detection_studies.py`` runs them and writes ``book/tuning/results/studies_*.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from focal_ref.detection import sweeps, train
from focal_ref.detection.train import DetectorConfig

SETTING = "one_object"
"""The scenes of every study: the gamma x alpha grid's (its stored runs are the ``num_pos`` rows here)."""
STUDY_LOSSES: tuple[tuple[float, float], ...] = ((2.0, 0.25), (0.0, 0.75))
"""(gamma, alpha): the paper's focal loss and the grid's best alpha-balanced cross entropy."""
PRIORS: tuple[float | None, ...] = (0.01, None)
PRIOR_LRS: tuple[float, ...] = (3e-3, 3e-2)
"""The default learning rate and ten times it (the instability probe)."""
EARLY_STEPS = 20
FIG4_GAMMAS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
CDF_GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 201), 1.0 - np.logspace(-5, -1, 41)])
"""The fractions the stored cumulative curves are sampled at: uniform, and dense near 1 (the hard tail)."""


def _base(seed: int, gamma: float, alpha: float, **changes) -> DetectorConfig:
    scenes, anchors = sweeps.SETTINGS[SETTING]
    return DetectorConfig(scenes=scenes, anchors=anchors, gamma=gamma, alpha=alpha, seed=seed, **changes)


def prior_configs(
    seeds: Sequence[int], lrs: Sequence[float] = PRIOR_LRS, probe_seeds: int = 2
) -> list[tuple[dict, DetectorConfig]]:
    """(key, config) of the prior study: each loss of :data:`STUDY_LOSSES`, prior .01 or none, per lr.

    The first learning rate runs every seed; the others (the instability probe) the first ``probe_seeds``.
    """
    return [
        (
            {"study": "prior", "gamma": g, "alpha": a, "prior": p, "lr": lr, "seed": s},
            _base(s, g, a, prior=p, lr=lr),
        )
        for i, lr in enumerate(lrs)
        for g, a in STUDY_LOSSES
        for p in PRIORS
        for s in (seeds if i == 0 else seeds[:probe_seeds])
    ]


def normalization_configs(seeds: Sequence[int]) -> list[tuple[dict, DetectorConfig]]:
    """(key, config) of the normalization study: each loss, each of ``num_pos``, ``mean``, ``ema``."""
    return [
        (
            {"study": "normalization", "gamma": g, "alpha": a, "normalization": n, "seed": s},
            _base(s, g, a, normalization=n),
        )
        for g, a in STUDY_LOSSES
        for n in train.NORMALIZATIONS
        for s in seeds
    ]


def figure4_configs(seeds: Sequence[int]) -> list[tuple[dict, DetectorConfig]]:
    """(key, config) of the trained models Figure 4 is measured on: FL (γ 2, α .25) and CE (α .75)."""
    return [
        ({"study": "figure4", "gamma": g, "alpha": a, "seed": s}, _base(s, g, a))
        for g, a in STUDY_LOSSES
        for s in seeds
    ]


def _cv(x: np.ndarray) -> float:
    return float(x.std() / x.mean()) if x.size and x.mean() else float("nan")


def trace_summary(history: Sequence[dict], early: int = EARLY_STEPS) -> dict:
    """Scalars of a training history: first and early loss, peaks, divergence, gradient and divisor.

    Example:
        >>> step = {"box_loss": 1.0, "num_pos": 2, "divisor": 2.0}
        >>> h = [dict(step, loss=4.0, cls_loss=3.0, grad_norm=20.0)]
        >>> h.append(dict(step, loss=2.0, cls_loss=1.5, grad_norm=5.0))
        >>> s = trace_summary(h, early=2)
        >>> s["loss_step0"], s["loss_early_mean"], s["clipped_fraction"], s["diverged"]
        (4.0, 3.0, 0.5, False)
    """
    loss = np.array([h["loss"] for h in history], dtype=np.float64)
    grad = np.array([h["grad_norm"] for h in history], dtype=np.float64)
    div = np.array([h["divisor"] for h in history], dtype=np.float64)
    finite = np.isfinite(loss)
    return {
        "loss_step0": float(loss[0]),
        "cls_loss_step0": float(history[0]["cls_loss"]),
        "loss_early_mean": float(np.mean(loss[:early])),
        "loss_early_max": float(np.max(loss[:early])),
        "loss_max": float(np.max(loss[finite])) if finite.any() else float("nan"),
        "diverged": bool(not finite.all()),
        "grad_norm_step0": float(grad[0]),
        "grad_norm_median": float(np.median(grad)),
        "grad_norm_max": float(np.max(grad)),
        "clipped_fraction": float(np.mean(grad > 10.0)),
        "divisor_median": float(np.median(div)),
        "divisor_cv": _cv(div[early:]) if div.size > early else _cv(div),
        "num_pos_cv": _cv(np.array([h["num_pos"] for h in history], dtype=np.float64)),
    }


def run_traced(item: tuple[dict, DetectorConfig]) -> dict:
    """Train one config with its history: the record of :func:`sweeps.run_configs`, its trace summary
    and the per-step curves (``curves``: loss, class loss, gradient norm and divisor, 6 digits)."""
    key, config = item
    history: list[dict] = []
    result = train.train_detector(config, history=history)
    result.pop("model")
    curves = {
        name: [float(f"{h[field]:.6g}") for h in history]
        for name, field in (
            ("loss", "loss"),
            ("cls_loss", "cls_loss"),
            ("grad_norm", "grad_norm"),
            ("divisor", "divisor"),
        )
    }
    return {"key": key, "config": config.to_dict(), **result, **trace_summary(history), "curves": curves}


def loss_cdf(loss: np.ndarray, grid: np.ndarray = CDF_GRID) -> np.ndarray:
    """Lin et al. 2017, Fig. 4: the cumulative normalized loss at the sample fractions ``grid``.

    The losses are sorted from lowest to highest and their running sum divided by the total; the curve
    through the points (i / n, sum of the i smallest / total), i = 0..n, is interpolated linearly.

    Args:
        loss: per-sample losses, finite and non-negative with a positive sum.
        grid: fractions in [0, 1] to sample the curve at.

    Returns:
        The cumulative share at each fraction of ``grid`` (0 at 0, 1 at 1).

    Raises:
        ValueError: an empty, non-finite or negative loss, or a zero sum.

    Example:
        >>> loss_cdf(np.array([3.0, 1.0]), np.array([0.0, 0.5, 0.75, 1.0])).tolist()
        [0.0, 0.25, 0.625, 1.0]
    """
    x = np.sort(np.asarray(loss, dtype=np.float64).ravel())
    if x.size == 0 or not np.all(np.isfinite(x)) or x[0] < 0 or x.sum() <= 0:
        raise ValueError("loss must be a non-empty array of finite, non-negative values with a positive sum")
    cum = np.r_[0.0, np.cumsum(x)] / x.sum()
    return np.interp(grid, np.arange(x.size + 1) / x.size, cum)


def hardest_share(loss: np.ndarray, top: float) -> float:
    """The share of the total loss carried by the hardest ``top`` fraction of the samples.

    Example:
        >>> hardest_share(np.array([1.0, 1.0, 2.0, 6.0]), 0.25)
        0.6
    """
    return 1.0 - float(loss_cdf(loss, np.array([1.0 - top]))[0])


def fraction_for_share(loss: np.ndarray, share: float) -> float:
    """The smallest fraction of the hardest samples that carries ``share`` of the total loss.

    Example:
        >>> fraction_for_share(np.array([1.0, 1.0, 2.0, 6.0]), 0.6)
        0.25
    """
    x = np.sort(np.asarray(loss, dtype=np.float64).ravel())[::-1]
    cum = np.r_[0.0, np.cumsum(x)] / x.sum()
    return float(np.interp(share, cum, np.arange(x.size + 1) / x.size))


def scene_logits(config: DetectorConfig, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Float64 logits and 0/1 targets of every non-ignored anchor x class element of the test scenes."""
    test_seed = config.seed + 1000 if config.test_seed is None else config.test_seed
    _, test, anchors, _, _ = train._prepare(
        config.scenes,
        config.anchors,
        config.ignore_band,
        config.seed,
        config.n_train,
        config.n_test,
        test_seed,
    )
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
    return logits[keep].double().numpy().ravel(), onehot[keep].double().numpy().ravel()


def figure4_measure(logits: np.ndarray, targets: np.ndarray, gammas: Sequence[float] = FIG4_GAMMAS) -> dict:
    """Figure 4's curves and shares of one model's test elements at each γ (α left out: per class a constant).

    Returns:
        ``{"n_pos", "n_neg", "grid", "gammas": {str(gamma): {"pos_cdf", "neg_cdf", "pos_top20",
        "neg_top1", "neg_top10", "neg_frac90", "pos_frac50"}}}`` (the shares from the full loss vectors).
    """
    from focal_ref import sigmoid_focal_loss

    pos = targets == 1
    out: dict = {"n_pos": int(pos.sum()), "n_neg": int((~pos).sum()), "grid": CDF_GRID.tolist(), "gammas": {}}
    for g in gammas:
        loss = np.asarray(sigmoid_focal_loss(logits, targets, alpha=None, gamma=g), dtype=np.float64)
        lp, ln = loss[pos], loss[~pos]
        out["gammas"][f"{g:g}"] = {
            "pos_cdf": [round(float(v), 6) for v in loss_cdf(lp)],
            "neg_cdf": [round(float(v), 6) for v in loss_cdf(ln)],
            "pos_top20": hardest_share(lp, 0.2),
            "pos_frac50": fraction_for_share(lp, 0.5),
            "neg_top1": hardest_share(ln, 0.01),
            "neg_top10": hardest_share(ln, 0.1),
            "neg_frac90": fraction_for_share(ln, 0.9),
            "neg_loss_share": float(ln.sum() / loss.sum()),
        }
    return out


def figure4_record(item: tuple[dict, DetectorConfig]) -> dict:
    """Train one config and measure Figure 4 on its test scenes: the record of :func:`sweeps.run_configs`
    plus ``figure4`` (:func:`figure4_measure`) and the quartiles of the positives' probability."""
    key, config = item
    result = train.train_detector(config)
    logits, targets = scene_logits(config, result.pop("model"))
    p_pos = 1.0 / (1.0 + np.exp(-logits[targets == 1]))
    quart = [float(q) for q in np.percentile(p_pos, [25, 50, 75])]
    return {
        "key": key,
        "config": config.to_dict(),
        **result,
        "figure4": figure4_measure(logits, targets),
        "pos_p_quartiles": quart,
    }


def expected_first_loss(pos_rate: float, prior: float | None, alpha: float | None, gamma: float) -> float:
    """The first step's focal term per positive when every logit equals the initial bias (weights σ = .01).

    ``alpha_1 (1 - p0)^γ (-log p0) + (1 - r) / r * alpha_0 p0^γ (-log(1 - p0))`` with p0 = sigmoid(b), r the
    share of positive elements among the non-ignored anchor x class elements.

    Example:
        >>> round(expected_first_loss(0.01, None, None, 0.0), 3)
        69.315
    """
    b = 0.0 if prior is None else -math.log((1 - prior) / prior)
    p0 = 1.0 / (1.0 + math.exp(-b))
    a1, a0 = (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)
    pos_term = a1 * (1 - p0) ** gamma * -math.log(p0)
    neg_term = a0 * p0**gamma * -math.log1p(-p0)
    return pos_term + (1 - pos_rate) / pos_rate * neg_term
