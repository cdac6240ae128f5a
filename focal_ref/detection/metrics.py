"""COCO AP@[.5:.95], AP50 and AP75 by pycocotools' ``COCOeval``, from in-memory boxes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np


def coco_ap(
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    dt_boxes: Sequence[np.ndarray],
    dt_scores: Sequence[np.ndarray],
    dt_labels: Sequence[np.ndarray],
    num_classes: int,
) -> dict[str, float]:
    """COCO AP of detections against ground truth, one entry per image, boxes ``(x0, y0, x1, y1)``.

    Builds the COCO ground-truth and result structures in memory and runs ``COCOeval`` (bbox, all
    areas, up to 100 detections per image) with its prints silenced. An empty detection list gives 0.

    Returns:
        ``{"AP": ..., "AP50": ..., "AP75": ...}`` as fractions in [0, 1] (COCOeval's ``stats[0:3]``).

    Example:
        >>> b = [np.array([[0.0, 0, 10, 10]])]
        >>> round(coco_ap(b, [np.array([0])], b, [np.array([0.9])], [np.array([0])], 1)["AP"], 6)
        1.0
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images: list[dict] = []
    anns: list[dict] = []
    dets: list[dict] = []
    for i, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels, strict=False)):
        images.append({"id": i, "width": 1, "height": 1})
        for b, c in zip(np.asarray(boxes, float).reshape(-1, 4), labels, strict=False):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "iscrowd": 0,
                    "bbox": [b[0], b[1], w, h],
                    "area": w * h,
                }
            )
    for i, (boxes, scores, labels) in enumerate(zip(dt_boxes, dt_scores, dt_labels, strict=False)):
        for b, s, c in zip(np.asarray(boxes, float).reshape(-1, 4), scores, labels, strict=False):
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(c),
                    "score": float(s),
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                }
            )
    if not dets:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": k} for k in range(num_classes)],
        }
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(float(v), 0.0) for v in ev.stats[:3]]  # -1 means "no ground truth": not our case
    return {"AP": stats[0], "AP50": stats[1], "AP75": stats[2]}
