"""Training and evaluating the tiny detector: one function from a :class:`DetectorConfig` to COCO AP.

Deterministic on CPU: the same config (seed included) gives the same weights and the same AP, with one
thread and ``torch.use_deterministic_algorithms``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from focal_ref.detection.anchors import AnchorConfig, encode, label_anchors, make_anchors
from focal_ref.detection.data import SceneConfig, Scenes, make_scenes
from focal_ref.detection.inference import postprocess
from focal_ref.detection.metrics import coco_ap
from focal_ref.detection.model import NORMALIZATIONS, TinyRetinaNet, retinanet_loss
from focal_ref.distributed import PositiveNormalizer


@dataclass(frozen=True)
class DetectorConfig:
    """Everything one training run depends on.

    Args:
        scenes: the scene layout; anchors: the anchor layout.
        alpha, gamma: the classification loss (``gamma=0``: alpha-balanced cross entropy).
        ignore_band: label anchors with .4 <= IoU < .5 as ignored (the paper); ``False``: negative.
        prior: the class head's prior (``None``: bias 0).
        class_weight: ``"inverse_frequency"`` weights each class's terms by (anchors / positives of that
            class) / mean, measured on the training set; ``None``: no weighting.
        ohem: ``None``, or the number of negatives kept per positive (3 in the paper's Table 1d), the
            hardest by loss; ``0`` keeps a fixed budget of ``ohem_batch`` hardest anchors of any label.
        steps, batch_size, lr, weight_decay: Adam with decoupled weight decay (AdamW); gradient norm clipped.
        n_train, n_test: scenes drawn from the train and test digit pools.
        seed: seeds the weights, the batch order and the training scenes; the test scenes use ``seed + 1000``
            unless ``test_seed`` is given.
        normalization: what the summed losses are divided by: ``"num_pos"`` (the paper's positive count;
            the default, whose arithmetic the stored results were made with), ``"mean"`` (the focal term
            averaged over the non-ignored anchor x class elements) or ``"ema"`` (Detectron2's moving
            average of num_pos, momentum .9 from 100); see :func:`~focal_ref.detection.model.retinanet_loss`.
    """

    scenes: SceneConfig = field(default_factory=SceneConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    alpha: float | None = 0.25
    gamma: float = 2.0
    ignore_band: bool = True
    prior: float | None = 0.01
    class_weight: str | None = None
    ohem: int | None = None
    ohem_batch: int = 128
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 32
    n_train: int = 512
    n_test: int = 200
    seed: int = 0
    test_seed: int | None = None
    normalization: str = "num_pos"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")

    def replace(self, **changes) -> DetectorConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists); :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DetectorConfig:
        """The config a :meth:`to_dict` dict describes.

        Example:
            >>> c = DetectorConfig(gamma=0.0, alpha=0.75)
            >>> DetectorConfig.from_dict(c.to_dict()) == c
            True
        """

        def tuples(sub: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}

        d = dict(d)
        scenes, anchors = SceneConfig(**tuples(d.pop("scenes"))), AnchorConfig(**tuples(d.pop("anchors")))
        return cls(scenes=scenes, anchors=anchors, **d)


def set_determinism(seed: int) -> None:
    """One CPU thread, deterministic algorithms, and ``torch.manual_seed(seed)``."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)


def label_scenes(
    scenes: Scenes, anchors: torch.Tensor, ignore_band: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels (N, M) and encoded box targets (N, M, 4) of every anchor of every scene."""
    labels, targets = [], []
    for boxes, classes in zip(scenes.boxes, scenes.labels, strict=False):
        gt = torch.from_numpy(boxes)
        lab, matched = label_anchors(
            anchors, gt, torch.from_numpy(classes), neg_iou=0.4 if ignore_band else 0.5
        )
        t = torch.zeros(len(anchors), 4)
        if len(gt):
            pos = lab >= 0
            t[pos] = encode(anchors[pos], gt[matched[pos]])
        labels.append(lab)
        targets.append(t)
    return torch.stack(labels), torch.stack(targets)


def anchor_stats(labels: torch.Tensor) -> dict[str, float]:
    """Positives, ignored and negatives per image, and negatives per positive (anchor x class pairs)."""
    n = labels.shape[0]
    pos = float((labels >= 0).sum()) / n
    ign = float((labels == -1).sum()) / n
    neg_anchor = float((labels == -2).sum()) / n
    return {
        "pos_per_image": pos,
        "ignored_per_image": ign,
        "neg_anchors_per_image": neg_anchor,
        "neg_per_pos": neg_anchor / max(pos, 1e-9),
    }


def _ohem_mask(cls_loss: torch.Tensor, labels: torch.Tensor, config: DetectorConfig) -> torch.Tensor:
    """Which anchors OHEM keeps: all positives and the hardest negatives (per anchor: summed over classes)."""
    assert config.ohem is not None
    per_anchor = cls_loss.detach().sum(-1).masked_fill(labels == -1, -1.0)
    keep = torch.zeros_like(labels, dtype=torch.bool)
    for i in range(labels.shape[0]):
        pos = labels[i] >= 0
        if config.ohem == 0:
            n = min(config.ohem_batch, int((labels[i] != -1).sum()))
            keep[i, torch.topk(per_anchor[i], n).indices] = True
        else:
            keep[i] |= pos
            neg_loss = per_anchor[i].masked_fill(labels[i] != -2, -1.0)
            n = min(config.ohem * max(int(pos.sum()), 1), int((labels[i] == -2).sum()))
            keep[i, torch.topk(neg_loss, n).indices] = True
    return keep


def _divisor(
    config: DetectorConfig, labels: torch.Tensor, num_pos: int, ema: PositiveNormalizer | None
) -> float:
    """What this step's focal term was divided by (for the history)."""
    if config.normalization == "mean":
        return float(max(int((labels != -1).sum()) * len(config.scenes.classes), 1))
    if ema is not None:
        return ema.value
    return float(num_pos)


@torch.no_grad()
def evaluate(
    model: TinyRetinaNet, scenes: Scenes, anchors: torch.Tensor, batch_size: int = 50
) -> dict[str, float]:
    """COCO AP / AP50 / AP75 of ``model`` on ``scenes``."""
    model.eval()
    dets: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for start in range(0, len(scenes), batch_size):
        logits, deltas = model(torch.from_numpy(scenes.images[start : start + batch_size]))
        for lg, dl in zip(logits, deltas, strict=False):
            for out, v in zip(dets, postprocess(lg, dl, anchors), strict=False):
                out.append(v.numpy())
    model.train()
    return coco_ap(scenes.boxes, scenes.labels, *dets, num_classes=len(scenes.config.classes))


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights of the K classes (positives of each class among labelled anchors), mean 1."""
    counts = torch.stack([(labels == k).sum() for k in range(num_classes)]).double().clamp(min=1)
    w = (labels != -1).sum().double() / counts
    return (w / w.mean()).float()


@lru_cache(maxsize=2)
def _prepare(
    scenes: SceneConfig,
    anchor_config: AnchorConfig,
    ignore_band: bool,
    seed: int,
    n_train: int,
    n_test: int,
    test_seed: int,
) -> tuple[Scenes, Scenes, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scenes, anchors and labels of a run (cached: runs that differ only in the loss share them)."""
    train = make_scenes(n_train, "train", seed, scenes)
    test = make_scenes(n_test, "test", test_seed, scenes)
    anchors = make_anchors(scenes.canvas, anchor_config)
    labels, box_targets = label_scenes(train, anchors, ignore_band)
    return train, test, anchors, labels, box_targets


def train_detector(
    config: DetectorConfig, progress: Iterable | None = None, history: list[dict] | None = None
) -> dict:
    """Train one detector from scratch and measure it on the test scenes.

    Args:
        config: the run.
        progress: an iterable over the step indices to use instead of ``range(config.steps)`` (e.g. a
            progress bar wrapping it).
        history: a list to append one dict a step to: ``loss``, ``cls_loss``, ``box_loss``, ``num_pos``,
            ``divisor`` (what the focal term was divided by) and ``grad_norm`` (before clipping).
            Recording changes no arithmetic.

    Returns:
        A dict: ``AP``, ``AP50``, ``AP75`` (COCOeval on the test scenes), the training anchor statistics
        (``neg_per_pos`` ...), ``final_loss`` (mean of the last 20 steps), ``wall_s`` and ``model`` (the
        trained :class:`TinyRetinaNet`; drop it before serializing).
    """
    start = time.perf_counter()
    set_determinism(config.seed)
    test_seed = config.seed + 1000 if config.test_seed is None else config.test_seed
    train, test, anchors, labels, box_targets = _prepare(
        config.scenes,
        config.anchors,
        config.ignore_band,
        config.seed,
        config.n_train,
        config.n_test,
        test_seed,
    )
    k = len(config.scenes.classes)
    cw = class_weights(labels, k) if config.class_weight == "inverse_frequency" else None
    model = TinyRetinaNet(k, config.anchors, config.width, config.prior)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    order = np.concatenate(
        [rng.permutation(len(train)) for _ in range(config.steps * config.batch_size // len(train) + 1)]
    )
    images = torch.from_numpy(train.images)
    losses = []
    ema = (
        PositiveNormalizer(momentum=0.9, initial=100.0, group=False)
        if config.normalization == "ema"
        else None
    )
    steps = range(config.steps) if progress is None else progress
    for step in steps:
        idx = torch.from_numpy(order[step * config.batch_size : (step + 1) * config.batch_size])
        logits, deltas = model(images[idx])
        lab = labels[idx]
        if config.ohem is not None:
            from focal_ref.torch import sigmoid_focal_loss

            onehot = torch.zeros_like(logits)
            pos = lab >= 0
            onehot[pos] = torch.nn.functional.one_hot(lab[pos], k).to(logits.dtype)
            per = sigmoid_focal_loss(logits, onehot, alpha=config.alpha, gamma=config.gamma)
            lab = lab.masked_fill(~_ohem_mask(per, lab, config), -1)
        cls_loss, box_loss, num_pos = retinanet_loss(
            logits,
            deltas,
            lab,
            box_targets[idx],
            alpha=config.alpha,
            gamma=config.gamma,
            class_weight=cw,
            normalization=config.normalization,
            normalizer=ema,
        )
        loss = cls_loss + box_loss
        opt.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        losses.append(float(loss.detach()))
        if history is not None:
            history.append(
                {
                    "loss": losses[-1],
                    "cls_loss": float(cls_loss.detach()),
                    "box_loss": float(box_loss.detach()),
                    "num_pos": num_pos,
                    "divisor": _divisor(config, lab, num_pos, ema),
                    "grad_norm": float(grad_norm),
                }
            )
    result: dict[str, Any] = dict(evaluate(model, test, anchors))
    result.update(anchor_stats(labels))
    result["final_loss"] = float(np.mean(losses[-20:])) if losses else float("nan")
    result["wall_s"] = time.perf_counter() - start
    result["model"] = model
    return result
