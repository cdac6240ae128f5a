"""A tiny RetinaNet: a 3-layer conv backbone, shared class and box heads, and the RetinaNet loss.

The classification head predicts ``K * A`` sigmoid logits per location; its last bias is set to the
prior ``-log((1 - pi) / pi)`` with ``pi = .01`` and the heads' other weights are Gaussian with
sigma = .01 (Lin et al. 2017, §3.3 and §4.1; arXiv 1708.02002). The loss is the paper's: the focal loss
(:func:`focal_ref.torch.sigmoid_focal_loss`) summed over every non-ignored anchor and class, plus a
Smooth-L1 box loss summed over the positive anchors, both divided by the number of positive anchors
(``normalization="num_pos"``). Two alternatives, for the normalization study: ``"mean"`` (the focal loss
averaged over the non-ignored anchor x class elements) and ``"ema"`` (both sums divided by Detectron2's
moving average of num_pos, :class:`focal_ref.distributed.PositiveNormalizer`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from focal_ref.detection.anchors import AnchorConfig
from focal_ref.distributed import PositiveNormalizer
from focal_ref.torch import sigmoid_focal_loss

BACKBONE_STRIDES = (2, 4, 8)
NORMALIZATIONS = ("num_pos", "mean", "ema")
"""What :func:`retinanet_loss` can divide the summed losses by."""


def prior_bias(prior: float) -> float:
    """The bias b with sigmoid(b) = ``prior``: ``-log((1 - prior) / prior)``.

    Example:
        >>> round(prior_bias(0.01), 3)
        -4.595
    """
    return -math.log((1 - prior) / prior)


class TinyRetinaNet(nn.Module):
    """Backbone with features at strides 2, 4 and 8, and RetinaNet heads on the levels of ``anchors``.

    Args:
        num_classes: K.
        anchors: the anchor layout (its strides choose the levels the heads run on).
        width: channels of the backbone and heads.
        prior: the prior probability of the class head's initial bias (``None``: bias 0).
    """

    def __init__(self, num_classes: int, anchors: AnchorConfig, width: int = 32, prior: float | None = 0.01):
        super().__init__()
        if any(s not in BACKBONE_STRIDES for s in anchors.strides):
            raise ValueError(f"anchors.strides must be among {BACKBONE_STRIDES}, got {anchors.strides}")
        self.num_classes, self.num_anchors, self.strides = num_classes, anchors.num_anchors, anchors.strides
        half = width // 2
        self.stem = nn.Sequential(
            nn.Conv2d(1, half, 3, padding=1), nn.ReLU(), nn.Conv2d(half, width, 3, 2, 1), nn.ReLU()
        )
        self.down4 = nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU())
        self.down8 = nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU())
        self.cls_tower = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.cls_head = nn.Conv2d(width, num_classes * self.num_anchors, 3, padding=1)
        self.box_head = nn.Conv2d(width, 4 * self.num_anchors, 3, padding=1)
        tower_conv = self.cls_tower[0]
        assert isinstance(tower_conv, nn.Conv2d)
        for layer in (tower_conv, self.cls_head, self.box_head):
            assert layer.bias is not None
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        if prior is not None:
            assert self.cls_head.bias is not None
            nn.init.constant_(self.cls_head.bias, prior_bias(prior))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (B, M, K) and box deltas (B, M, 4), anchors in :func:`make_anchors` order."""
        f2 = self.stem(images)
        f4 = self.down4(f2)
        feats = {2: f2, 4: f4, 8: self.down8(f4)}
        logits, deltas = [], []
        for s in self.strides:
            f = feats[s]
            b, _, h, w = f.shape
            c = self.cls_head(self.cls_tower(f)).permute(0, 2, 3, 1)
            logits.append(c.reshape(b, h * w * self.num_anchors, self.num_classes))
            deltas.append(self.box_head(f).permute(0, 2, 3, 1).reshape(b, h * w * self.num_anchors, 4))
        return torch.cat(logits, 1), torch.cat(deltas, 1)


