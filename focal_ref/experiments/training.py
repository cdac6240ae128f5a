"""Training the model copies side by side with :func:`focal_ref.torch.sigmoid_focal_loss` (torch).

Call :func:`set_determinism` first for reproducible runs: two runs on one machine give bit-identical
results; the notebooks print rounded numbers so that they also agree across machines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..torch import sigmoid_focal_loss
from .config import DEFAULT_THREADS, LossConfig, TrainConfig
from .data import ToyData, batch_order
from .metrics import average_precision
from .model import TinyDetector
from .progress import progress_bar

__all__ = ["TrainResult", "set_determinism", "train", "predict"]


@dataclass
class TrainResult:
    """What :func:`train` returns; index ``g`` runs over the model copies (the order of ``losses``).

    Attributes:
        model: the trained :class:`TinyDetector` holding every copy.
        losses: ``(steps, G)`` normalized training loss of each step, before that step's update
            (row 0 is the loss at initialization). NaN after a copy diverged.
        grad_norms: ``(steps, G)`` Euclidean norm of each copy's gradient (all its parameters), or None.
        normalizers: ``(steps, G)`` the divisor each copy used at each step.
        diverged: ``(G,)`` True where a copy's loss became non-finite; it stops training there.
        ap: ``(G,)`` average precision on ``eval_data`` (NaN for a diverged copy), or None.

    Example:
        >>> from focal_ref.experiments import make_dataset
        >>> result = train([LossConfig()], make_dataset(16, seed=0), TrainConfig(steps=2, batch_size=4))
        >>> result.losses.shape, result.diverged.tolist()
        ((2, 1), [False])
    """

    model: TinyDetector
    losses: np.ndarray
    grad_norms: np.ndarray | None
    normalizers: np.ndarray
    diverged: np.ndarray
    ap: np.ndarray | None = field(default=None)


def set_determinism(seed: int = 0, threads: int = DEFAULT_THREADS) -> None:
    """Seed torch, require deterministic algorithms, fix the number of CPU threads and flush denormals.

    Flushing denormal floats to zero (``torch.set_flush_denormal(True)``) puts the CPU's floating-point
    mode in a known state: some shared libraries switch it on when they are loaded, so without this the
    same training can round differently depending on what else the process imported. The flag is a CPU
    mode of the calling thread: NumPy on that thread flushes too (results below ~1e-308 become 0), until
    ``torch.set_flush_denormal(False)``.

    Args:
        seed: the torch seed.
        threads: CPU threads for torch.

    Returns:
        None; the process's torch state is changed.

    Example:
        >>> set_determinism(0)
        >>> torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
        (True, 1)
        >>> _ = torch.set_flush_denormal(False); torch.use_deterministic_algorithms(False)  # put back
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def train(
    losses: Sequence[LossConfig],
    data: ToyData,
    config: TrainConfig | None = None,
    *,
    eval_data: ToyData | None = None,
    track_grad_norm: bool = False,
    progress: bool | None = False,
) -> TrainResult:
    """Train one :class:`TinyDetector` copy per entry of ``losses``, side by side, on the same batches.

    Each step draws ``config.batch_size`` images (:func:`batch_order`), computes for every copy ``g``
    the elementwise :func:`focal_ref.torch.sigmoid_focal_loss` with its gamma and alpha, sums it over the
    batch and divides by its normalizer, then takes one SGD step on the sum of the copies' losses.
    The copies share no parameter, so this is G separate trainings (up to float rounding: a grouped
    convolution may sum in another order than a plain one) -- except that a copy whose
    loss turns non-finite is frozen (no further update) and marked ``diverged``.

    ``progress`` draws a tqdm bar over the steps: True, False, or None for "when someone is watching"
    (a terminal, Colab, Jupyter or VS Code; never in an executed notebook's stored output:
    :mod:`focal_ref.experiments.progress`).

    Call :func:`set_determinism` first for reproducible runs.

    Args:
        losses: one :class:`LossConfig` per model copy.
        data: the training data.
        config: the optimization settings (default ``TrainConfig()``).
        eval_data: data for each copy's held-out AP (None: no AP).
        track_grad_norm: record each copy's gradient norm per step.
        progress: a tqdm bar: True, False, or None for "when someone is watching".

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: for an empty ``losses``, or a batch larger than the data.

    Example:
        >>> from focal_ref.experiments import make_dataset
        >>> data = make_dataset(16, seed=0)
        >>> train([LossConfig(), LossConfig(gamma=0.0)], data, TrainConfig(steps=3)).losses.shape
        (3, 2)
    """
    config = config or TrainConfig()
    losses = list(losses)
    if not losses:
        raise ValueError("losses must hold at least one LossConfig")
    g_count = len(losses)
    model = TinyDetector([c.prior for c in losses], width=config.width, seed=config.seed)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    images = torch.from_numpy(data.images)
    targets = torch.from_numpy(data.targets)
    order = batch_order(len(data), config.steps, config.batch_size, config.seed)
    cells = config.batch_size * targets.shape[1] * targets.shape[2]

    loss_log = np.full((config.steps, g_count), np.nan)
    grad_log = np.full((config.steps, g_count), np.nan) if track_grad_norm else None
    norm_log = np.zeros((config.steps, g_count))
    alive = np.ones(g_count, dtype=bool)
    ema: list[float | None] = [None] * g_count

    def grads() -> list[torch.Tensor]:
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]

    for step in progress_bar(range(config.steps), progress, config.steps, desc="train"):
        idx = torch.from_numpy(order[step])
        x, y = images[idx], targets[idx]
        num_pos = float(y.sum())
        logits = model(x)
        total = logits.new_zeros(())
        for g, cfg in enumerate(losses):
            if cfg.normalization == "num_pos":
                divisor = max(num_pos, 1.0)
            elif cfg.normalization == "mean":
                divisor = float(cells)
            else:
                count = max(num_pos, 1.0)
                previous = ema[g]
                divisor = count if previous is None else 0.9 * previous + 0.1 * count
                ema[g] = divisor
            norm_log[step, g] = divisor
            if not alive[g]:
                continue
            summed = sigmoid_focal_loss(logits[:, g], y, alpha=cfg.alpha, gamma=cfg.gamma, reduction="sum")
            loss_g = summed / divisor
            value = float(loss_g.detach())
            if not math.isfinite(value):
                alive[g] = False
                continue
            loss_log[step, g] = value
            total = total + loss_g
        opt.zero_grad(set_to_none=False)
        if total.requires_grad:
            total.backward()
        dead = None if alive.all() else torch.from_numpy(~alive)
        with torch.no_grad():
            if dead is not None:  # a diverged copy gets no gradient; its weights are put back after the step
                masks = [dead.repeat_interleave(p.shape[0] // g_count) for p in params]
                frozen = [p[m].clone() for p, m in zip(params, masks, strict=True)]
                for g_, m in zip(grads(), masks, strict=True):
                    g_[m] = 0.0
            if grad_log is not None:
                sq = torch.stack([g_.reshape(g_count, -1).pow(2).sum(dim=1) for g_ in grads()]).sum(dim=0)
                grad_log[step] = sq.sqrt().numpy()
        opt.step()
        if dead is not None:
            with torch.no_grad():
                for p, m, f in zip(params, masks, frozen, strict=True):
                    p[m] = f
    result = TrainResult(model, loss_log, grad_log, norm_log, ~alive)
    if eval_data is not None:
        scores = predict(model, eval_data)
        result.ap = np.array(
            [
                average_precision(scores[:, g], eval_data.targets) if alive[g] else np.nan
                for g in range(g_count)
            ]
        )
    return result


def predict(model: TinyDetector, data: ToyData, batch_size: int = 256) -> np.ndarray:
    """Logits of every copy on ``data``, in eval mode without gradients.

    Args:
        model: the trained model.
        data: the images.
        batch_size: images per forward pass.

    Returns:
        float32 NumPy logits ``(N, G, H, W)``.

    Example:
        >>> from focal_ref.experiments import make_dataset
        >>> predict(TinyDetector([0.01, 0.5]), make_dataset(3, seed=0)).shape
        (3, 2, 16, 16)
    """
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            out.append(model(torch.from_numpy(data.images[start : start + batch_size])).numpy())
    model.train()
    return np.concatenate(out)
