"""The synthetic data: 32x32 grey images with about 1% positive cells, and the batch order.

Objects are bright filled 3x3 squares; the target is 1 at the 16x16 output cell holding an object's centre
(stride 2). Distractors -- dim filled squares, bright hollow 5x5 rings and bright plus-shaped crosses --
are hard negatives; the noisy background is the mass of easy negatives. Everything is drawn from NumPy
generators seeded explicitly (no global random state), so two calls give identical arrays. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ToyConfig", "ToyData", "make_dataset", "batch_order"]


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

    Example:
        >>> ToyConfig().image_size // ToyConfig().stride
        16
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

    Example:
        >>> round(make_dataset(50, seed=0).positive_rate, 4)
        0.0105
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

    Args:
        n_images: how many images, >= 1.
        seed: seeds the NumPy generator (the same seed gives the same arrays).
        config: the image parameters.

    Returns:
        A :class:`ToyData`.

    Raises:
        ValueError: for ``n_images < 1`` or an image size that is not a multiple of the stride.

    Example:
        >>> data = make_dataset(2, seed=0)
        >>> data.images.shape, data.targets.shape
        ((2, 1, 32, 32), (2, 16, 16))
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


def batch_order(n_items: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices ``(steps, batch_size)`` walking ``range(n_items)`` in epochs, each epoch a fresh permutation.

    A batch never straddles two epochs: the tail of an epoch that does not fill a batch is dropped.

    Args:
        n_items: the number of items.
        steps: the number of batches.
        batch_size: items per batch, at most ``n_items``.
        seed: seeds the permutations.

    Returns:
        An int array ``(steps, batch_size)``.

    Raises:
        ValueError: if ``batch_size > n_items``.

    Example:
        >>> batch_order(4, steps=3, batch_size=2, seed=0).shape
        (3, 2)
    """
    if batch_size > n_items:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the number of items ({n_items})")
    rng = np.random.default_rng([seed, 1])
    per_epoch = n_items // batch_size
    rows: list[np.ndarray] = []
    while len(rows) < steps:
        perm = rng.permutation(n_items)
        rows.extend(perm[: per_epoch * batch_size].reshape(per_epoch, batch_size))
    return np.asarray(rows[:steps])
