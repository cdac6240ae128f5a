"""Scenes of real handwriting for the tiny detector: scikit-learn's digits placed on a canvas.

``sklearn.datasets.load_digits`` ships 1,797 scanned 8x8 handwritten digits inside the scikit-learn wheel
(no download). A scene is a square canvas holding a few *target* digits (the classes to detect), each
resized to one of several scales, with clutter: digits of the other classes (look-alikes that are not
objects) and random pen strokes. The digit images are split once, by a fixed seed, into train,
validation and test pools, so no test digit is ever drawn in a training scene.

Boxes are the tight boxes of a digit's ink, in pixels, ``(x0, y0, x1, y1)`` with ``x1``, ``y1``
exclusive: digits differ in width, so the boxes have several aspect ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPLITS = ("train", "val", "test")
_SPLIT_SEED = 20170807  # the paper's arXiv month; fixed forever: the split must never move


@dataclass(frozen=True)
class SceneConfig:
    """What a scene looks like.

    Args:
        canvas: side of the square canvas in pixels.
        classes: the digits that are objects; class ``k`` of the detector is digit ``classes[k]``.
        objects: (min, max) number of target digits per scene, inclusive.
        scales: the side lengths (pixels) a digit's 8x8 image is resized to.
        clutter_digits: (min, max) number of non-target digits per scene.
        strokes: (min, max) number of random pen strokes per scene.
        max_overlap: largest IoU allowed between two objects' placement squares.
        empty: probability that a scene holds no target digit at all (clutter only): sparser scenes.
    """

    canvas: int = 48
    classes: tuple[int, ...] = (0, 1, 2)
    objects: tuple[int, int] = (1, 3)
    scales: tuple[int, ...] = (10, 14, 20)
    clutter_digits: tuple[int, int] = (1, 2)
    strokes: tuple[int, int] = (1, 2)
    max_overlap: float = 0.1
    empty: float = 0.0


@dataclass
class Scenes:
    """A batch of scenes: images and, per image, its boxes and class indices.

    Attributes:
        images: float32 array (N, 1, H, W) with values in [0, 1].
        boxes: list of N float32 arrays (n_i, 4), ``(x0, y0, x1, y1)`` in pixels.
        labels: list of N int64 arrays (n_i,), class indices into ``config.classes``.
        config: the :class:`SceneConfig` that made them.
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    config: SceneConfig

    def __len__(self) -> int:
        return len(self.boxes)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def split_indices(split: str) -> np.ndarray:
    """Sorted indices into ``load_digits()`` of the digits of ``split`` (the three are disjoint).

    Raises:
        ValueError: if ``split`` is not one of ``"train"``, ``"val"``, ``"test"``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(_digits()[0]))
    n_train, n_val = int(0.6 * len(order)), int(0.2 * len(order))
    pick = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    return np.sort(pick[split])


def digit_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The digit images of one split (60% train, 20% val, 20% test of the 1,797 digits).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        ``(images, digits)``: float32 (n, 8, 8) ink in [0, 1] and the int64 digit of each.

    Raises:
        ValueError: if ``split`` is not one of the three names.

    Example:
        >>> [len(digit_split(s)[0]) for s in SPLITS]
        [1078, 359, 360]
    """
    images, digits = _digits()
    idx = split_indices(split)
    return images[idx], digits[idx]


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square image to ``size`` x ``size`` (pixel centres aligned)."""
    n = img.shape[0]
    pos = (np.arange(size) + 0.5) * n / size - 0.5
    pos = np.clip(pos, 0, n - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0).astype(np.float32)
    rows = img[i0] * (1 - w)[:, None] + img[i1] * w[:, None]
    return rows[:, i0] * (1 - w)[None, :] + rows[:, i1] * w[None, :]


def _ink_box(patch: np.ndarray, threshold: float = 0.2) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(patch > threshold)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _square_iou(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    (ax, ay, s), (bx, by, t) = a, b
    w = max(0, min(ax + s, bx + t) - max(ax, bx))
    h = max(0, min(ay + s, by + t) - max(ay, by))
    inter = w * h
    return inter / (s * s + t * t - inter)


def _stroke(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Draw a random line or arc of width ~1.5 px with the ink of a pen."""
    size = canvas.shape[0]
    p0 = rng.uniform(0, size, 2)
    length = rng.uniform(4, size / 3)
    angle = rng.uniform(0, 2 * np.pi)
    bend = rng.uniform(-0.08, 0.08)
    t = np.linspace(0, 1, int(3 * length) + 2)
    ang = angle + bend * t * length
    pts = p0 + np.cumsum(np.stack([np.cos(ang), np.sin(ang)], 1) * length / len(t), axis=0)
    for x, y in pts[::2]:
        x0, y0 = max(int(x) - 3, 0), max(int(y) - 3, 0)
        x1, y1 = min(int(x) + 4, size), min(int(y) + 4, size)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 1.2).astype(np.float32)
        np.maximum(canvas[y0:y1, x0:x1], blob, out=canvas[y0:y1, x0:x1])


def make_scenes(n_images: int, split: str, seed: int, config: SceneConfig = SceneConfig()) -> Scenes:
    """Draw ``n_images`` scenes from the digits of ``split``; the same arguments give the same scenes.

    Args:
        n_images: number of scenes.
        split: the digit pool, ``"train"``, ``"val"`` or ``"test"``.
        seed: seed of the scene generator.
        config: the scene layout.

    Returns:
        The :class:`Scenes`.

    Raises:
        ValueError: for an unknown split or a non-positive ``n_images``.

    Example:
        >>> s = make_scenes(2, "test", seed=0)
        >>> s.images.shape, len(s.boxes[0]) >= 1
        ((2, 1, 48, 48), True)
    """
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    pool, digits = digit_split(split)
    is_target = np.isin(digits, config.classes)
    targets, others = np.flatnonzero(is_target), np.flatnonzero(~is_target)
    class_of = {d: k for k, d in enumerate(config.classes)}
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    size = config.canvas
    images = np.zeros((n_images, 1, size, size), np.float32)
    all_boxes, all_labels = [], []
    for i in range(n_images):
        canvas = images[i, 0]
        placed: list[tuple[int, int, int]] = []
        boxes, labels = [], []
        n_obj = int(rng.integers(config.objects[0], config.objects[1] + 1))
        if rng.random() < config.empty:
            n_obj = 0
        n_clut = int(rng.integers(config.clutter_digits[0], config.clutter_digits[1] + 1))
        for j in range(n_obj + n_clut):
            is_obj = j < n_obj
            idx = int(rng.choice(targets if is_obj else others))
            side = int(rng.choice(config.scales))
            for _ in range(50):  # rejection sampling of a free spot
                x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
                if all(_square_iou((x, y, side), q) <= config.max_overlap for q in placed):
                    break
            else:
                continue
            placed.append((x, y, side))
            patch = _resize(pool[idx], side) * rng.uniform(0.7, 1.0)
            np.maximum(canvas[y : y + side, x : x + side], patch, out=canvas[y : y + side, x : x + side])
            if is_obj:
                x0, y0, x1, y1 = _ink_box(patch)
                boxes.append((x + x0, y + y0, x + x1, y + y1))
                labels.append(class_of[int(digits[idx])])
        for _ in range(int(rng.integers(config.strokes[0], config.strokes[1] + 1))):
            _stroke(canvas, rng)
        canvas += rng.normal(0, 0.03, canvas.shape).astype(np.float32)
        np.clip(canvas, 0, 1, out=canvas)
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        all_labels.append(np.asarray(labels, np.int64))
    return Scenes(images, all_boxes, all_labels, config)
