"""From head outputs to detections: score threshold, top-k, box decoding and per-class NMS, in torch."""

from __future__ import annotations

import torch

from focal_ref.detection.anchors import box_iou, decode


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression (as ``torchvision.ops.nms``): indices kept, by decreasing score.

    A box is dropped when its IoU with a higher-scoring kept box exceeds ``iou_threshold``.
    Ties in score are broken by the lower index first (a stable sort).

    Example:
        >>> b = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]])
        >>> nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        tensor([0, 2])
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.int64)]


def postprocess(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    *,
    score_threshold: float = 0.05,
    top_k: int = 1000,
    nms_iou: float = 0.5,
    max_detections: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detections of one image (RetinaNet's inference, §4 "Inference").

    Args:
        logits: (M, K) class logits; deltas: (M, 4); anchors: (M, 4).
        score_threshold: drop (anchor, class) pairs with a lower sigmoid score (.05 in the paper).
        top_k: keep at most this many pairs before NMS (1000 per level in the paper; here for the image).
        nms_iou: per-class NMS threshold (.5 in the paper).
        max_detections: final cap per image.

    Returns:
        ``(boxes (D, 4), scores (D,), classes (D,))`` sorted by decreasing score.
    """
    k = logits.shape[1]
    scores = torch.sigmoid(logits).flatten()
    cand = torch.nonzero(scores > score_threshold).flatten()
    if cand.numel() > top_k:
        cand = cand[torch.topk(scores[cand], top_k).indices]
    anchor_idx, cls = cand // k, cand % k
    sc = scores[cand]
    boxes = decode(anchors[anchor_idx], deltas[anchor_idx])
    kept = []
    for c in cls.unique():
        idx = torch.nonzero(cls == c).flatten()
        kept.append(idx[nms(boxes[idx], sc[idx], nms_iou)])
    if not kept:
        return boxes[:0], sc[:0], cls[:0]
    kept_idx = torch.cat(kept)
    kept_idx = kept_idx[torch.sort(sc[kept_idx], descending=True, stable=True).indices][:max_detections]
    return boxes[kept_idx], sc[kept_idx], cls[kept_idx]
