"""Loading the peers' modules and mapping the reference's call onto each one's conventions.

Each adapter is ``adapter(fn, logits, targets, *, alpha, gamma)`` and returns the reference's unreduced
loss (see :mod:`focal_ref.testing`).
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
import types
from typing import Any

import numpy as np


def load_module(name: str) -> types.ModuleType:
    """Import ``name`` with its parent packages as bare namespaces (their ``__init__`` is not run).

    For loss modules that need only torch inside packages whose ``__init__`` imports torchvision or
    OpenCV. A parent already imported is used as it is.
    """
    parts = name.split(".")
    if parts[0] in sys.modules:  # imported before, or registered as a namespace by an earlier call
        locations = list(sys.modules[parts[0]].__path__)
    else:
        spec = importlib.util.find_spec(parts[0])
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"No module named {parts[0]!r}")
        locations = list(spec.submodule_search_locations)
    path = pathlib.Path(locations[0])
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent not in sys.modules:
            namespace = types.ModuleType(parent)
            namespace.__path__ = [str(path)]
            sys.modules[parent] = namespace
        path = path / parts[i]
    return importlib.import_module(name)


def _toolbelt_functional() -> types.ModuleType:
    # pytorch_toolbelt.losses.functional does `from ..utils import pytorch_toolbelt_deprecated`, and
    # pytorch_toolbelt.utils imports cv2; its `support` module holds that decorator alone.
    if "pytorch_toolbelt.utils" not in sys.modules:
        support = load_module("pytorch_toolbelt.utils.support")
        utils: Any = sys.modules["pytorch_toolbelt.utils"]
        utils.pytorch_toolbelt_deprecated = support.pytorch_toolbelt_deprecated
    return load_module("pytorch_toolbelt.losses.functional")


# ----------------------------------------------------------------------------------------------
# adapters: adapter(fn, logits, targets, *, alpha, gamma) -> the reference's unreduced loss


def _fvcore(fn, x, y, *, alpha, gamma):
    return fn(x, y, alpha=-1 if alpha is None else alpha, gamma=gamma, reduction="none")


def _optax(fn, x, y, *, alpha, gamma):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(x.dtype == np.float64):
        return np.asarray(fn(jnp.asarray(x), jnp.asarray(y), alpha=alpha, gamma=gamma))


def _keras_binary(fn, x, y, *, alpha, gamma):
    from keras import ops

    # one label per sample: (N, 1), the loss is averaged over the last axis of size 1
    kwargs = {"apply_class_balancing": alpha is not None, "alpha": 0.25 if alpha is None else alpha}
    out = fn(ops.expand_dims(y, -1), ops.expand_dims(x, -1), gamma=gamma, from_logits=True, **kwargs)
    return out


def _focal_loss_tf_binary(fn, x, y, *, alpha, gamma):
    return fn(y, x, gamma, from_logits=True)


def _monai_sigmoid(fn, x, y, *, alpha, gamma):
    loss = fn(use_softmax=False, gamma=gamma, alpha=alpha, reduction="none")
    return loss(x[:, None], y[:, None])[:, 0]


def _monai_softmax(fn, x, t, *, alpha, gamma):
    loss = fn(use_softmax=True, gamma=gamma, to_onehot_y=True, reduction="none")
    return loss(x, t[:, None]).sum(dim=1)


def _smp_or_toolbelt_binary(fn, x, y, *, alpha, gamma):
    return fn(x, y, gamma=gamma, alpha=alpha, reduction="none")


def _softmax_with_logits(fn, x, t, *, alpha, gamma):
    return fn(x, t, gamma=gamma, reduction="none")


def _focal_loss_torch(fn, x, t, *, alpha, gamma):
    import torch

    return fn(gamma=gamma, reduction="none")(torch.softmax(x, dim=-1), t)


def _keras_categorical(fn, x, t, *, alpha, gamma):
    from keras import ops

    # Keras multiplies by a scalar alpha (default 0.25): 1.0 is the reference's alpha=None
    one_hot = ops.one_hot(t, ops.shape(x)[-1], dtype=x.dtype)
    return fn(one_hot, x, alpha=1.0, gamma=gamma, from_logits=True)


def _focal_loss_tf_sparse(fn, x, t, *, alpha, gamma):
    return fn(t, x, gamma, from_logits=True)
