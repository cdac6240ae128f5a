"""The settings of a tuning run: the loss of each model copy and the optimization (NumPy-free dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .metrics import prior_bias

__all__ = ["DEFAULT_THREADS", "NORMALIZATIONS", "Normalization", "LossConfig", "TrainConfig"]

DEFAULT_THREADS = 1
"""CPU threads used by the trainings: one, so results do not depend on the machine and runs sharing a small
machine do not fight over cores (the nets here are too small to gain much from more)."""

Normalization = Literal["num_pos", "mean", "ema_num_pos"]
NORMALIZATIONS: tuple[str, ...] = ("num_pos", "mean", "ema_num_pos")


@dataclass(frozen=True)
class LossConfig:
    """The loss of one model copy.

    Attributes:
        gamma: focusing parameter; 0 gives alpha-weighted cross entropy.
        alpha: weight of the positive class (``alpha_t = alpha y + (1 - alpha)(1 - y)``); None for none.
        normalization: how the summed loss of a batch is divided:
            ``"num_pos"`` -- by the number of positive cells in the batch (at least 1; Lin et al. 2017, §4.1);
            ``"mean"`` -- by the number of all cells (the plain mean);
            ``"ema_num_pos"`` -- by an exponential moving average of the positive count, momentum 0.9
            (Detectron2's RetinaNet: ``n <- 0.9 n + 0.1 max(num_pos, 1)``), started at the first batch's
            count.
        prior: the prior pi of the last bias (:func:`prior_bias`); None for bias 0.

    Raises:
        ValueError: for an unknown normalization or a prior outside (0, 1).

    Example:
        >>> LossConfig(gamma=0.0, alpha=None).normalization
        'num_pos'
    """

    gamma: float = 2.0
    alpha: float | None = 0.25
    normalization: Normalization = "num_pos"
    prior: float | None = 0.01

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        prior_bias(self.prior)  # validates


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings shared by every copy.

    Attributes:
        steps: number of SGD steps.
        batch_size: images per step; the data is walked in epochs, each in a fresh seeded order.
        lr: learning rate.
        momentum: SGD momentum (0.9 as in the paper).
        weight_decay: L2 weight decay (1e-4 as in the paper).
        width: channels of the first layers of :class:`TinyDetector`.
        seed: seeds the initial weights and the batch order.

    Example:
        >>> TrainConfig(steps=10).batch_size
        8
    """

    steps: int = 300
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    width: int = 8
    seed: int = 0
