"""A tiny RetinaNet-style detector on scenes of real handwriting, to measure where the focal loss pays off.

Scenes (:mod:`~focal_ref.detection.data`), anchors and RetinaNet's labelling
(:mod:`~focal_ref.detection.anchors`), the model and its loss (:mod:`~focal_ref.detection.model`),
inference (:mod:`~focal_ref.detection.inference`), COCO AP (:mod:`~focal_ref.detection.metrics`) and
training (:mod:`~focal_ref.detection.train`). Lin et al. 2017, https://arxiv.org/abs/1708.02002.
"""

from focal_ref.detection.anchors import (
    BACKGROUND,
    IGNORE,
    AnchorConfig,
    box_iou,
    decode,
    encode,
    label_anchors,
    make_anchors,
)
from focal_ref.detection.data import SceneConfig, Scenes, digit_split, make_scenes
from focal_ref.detection.inference import nms, postprocess
from focal_ref.detection.metrics import coco_ap
from focal_ref.detection.model import TinyRetinaNet, prior_bias, retinanet_loss
from focal_ref.detection.train import (
    DetectorConfig,
    anchor_stats,
    evaluate,
    label_scenes,
    set_determinism,
    train_detector,
)

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "AnchorConfig",
    "box_iou",
    "decode",
    "encode",
    "label_anchors",
    "make_anchors",
    "SceneConfig",
    "Scenes",
    "digit_split",
    "make_scenes",
    "nms",
    "postprocess",
    "coco_ap",
    "TinyRetinaNet",
    "prior_bias",
    "retinanet_loss",
    "DetectorConfig",
    "anchor_stats",
    "evaluate",
    "label_scenes",
    "set_determinism",
    "train_detector",
]
