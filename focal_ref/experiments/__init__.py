"""A dense, imbalanced toy problem for measuring the paper's tuning notes on a laptop CPU.

The book's tuning chapter (``book/tuning/``) asks how the focal loss's knobs -- gamma, alpha, the prior
initialization of the last bias and the loss normalization (Lin et al. 2017,
https://arxiv.org/abs/1708.02002, §3.3, §4.1, §5.1, Table 1) -- behave on a problem with the same *shape*
as one-stage detection: one score per location, about 1% positives, a sea of easy background and a few
hard negatives. This package holds everything those pages run, so that a notebook in Colab has it after
``pip install focal_ref``:

* :mod:`~focal_ref.experiments.data` -- :func:`make_dataset` (synthetic images and targets) and
  :func:`batch_order` (NumPy);
* :mod:`~focal_ref.experiments.config` -- :class:`LossConfig` (gamma, alpha, normalization, prior) and
  :class:`TrainConfig`;
* :mod:`~focal_ref.experiments.model` -- :class:`TinyDetector`, G independent copies side by side in
  grouped convolutions, so a whole gamma x alpha grid trains in one pass over the data (torch);
* :mod:`~focal_ref.experiments.training` -- :func:`train` (SGD with momentum, the paper's optimizer;
  :func:`focal_ref.torch.sigmoid_focal_loss`), :func:`predict`, :func:`set_determinism` (torch);
* :mod:`~focal_ref.experiments.keras_training` -- :func:`train_keras`, the same recipe in Keras 3 on the
  TensorFlow, torch or JAX backend;
* :mod:`~focal_ref.experiments.metrics` -- :func:`average_precision`, :func:`prior_bias`,
  :func:`expected_initial_loss`, :func:`normalized_loss_cdf` (NumPy only);
* :mod:`~focal_ref.experiments.progress` -- when the training loops draw a progress bar.

``import focal_ref.experiments`` imports NumPy only; the torch names (:class:`TinyDetector`,
:func:`train`, :func:`predict`, :func:`set_determinism`, :class:`TrainResult`) import torch on first use.

Determinism: :func:`set_determinism` seeds torch, turns on ``torch.use_deterministic_algorithms`` and
fixes the CPU thread count (:data:`DEFAULT_THREADS`, one: a different thread count may change the order
of floating-point sums and so the last digits of a result). The data comes from NumPy generators seeded
explicitly; nothing reads global random state. Two runs on one machine give bit-identical results.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_THREADS, NORMALIZATIONS, LossConfig, Normalization, TrainConfig
from .data import ToyConfig, ToyData, batch_order, make_dataset
from .keras_training import train_keras
from .metrics import average_precision, expected_initial_loss, normalized_loss_cdf, prior_bias

if TYPE_CHECKING:
    from .model import TinyDetector
    from .training import TrainResult, predict, set_determinism, train

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
    "NORMALIZATIONS",
    "Normalization",
]

_TORCH_NAMES = {
    "TinyDetector": ".model",
    "TrainResult": ".training",
    "set_determinism": ".training",
    "train": ".training",
    "predict": ".training",
}


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported on first use (so the NumPy parts import without torch)."""
    if name in _TORCH_NAMES:
        value = getattr(importlib.import_module(_TORCH_NAMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