def retinanet_loss(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    labels: torch.Tensor,
    box_targets: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    smooth_l1_beta: float = 1 / 9,
    class_weight: torch.Tensor | None = None,
    normalization: str = "num_pos",
    normalizer: PositiveNormalizer | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The RetinaNet loss of a batch, divided by the number of positive anchors (or an alternative).

    .. math::

        L = \\frac{1}{N_{pos}} \\Big[\\sum_{a \\notin \\mathrm{ignored}} \\sum_k \\mathrm{FL}(x_{ak}, y_{ak})
            + \\sum_{a \\in \\mathrm{pos}} \\mathrm{SmoothL1}(d_a - t_a)\\Big]

    with ``normalization="num_pos"`` (Lin et al. 2017, §4.1, https://arxiv.org/abs/1708.02002;
    N_pos floored at 1). ``"mean"``: the focal term is divided by the number of non-ignored
    anchor x class elements instead (a plain mean; the box term keeps N_pos). ``"ema"``: both terms are
    divided by ``normalizer(onehot targets)``, Detectron2's moving average of N_pos (momentum .9,
    started at 100), which the caller keeps from step to step.

    Args:
        logits: (B, M, K) class logits.
        deltas: (B, M, 4) predicted box deltas.
        labels: (B, M) from :func:`~focal_ref.detection.anchors.label_anchors` (class, -1 ignore, -2 bg).
        box_targets: (B, M, 4) encoded targets (used where ``labels >= 0``).
        alpha, gamma: the focal loss's parameters (``gamma=0``: alpha-balanced cross entropy).
        smooth_l1_beta: the Smooth-L1 transition point (Detectron's 1/9).
        class_weight: optional (K,) weights of each class's positive *and* negative terms (a baseline).
        normalization: ``"num_pos"`` (the paper), ``"mean"`` or ``"ema"`` (see above).
        normalizer: the :class:`~focal_ref.distributed.PositiveNormalizer` of ``"ema"`` (required there).

    Returns:
        ``(cls_loss, box_loss, num_pos)``: the two 0-d losses and the positive count (at least 1).

    Raises:
        ValueError: an unknown ``normalization``, or ``"ema"`` without a ``normalizer``.

    Example:
        >>> logits = torch.full((1, 4, 1), -2.0)
        >>> labels = torch.tensor([[0, -2, -2, -1]])
        >>> cls, box, n = retinanet_loss(logits, torch.zeros(1, 4, 4), labels, torch.zeros(1, 4, 4),
        ...                              normalization="mean")
        >>> round(float(cls), 4), n
        (0.1384, 1)
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if normalization == "ema" and normalizer is None:
        raise ValueError("normalization='ema' needs a normalizer (focal_ref.distributed.PositiveNormalizer)")
    k = logits.shape[-1]
    pos = labels >= 0
    keep = (labels != -1).unsqueeze(-1).to(logits.dtype)
    onehot = torch.zeros_like(logits)
    onehot[pos] = nn.functional.one_hot(labels[pos], k).to(logits.dtype)
    fl = sigmoid_focal_loss(logits, onehot, alpha=alpha, gamma=gamma, reduction="none") * keep
    if class_weight is not None:
        fl = fl * class_weight
    num_pos = max(int(pos.sum()), 1)
    diff = (deltas[pos] - box_targets[pos]).abs()
    sl1 = torch.where(diff < smooth_l1_beta, 0.5 * diff**2 / smooth_l1_beta, diff - 0.5 * smooth_l1_beta)
    if normalization == "mean":
        return fl.sum() / max(int(keep.sum()) * k, 1), sl1.sum() / num_pos, num_pos
    if normalization == "ema":
        assert normalizer is not None
        divisor = normalizer(onehot)
        return fl.sum() / divisor, sl1.sum() / divisor, num_pos
    return fl.sum() / num_pos, sl1.sum() / num_pos, num_pos
