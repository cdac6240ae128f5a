"""A dense, imbalanced toy problem for measuring the paper's tuning notes on a laptop CPU.

The book's tuning chapter (``book/tuning/``) asks how the focal loss's knobs -- gamma, alpha, the prior
initialization of the last bias and the loss normalization (Lin et al. 2017, §3.3, §4.1, §5.1, Table 1) --
behave on a problem with the same *shape* as one-stage detection: one score per location, about 1%
positives, a sea of easy background and a few hard negatives. This module holds everything those
pages run, so that a notebook in Colab has it after ``pip install focal_ref``:

* :func:`make_dataset` -- synthetic 32x32 grey images. Objects are bright filled 3x3 squares; the
  target is 1 at the 16x16 output cell holding an object's centre (stride 2). Distractors -- dim filled
  squares, bright hollow 5x5 rings and bright plus-shaped crosses -- are hard negatives; the noisy
  background is the mass of easy negatives.
* :class:`TinyDetector` -- a four-layer conv net giving one logit per output cell. It can hold ``G``
  independent copies side by side (grouped convolutions), so a whole gamma x alpha grid trains in one
  pass over the data: every copy starts from the same weights, sees the same batches and differs only
  in its loss.
* :func:`train` -- SGD with momentum (the paper's optimizer) and a configurable loss per copy
  (:class:`LossConfig`: gamma, alpha, normalization ``"num_pos"`` | ``"mean"`` | ``"ema_num_pos"``, prior pi).
  The loss is :func:`focal_ref.torch.sigmoid_focal_loss`.
* :func:`average_precision` -- AP over locations, from its definition.
* :func:`train_keras` -- the same model and recipe in Keras 3 with :func:`focal_ref.keras.sigmoid_focal_loss`.

Determinism: :func:`set_determinism` seeds torch, turns on ``torch.use_deterministic_algorithms`` and
fixes the CPU thread count (:data:`DEFAULT_THREADS`, one: a different thread count may change the
order of floating-point sums and so the last digits of a result). The data comes from
NumPy generators seeded explicitly; nothing reads global random state. Two runs on one machine give
bit-identical results; the notebooks print rounded numbers so that they also agree across machines.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .torch import sigmoid_focal_loss

__all__ = [
    "ToyConfig",
    "ToyData",
    "make_dataset",
    "prior_bias",
    "TinyDetector",
    "LossConfig",
    "TrainConfig",
    "TrainResult",
    "set_determinism",
    "batch_order",
    "train",
    "predict",
    "average_precision",
    "expected_initial_loss",
    "normalized_loss_cdf",
    "train_keras",
    "DEFAULT_THREADS",
]

DEFAULT_THREADS = 1
"""CPU threads used by :func:`set_determinism`: one, so results do not depend on the machine and runs sharing a small machine do not fight over cores (the nets here are too small to gain much from more)."""

Normalization = Literal["num_pos", "mean", "ema_num_pos"]
NORMALIZATIONS = ("num_pos", "mean", "ema_num_pos")


# ----------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class ToyConfig:
    """Parameters of the synthetic images (defaults: about 1% positive cells).

    Attributes:
        image_size: side of the square image in pixels (even).
        stride: output stride; the target map has ``image_size // stride`` cells a side.
        objects: inclusive range of the number of objects (positives) per image.
        distractors: inclusive range of the number of distractor shapes (hard negatives) per image.
        noise: standard deviation of the Gaussian pixel noise on a zero background.
        object_intensity: range of an object's brightness (uniform).
        dim_intensity: range of a dim square's brightness (uniform); a dim square is the hardest negative.
    """

    image_size: int = 32
    stride: int = 2
    objects: tuple[int, int] = (1, 4)
    distractors: tuple[int, int] = (2, 6)
    noise: float = 0.4
    object_intensity: tuple[float, float] = (0.6, 1.0)
    dim_intensity: tuple[float, float] = (0.2, 0.5)


@dataclass(frozen=True)
class ToyData:
    """A set of images and their per-cell targets.

    Attributes:
        images: float32 array ``(N, 1, S, S)``.
        targets: float32 array ``(N, S // stride, S // stride)``, 1 at an object's centre cell, else 0.
        config: the :class:`ToyConfig` that made them.
    """

    images: np.ndarray
    targets: np.ndarray
    config: ToyConfig

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def positive_rate(self) -> float:
        """Fraction of cells that are positive."""
        return float(self.targets.mean())


# shape kinds: 0 = object (filled 3x3, bright), 1 = dim filled 3x3, 2 = hollow 5x5 ring, 3 = plus-shaped cross
_HALF_EXTENT = {0: 1, 1: 1, 2: 2, 3: 2}


def _draw(image: np.ndarray, kind: int, r: int, c: int, value: float) -> None:
    if kind in (0, 1):
        image[r - 1 : r + 2, c - 1 : c + 2] += value
    elif kind == 2:
        image[r - 2 : r + 3, c - 2 : c + 3] += value
        image[r - 1 : r + 2, c - 1 : c + 2] -= value
    else:
        image[r - 2 : r + 3, c] += value
        image[r, c - 2 : c + 3] += value
        image[r, c] -= value  # the centre pixel was added twice


def make_dataset(n_images: int, seed: int, config: ToyConfig = ToyConfig()) -> ToyData:
    """Generate ``n_images`` synthetic images and their targets, deterministically from ``seed``.

    Each image gets a number of objects and distractors drawn uniformly from the configured ranges,
    placed at random without overlapping (each shape keeps one free pixel around it), then Gaussian
    noise. A distractor is a dim square, a ring or a cross with equal probability; rings and crosses
    are as bright as objects, so brightness alone does not separate them. The target is 1 at the
    output cell ``(r // stride, c // stride)`` of each object's centre pixel ``(r, c)``.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    size, stride = config.image_size, config.stride
    if size % stride:
        raise ValueError(f"image_size ({size}) must be a multiple of stride ({stride})")
    rng = np.random.default_rng(seed)
    images = np.zeros((n_images, 1, size, size), dtype=np.float64)
    targets = np.zeros((n_images, size // stride, size // stride), dtype=np.float32)
    for i in range(n_images):
        n_obj = int(rng.integers(config.objects[0], config.objects[1] + 1))
        n_dis = int(rng.integers(config.distractors[0], config.distractors[1] + 1))
        kinds = [0] * n_obj + [int(k) for k in rng.integers(1, 4, size=n_dis)]
        taken = np.zeros((size, size), dtype=bool)
        image = images[i, 0]
        for kind in kinds:
            h = _HALF_EXTENT[kind]
            for _ in range(100):  # rejection sampling; the images are sparse, so this always succeeds
                r, c = (int(v) for v in rng.integers(h + 1, size - h - 1, size=2))
                box = (slice(r - h - 1, r + h + 2), slice(c - h - 1, c + h + 2))
                if not taken[box].any():
                    break
            else:  # pragma: no cover - needs an image far denser than any config here
                raise RuntimeError("could not place a shape; lower the number of shapes per image")
            taken[box] = True
            if kind == 1:
                value = rng.uniform(*config.dim_intensity)
            else:
                value = rng.uniform(*config.object_intensity)
            _draw(image, kind, r, c, value)
            if kind == 0:
                targets[i, r // stride, c // stride] = 1.0
    images += rng.normal(0.0, config.noise, size=images.shape)
    return ToyData(images.astype(np.float32), targets, config)


# ----------------------------------------------------------------------------------------------
# model


def prior_bias(prior: Optional[float]) -> float:
    r"""The last-layer bias that makes every initial prediction equal ``prior``: :math:`b = -\log((1-\pi)/\pi)`.

    Lin et al. 2017, §3.3: with :math:`\pi = 0.01`, :math:`b \approx -4.595`. ``None`` gives 0 (p = 0.5).
    """
    if prior is None:
        return 0.0
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must lie in (0, 1) or be None, got {prior!r}")
    return -math.log((1.0 - prior) / prior)


class TinyDetector(nn.Module):
    """A tiny one-stage detector: one logit per cell of a stride-2 grid, for ``num_models`` copies at once.

    One copy is ``conv3x3(1->w) ReLU maxpool2 conv3x3(w->w) ReLU conv3x3(w->2w) ReLU conv1x1(2w->1)``
    with ``w = width`` ("same" padding), so a 32x32 image gives a 16x16 logit map. ``num_models = G``
    copies are stacked along the channels and kept apart with grouped convolutions (the first layer
    needs no grouping: every copy reads the same image), so the forward pass returns ``(N, G, 16, 16)``
    and copy ``g`` depends only on its own parameters.

    Initialization (one copy's weights, replicated to all copies): He-normal weights and zero bias for
    the hidden layers; the classification layer has Gaussian weights with sigma 0.01 (Lin et al. 2017,
    §4.1) and bias :func:`prior_bias` of each copy's ``priors[g]``. With sigma 0.01 every initial logit is
    close to its bias, so the first predictions are close to the prior.
    """

    def __init__(self, priors: Sequence[Optional[float]] = (0.01,), *, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = len(priors)
        if g < 1:
            raise ValueError("priors must name at least one model copy")
        self.num_models, self.width = g, width
        self.conv1 = nn.Conv2d(1, width * g, 3, padding=1)
        self.conv2 = nn.Conv2d(width * g, width * g, 3, padding=1, groups=g)
        self.conv3 = nn.Conv2d(width * g, 2 * width * g, 3, padding=1, groups=g)
        self.head = nn.Conv2d(2 * width * g, g, 1, groups=g)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in (self.conv1, self.conv2, self.conv3):
                out_per, in_per, kh, kw = layer.weight.shape
                std = math.sqrt(2.0 / (in_per * kh * kw))
                one = torch.randn((out_per // g, in_per, kh, kw), generator=gen) * std
                layer.weight.copy_(one.repeat(g, 1, 1, 1))
                layer.bias.zero_()
            one = torch.randn((1, 2 * width, 1, 1), generator=gen) * 0.01
            self.head.weight.copy_(one.repeat(g, 1, 1, 1))
            self.head.bias.copy_(torch.tensor([prior_bias(p) for p in priors]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(images)), 2)
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return self.head(x)

    def copy_weights(self, g: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Copy ``g``'s (weight, bias) per layer as float32 NumPy arrays, PyTorch layout ``(out, in, kh, kw)``."""
        if not 0 <= g < self.num_models:
            raise ValueError(f"g must lie in [0, {self.num_models}), got {g}")
        out = []
        for layer in (self.conv1, self.conv2, self.conv3, self.head):
            n = layer.weight.shape[0] // self.num_models
            w = layer.weight.detach()[g * n : (g + 1) * n].numpy().copy()
            b = layer.bias.detach()[g * n : (g + 1) * n].numpy().copy()
            out.append((w, b))
        return out


# ----------------------------------------------------------------------------------------------
# training


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
            (Detectron2's RetinaNet: ``n <- 0.9 n + 0.1 max(num_pos, 1)``), started at the first batch's count.
        prior: the prior pi of the last bias (:func:`prior_bias`); None for bias 0.
    """

    gamma: float = 2.0
    alpha: Optional[float] = 0.25
    normalization: Normalization = "num_pos"
    prior: Optional[float] = 0.01

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
    """

    steps: int = 300
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    width: int = 8
    seed: int = 0


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
    """

    model: TinyDetector
    losses: np.ndarray
    grad_norms: Optional[np.ndarray]
    normalizers: np.ndarray
    diverged: np.ndarray
    ap: Optional[np.ndarray] = field(default=None)


def set_determinism(seed: int = 0, threads: int = DEFAULT_THREADS) -> None:
    """Seed torch, require deterministic algorithms, fix the number of CPU threads and flush denormals.

    Flushing denormal floats to zero (``torch.set_flush_denormal(True)``) puts the CPU's floating-point
    mode in a known state: some shared libraries switch it on when they are loaded, so without this the
    same training can round differently depending on what else the process imported. The flag is a CPU
    mode of the calling thread: NumPy on that thread flushes too (results below ~1e-308 become 0), until
    ``torch.set_flush_denormal(False)``.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def batch_order(n_items: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices ``(steps, batch_size)`` walking ``range(n_items)`` in epochs, each epoch a fresh permutation.

    A batch never straddles two epochs: the tail of an epoch that does not fill a batch is dropped.
    """
    if batch_size > n_items:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the number of items ({n_items})")
    rng = np.random.default_rng([seed, 1])
    per_epoch = n_items // batch_size
    rows = []
    while len(rows) < steps:
        perm = rng.permutation(n_items)
        rows.extend(perm[: per_epoch * batch_size].reshape(per_epoch, batch_size))
    return np.asarray(rows[:steps])


def _progress(iterable, progress: Optional[bool], total: int):
    """Wrap in tqdm when ``progress`` is True; for ``None``, when someone is watching.

    Someone is watching in an interactive terminal or in a Google Colab runtime (where ``tqdm.auto``
    draws a widget). A notebook executed by nbval, ``jupyter execute`` or a book build is neither, so its
    stored outputs carry no progress bars.
    """
    if progress is None:
        progress = sys.stdout.isatty() or "google.colab" in sys.modules
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total)


def train(
    losses: Sequence[LossConfig],
    data: ToyData,
    config: TrainConfig = TrainConfig(),
    *,
    eval_data: Optional[ToyData] = None,
    track_grad_norm: bool = False,
    progress: Optional[bool] = False,
) -> TrainResult:
    """Train one :class:`TinyDetector` copy per entry of ``losses``, side by side, on the same batches.

    Each step draws ``config.batch_size`` images (:func:`batch_order`), computes for every copy ``g``
    the elementwise :func:`focal_ref.torch.sigmoid_focal_loss` with its gamma and alpha, sums it over the
    batch and divides by its normalizer, then takes one SGD step on the sum of the copies' losses.
    The copies share no parameter, so this is G separate trainings (up to float rounding: a grouped
    convolution may sum in another order than a plain one) -- except that a copy whose
    loss turns non-finite is frozen (no further update) and marked ``diverged``.

    ``progress`` draws a tqdm bar over the steps: True, False, or None for "when someone is watching"
    (an interactive terminal or Google Colab; never in an executed notebook's stored output).

    Call :func:`set_determinism` first for reproducible runs.
    """
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
    ema = [None] * g_count
    for step in _progress(range(config.steps), progress, config.steps):
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
                ema[g] = count if ema[g] is None else 0.9 * ema[g] + 0.1 * count
                divisor = ema[g]
            norm_log[step, g] = divisor
            if not alive[g]:
                continue
            loss_g = sigmoid_focal_loss(logits[:, g], y, alpha=cfg.alpha, gamma=cfg.gamma, reduction="sum") / divisor
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
            if dead is not None:  # a diverged copy gets no gradient, and its weights are put back after the step
                masks = [dead.repeat_interleave(p.shape[0] // g_count) for p in params]
                frozen = [p[m].clone() for p, m in zip(params, masks)]
                for p, m in zip(params, masks):
                    p.grad[m] = 0.0
            if grad_log is not None:
                sq = sum(p.grad.reshape(g_count, -1).pow(2).sum(dim=1) for p in params)
                grad_log[step] = sq.sqrt().numpy()
        opt.step()
        if dead is not None:
            with torch.no_grad():
                for p, m, f in zip(params, masks, frozen):
                    p[m] = f
    result = TrainResult(model, loss_log, grad_log, norm_log, ~alive)
    if eval_data is not None:
        scores = predict(model, eval_data)
        result.ap = np.array(
            [average_precision(scores[:, g], eval_data.targets) if alive[g] else np.nan for g in range(g_count)]
        )
    return result


def predict(model: TinyDetector, data: ToyData, batch_size: int = 256) -> np.ndarray:
    """Logits ``(N, G, H, W)`` of every copy on ``data`` (float32 NumPy), in eval mode without gradients."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            out.append(model(torch.from_numpy(data.images[start : start + batch_size])).numpy())
    model.train()
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# metric


def average_precision(scores, labels) -> float:
    r"""Average precision of ``scores`` against binary ``labels`` (any shapes of equal size), from its definition.

    Sort the scores in decreasing order and walk down the list; at each distinct score value k take
    every item scoring at least that value as "detected", giving recall :math:`R_k` (true positives / all
    positives) and precision :math:`P_k` (true positives / detected). Then

    .. math:: \mathrm{AP} = \sum_k (R_k - R_{k-1})\, P_k,\qquad R_0 = 0,

    the area under the step-wise precision-recall curve, with no interpolation.

    **Ties**: items with equal scores form one threshold -- they enter the detected set together -- so
    the result does not depend on the order of the input. (Sorting tied items positives-first would
    overstate AP; negatives-first would understate it.) Use logits, not sigmoid probabilities, as
    scores: float32 probabilities round to exactly 0 or 1 for large logits and would create ties.

    Raises ``ValueError`` if the sizes differ, a score is NaN, a label is not 0/1, or there is no
    positive (AP is undefined then). Returns a float in (0, 1].
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.size != y.size:
        raise ValueError(f"scores and labels must have the same size, got {s.size} and {y.size}")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("labels hold no positive; average precision is undefined")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # last index of each run of equal scores: the thresholds
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = tp[ends]
    detected = ends + 1
    precision = tp / detected
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# ----------------------------------------------------------------------------------------------
# analysis helpers


def expected_initial_loss(positive_rate: float, prior: Optional[float], *, alpha: Optional[float], gamma: float) -> float:
    r"""The loss at initialization, when every prediction equals p0 = sigmoid(prior_bias(prior)), normalized by num_pos.

    With a fraction r of positive cells, the sum over a batch divided by the number of positives is

    .. math:: L_0 = \alpha (1-p_0)^\gamma (-\log p_0) + \frac{1-r}{r}\,(1-\alpha)\, p_0^\gamma\,(-\log(1-p_0)).

    The first term is one positive's loss, the second the negatives' share per positive. This is the
    expectation of the first training loss when the logits sit exactly at the bias (sigma-0.01 head
    weights make them nearly so) and the batch has the data's positive rate.
    """
    b = prior_bias(prior)
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)
    # -log p0 = softplus(-b) and -log(1 - p0) = softplus(b), written with log1p for accuracy
    nlog_p = math.log1p(math.exp(-abs(b))) + max(-b, 0.0)
    nlog_q = math.log1p(math.exp(-abs(b))) + max(b, 0.0)
    p0 = 1.0 / (1.0 + math.exp(-b))
    q0 = 1.0 / (1.0 + math.exp(b))
    pos = a_pos * q0**gamma * nlog_p
    neg = a_neg * p0**gamma * nlog_q
    return pos + (1.0 - positive_rate) / positive_rate * neg


def normalized_loss_cdf(loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lin et al. 2017, Fig. 4: the cumulative share of the total loss against the fraction of samples.

    The losses are normalized to sum to one and sorted from lowest to highest; returns ``(fraction of
    samples, cumulative normalized loss)``, both starting at 0 and ending at 1.
    """
    loss = np.sort(np.asarray(loss, dtype=np.float64).ravel())
    if loss.size == 0 or not np.all(np.isfinite(loss)) or loss.min() < 0 or loss.sum() <= 0:
        raise ValueError("loss must be a non-empty array of finite, non-negative values with a positive sum")
    cum = np.r_[0.0, np.cumsum(loss)] / loss.sum()
    frac = np.arange(loss.size + 1) / loss.size
    return frac, cum


# ----------------------------------------------------------------------------------------------
# Keras


def train_keras(
    loss: LossConfig,
    data: ToyData,
    config: TrainConfig = TrainConfig(),
    *,
    eval_data: Optional[ToyData] = None,
    init_from: Optional[TinyDetector] = None,
):
    """Train one copy of :class:`TinyDetector`'s architecture in Keras 3 with :func:`focal_ref.keras.sigmoid_focal_loss`.

    The Keras model is ``Conv2D(w, 3) MaxPooling2D(2) Conv2D(w, 3) Conv2D(2w, 3) Conv2D(1, 1)`` (channels
    last, "same" padding, ReLU), i.e. the PyTorch model's layers. Its initial weights are those of
    ``init_from`` (copy 0, transposed to Keras layout), or of a fresh ``TinyDetector([loss.prior])``
    seeded with ``config.seed``; the batches are :func:`batch_order`'s; the optimizer is Keras SGD with
    the same learning rate and momentum, and the L2 weight decay is added to the gradient as in
    ``torch.optim.SGD``. Only ``"num_pos"`` normalization is supported here. Both frameworks thus start
    from the same point and see the same data; they differ in float rounding and kernels.

    Set ``KERAS_BACKEND`` before importing Keras. On TensorFlow this turns on op determinism and, if
    TensorFlow has not run anything yet, fixes its thread pools to :data:`DEFAULT_THREADS`. Returns ``(model, losses, ap)``: the Keras model, the
    per-step training loss ``(steps,)`` and the AP on ``eval_data`` (None without it).
    """
    import keras

    from .keras import sigmoid_focal_loss as keras_focal_loss

    if loss.normalization != "num_pos":
        raise ValueError("train_keras supports normalization='num_pos' only")
    if init_from is None:
        init_from = TinyDetector([loss.prior], width=config.width, seed=config.seed)
    w = config.width
    keras.utils.set_random_seed(config.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        try:  # only possible before TensorFlow runs its first op
            tf.config.threading.set_intra_op_parallelism_threads(DEFAULT_THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    inputs = keras.Input((data.config.image_size, data.config.image_size, 1))
    h = keras.layers.Conv2D(w, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(w, 3, padding="same", activation="relu")(h)
    h = keras.layers.Conv2D(2 * w, 3, padding="same", activation="relu")(h)
    out = keras.layers.Conv2D(1, 1)(h)
    model = keras.Model(inputs, out)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer, (wt, b) in zip(convs, init_from.copy_weights(0)):
        layer.set_weights([wt.transpose(2, 3, 1, 0), b])

    opt = keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum)
    weights = model.trainable_variables
    opt.build(weights)
    images = np.ascontiguousarray(data.images.transpose(0, 2, 3, 1))
    order = batch_order(len(data), config.steps, config.batch_size, config.seed)
    step_fn = _keras_step_fn(model, opt, keras_focal_loss, loss, config.weight_decay)
    log = np.zeros(config.steps)
    for step in range(config.steps):
        idx = order[step]
        log[step] = float(step_fn(images[idx], data.targets[idx]))
    ap = None
    if eval_data is not None:
        scores = model.predict(np.ascontiguousarray(eval_data.images.transpose(0, 2, 3, 1)), batch_size=256, verbose=0)
        ap = average_precision(scores[..., 0], eval_data.targets)
    return model, log, ap


def _keras_step_fn(model, opt, keras_focal_loss, loss: LossConfig, weight_decay: float):
    """One compiled training step for the active Keras backend (tensorflow, torch or jax)."""
    import keras
    from keras import ops

    weights = model.trainable_variables

    def loss_value(x, y):
        logits = model(x, training=True)[..., 0]
        total = ops.sum(keras_focal_loss(logits, y, alpha=loss.alpha, gamma=loss.gamma, reduction="none"))
        return total / ops.maximum(ops.sum(y), 1.0)

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                value = loss_value(x, y)
            grads = tape.gradient(value, weights)
            grads = [gr + weight_decay * v for gr, v in zip(grads, weights)]
            opt.apply_gradients(zip(grads, weights))
            return value

        return step
    if backend == "torch":
        import torch as _torch

        def step(x, y):
            x, y = _torch.as_tensor(x), _torch.as_tensor(y)
            for v in weights:
                v.value.grad = None
            value = loss_value(x, y)
            value.backward()
            grads = [v.value.grad + weight_decay * v.value.detach() for v in weights]
            with _torch.no_grad():
                opt.apply_gradients(zip(grads, weights))
            return value.detach()

        return step
    raise ValueError(f"train_keras supports the tensorflow and torch backends, not {backend!r}")
