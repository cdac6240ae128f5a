"""Anchors, RetinaNet's anchor labelling and the box encoding (Lin et al. 2017, §4; arXiv 1708.02002).

Anchors sit on one or more pyramid levels: at every location of a level with stride ``s`` there are
``A = len(scales) * len(ratios)`` anchors of area ``(size * scale)^2`` and height/width ``ratio``,
centred on the location. They are ordered level by level, then row, column, anchor, the order in which
:class:`focal_ref.detection.model.TinyRetinaNet` flattens its head outputs.

Labelling follows the paper (§4, "Box Regression Subnet" and "Anchors"): an anchor whose best IoU with
a ground-truth box is at least ``pos_iou`` (.5) is positive for that box's class; below ``neg_iou`` (.4)
it is background; in between it is ignored (no classification loss, not counted in ``num_pos``). Each
ground truth's best-matching anchor is made positive whatever its IoU (Detectron's
``allow_low_quality_matches``), so every object has at least one positive anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -1
"""The label of an anchor in the IoU band: no classification loss, not counted as positive or negative."""
BACKGROUND = -2
"""The label of a background (negative) anchor."""


@dataclass(frozen=True)
class AnchorConfig:
    """The anchor layout.

    Args:
        strides: the stride of each pyramid level (subset of the backbone's strides 2, 4, 8).
        sizes: the base anchor side of each level, in pixels.
        scales: multipliers of the base side (the paper uses 2^0, 2^(1/3), 2^(2/3)).
        ratios: height / width ratios (the paper uses 1:2, 1:1, 2:1).
    """

    strides: tuple[int, ...] = (4, 8)
    sizes: tuple[float, ...] = (12.0, 24.0)
    scales: tuple[float, ...] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)

    @property
    def num_anchors(self) -> int:
        """A, the number of anchors per location."""
        return len(self.scales) * len(self.ratios)


def make_anchors(canvas: int, config: AnchorConfig) -> torch.Tensor:
    """All anchors of a ``canvas`` x ``canvas`` image, ``(x0, y0, x1, y1)``, float32, shape (M, 4).

    Example:
        >>> make_anchors(8, AnchorConfig(strides=(4,), sizes=(4.0,), scales=(1.0,), ratios=(1.0,)))
        tensor([[0., 0., 4., 4.],
                [4., 0., 8., 4.],
                [0., 4., 4., 8.],
                [4., 4., 8., 8.]])
    """
    out = []
    for stride, size in zip(config.strides, config.sizes, strict=False):
        n = canvas // stride
        shapes = []
        for ratio in config.ratios:
            for scale in config.scales:
                side = size * scale
                w, h = side / ratio**0.5, side * ratio**0.5
                shapes.append((w, h))
        wh = torch.tensor(shapes, dtype=torch.float64)  # (A, 2)
        c = (torch.arange(n, dtype=torch.float64) + 0.5) * stride
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2)  # (HW, 1, 2)
        boxes = torch.cat([centres - wh / 2, centres + wh / 2], -1)  # (HW, A, 4)
        out.append(boxes.reshape(-1, 4))
    return torch.cat(out).float()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), ``(x0, y0, x1, y1)``: (N, M).

    Example:
        >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
        tensor([[0.3333]])
    """
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)  # no overlap is 0 overlap, not a negative area: not a change of the IoU
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def label_anchors(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    *,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    force_best: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RetinaNet's anchor assignment for one image.

    Args:
        anchors: (M, 4) anchors.
        gt_boxes: (G, 4) ground-truth boxes (G may be 0).
        gt_labels: (G,) integer classes.
        pos_iou: IoU at or above which an anchor is positive (.5 in the paper).
        neg_iou: IoU below which an anchor is background (.4 in the paper); ``neg_iou = pos_iou``
            removes the ignore band (every anchor is either positive or negative).
        force_best: make each ground truth's highest-IoU anchor positive (ties: every anchor at the max).

    Returns:
        ``(labels, matched)``: ``labels`` int64 (M,), the class index of a positive anchor,
        :data:`BACKGROUND` (-2) for a negative one and :data:`IGNORE` (-1) for one in the band; ``matched``
        int64 (M,), the index of the ground truth each anchor is matched to (meaningful where
        ``labels >= 0``).

    Raises:
        ValueError: if ``neg_iou > pos_iou``.

    Example:
        >>> a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 4.2], [20, 20, 30, 30]])
        >>> label_anchors(a, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([2]))[0]
        tensor([ 2,  2, -1, -2])
    """
    if neg_iou > pos_iou:
        raise ValueError(f"neg_iou must be <= pos_iou, got neg_iou={neg_iou}, pos_iou={pos_iou}")
    m = anchors.shape[0]
    labels = torch.full((m,), BACKGROUND, dtype=torch.int64)
    matched = torch.zeros(m, dtype=torch.int64)
    if gt_boxes.shape[0] == 0:
        return labels, matched
    iou = box_iou(gt_boxes.to(torch.float64), anchors.to(torch.float64))  # (G, M)
    best_iou, matched = iou.max(dim=0)
    labels[best_iou >= neg_iou] = IGNORE
    pos = best_iou >= pos_iou
    if force_best:
        per_gt = iou.max(dim=1, keepdim=True).values
        g_idx, a_idx = torch.nonzero((iou == per_gt) & (per_gt > 0), as_tuple=True)
        matched[a_idx] = g_idx
        pos[a_idx] = True
    labels[pos] = gt_labels[matched[pos]]
    return labels, matched


def encode(anchors: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Regression targets of ``boxes`` relative to ``anchors`` (both (M, 4)): (dx, dy, dw, dh).

    dx = (x_b - x_a) / w_a, dy = (y_b - y_a) / h_a, dw = log(w_b / w_a), dh = log(h_b / h_a) for the
    centres (x, y) and sizes (w, h) (Girshick et al. 2014, the encoding RetinaNet uses).

    Example:
        >>> encode(torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[1.0, 0, 5, 8]]))
        tensor([[0.2500, 0.5000, 0.0000, 0.6931]])
    """
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + aw / 2, anchors[:, 1] + ah / 2
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bx, by = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
    return torch.stack([(bx - ax) / aw, (by - ay) / ah, torch.log(bw / aw), torch.log(bh / ah)], -1)


def decode(anchors: torch.Tensor, deltas: torch.Tensor, max_log_scale: float = 4.0) -> torch.Tensor:
    """The inverse of :func:`encode`: boxes from anchors (M, 4) and deltas (M, 4).

    ``dw`` and ``dh`` are capped at ``max_log_scale`` before ``exp`` (a box can grow at most e^4 times),
    as torchvision's ``BoxCoder`` does, so an untrained head cannot produce an infinite box.
    """
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ax, ay = anchors[:, 0] + aw / 2, anchors[:, 1] + ah / 2
    x, y = ax + deltas[:, 0] * aw, ay + deltas[:, 1] * ah
    w = aw * torch.exp(deltas[:, 2].clamp(max=max_log_scale))
    h = ah * torch.exp(deltas[:, 3].clamp(max=max_log_scale))
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], -1)
