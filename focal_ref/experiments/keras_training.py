"""The same model and recipe in Keras 3, with :func:`focal_ref.keras.sigmoid_focal_loss`, on any backend.

The Keras model is ``Conv2D(w, 3) MaxPooling2D(2) Conv2D(w, 3) Conv2D(2w, 3) Conv2D(1, 1)`` (channels last,
"same" padding, ReLU), the PyTorch model's layers, started from the PyTorch model's weights. One training
step is compiled per backend: ``tf.function`` with a ``GradientTape`` (TensorFlow), eager autograd (torch),
or a jitted ``jax.value_and_grad`` of ``stateless_call`` with ``stateless_apply`` (JAX).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .config import DEFAULT_THREADS, LossConfig, TrainConfig
from .data import ToyData, batch_order
from .metrics import average_precision
from .progress import progress_bar

__all__ = ["BACKENDS", "train_keras"]

#: The Keras backends :func:`train_keras` runs on.
BACKENDS = ("tensorflow", "torch", "jax")

Step = Callable[[np.ndarray, np.ndarray], Any]


def train_keras(
    loss: LossConfig,
    data: ToyData,
    config: TrainConfig | None = None,
    *,
    eval_data: ToyData | None = None,
    init_from: Any = None,
    progress: bool | None = None,
) -> tuple[Any, np.ndarray, float | None]:
    """Train one copy of :class:`~focal_ref.experiments.TinyDetector`'s architecture in Keras 3.

    The loss is :func:`focal_ref.keras.sigmoid_focal_loss` (Lin et al. 2017,
    https://arxiv.org/abs/1708.02002), summed over the batch and divided by the number of positives.
    The initial weights are those of ``init_from`` (copy 0, transposed to Keras layout), or of a fresh
    ``TinyDetector([loss.prior])`` seeded with ``config.seed``; the batches are :func:`batch_order`'s; the
    optimizer is Keras SGD with the same learning rate and momentum, and the L2 weight decay is added to
    the gradient as in ``torch.optim.SGD``. Both frameworks thus start from the same point and see the
    same data; they differ in float rounding and kernels.

    Set ``KERAS_BACKEND`` before importing Keras. On TensorFlow this turns on op determinism and, if
    TensorFlow has not run anything yet, fixes its thread pools to :data:`DEFAULT_THREADS`.

    Args:
        loss: gamma, alpha and prior; only ``normalization="num_pos"`` is supported here.
        data: the training data.
        config: the optimization settings (default ``TrainConfig()``).
        eval_data: data for the held-out AP (None: no AP).
        init_from: a torch ``TinyDetector`` whose copy 0 gives the initial weights (needs torch).
        progress: a tqdm bar over the steps: True, False, or None for "when someone is watching"
            (:mod:`focal_ref.experiments.progress`).

    Returns:
        ``(model, losses, ap)``: the Keras model, the per-step training loss ``(steps,)`` (before each
        step's update) and the AP on ``eval_data`` (None without it).

    Raises:
        ValueError: for another normalization or a Keras backend outside :data:`BACKENDS`, before
            anything is built.

    Example:
        >>> from focal_ref.experiments import make_dataset
        >>> _, losses, ap = train_keras(LossConfig(), make_dataset(16, seed=0), TrainConfig(steps=2))
        >>> losses.shape, ap
        ((2,), None)
    """
    import keras

    config = config or TrainConfig()
    from ..keras import sigmoid_focal_loss as keras_focal_loss

    if loss.normalization != "num_pos":
        raise ValueError("train_keras supports normalization='num_pos' only")
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise ValueError(f"train_keras supports the Keras backends {BACKENDS}, not {backend!r}")
    if init_from is None:
        from .model import TinyDetector

        init_from = TinyDetector([loss.prior], width=config.width, seed=config.seed)
    w = config.width
    keras.utils.set_random_seed(config.seed)
    if backend == "tensorflow":
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
    for layer, (wt, b) in zip(convs, init_from.copy_weights(0), strict=True):
        layer.set_weights([wt.transpose(2, 3, 1, 0), b])

    opt = keras.optimizers.SGD(learning_rate=config.lr, momentum=config.momentum)
    opt.build(model.trainable_variables)
    images = np.ascontiguousarray(data.images.transpose(0, 2, 3, 1))
    order = batch_order(len(data), config.steps, config.batch_size, config.seed)
    step_fn, finish = _keras_step_fn(backend, model, opt, keras_focal_loss, loss, config.weight_decay)
    log = np.zeros(config.steps)
    for step in progress_bar(range(config.steps), progress, config.steps, desc=f"train_keras ({backend})"):
        idx = order[step]
        log[step] = float(step_fn(images[idx], data.targets[idx]))
    finish()
    ap = None
    if eval_data is not None:
        eval_images = np.ascontiguousarray(eval_data.images.transpose(0, 2, 3, 1))
        scores = model.predict(eval_images, batch_size=256, verbose=0)
        ap = average_precision(scores[..., 0], eval_data.targets)
    return model, log, ap


def _keras_step_fn(
    backend: str, model: Any, opt: Any, keras_focal_loss: Any, loss: LossConfig, weight_decay: float
) -> tuple[Step, Callable[[], None]]:
    """One training step for the backend, and what to run after the last step (JAX writes back its state)."""
    from keras import ops

    weights = model.trainable_variables

    def normalized(logits: Any, y: Any) -> Any:
        total = ops.sum(keras_focal_loss(logits, y, alpha=loss.alpha, gamma=loss.gamma, reduction="none"))
        return total / ops.maximum(ops.sum(y), 1.0)

    def nothing() -> None:
        return None

    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def tf_step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                value = normalized(model(x, training=True)[..., 0], y)
            grads = tape.gradient(value, weights)
            grads = [gr + weight_decay * v for gr, v in zip(grads, weights, strict=True)]
            opt.apply_gradients(zip(grads, weights, strict=True))
            return value

        return tf_step, nothing
    if backend == "torch":
        import torch

        def torch_step(x: Any, y: Any) -> Any:
            x, y = torch.as_tensor(x), torch.as_tensor(y)
            for v in weights:
                v.value.grad = None
            value = normalized(model(x, training=True)[..., 0], y)
            value.backward()
            grads = [v.value.grad + weight_decay * v.value.detach() for v in weights]
            with torch.no_grad():
                opt.apply_gradients(zip(grads, weights, strict=True))
            return value.detach()

        return torch_step, nothing
    import jax

    def compute(trainable: Any, non_trainable: Any, x: Any, y: Any) -> Any:
        logits, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return normalized(logits[..., 0], y), non_trainable

    grad_fn = jax.value_and_grad(compute, has_aux=True)

    @jax.jit
    def jax_step(state: Any, x: Any, y: Any) -> Any:
        trainable, non_trainable, opt_state = state
        (value, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        grads = [g + weight_decay * v for g, v in zip(grads, trainable, strict=True)]
        trainable, opt_state = opt.stateless_apply(opt_state, grads, trainable)
        return value, (trainable, non_trainable, opt_state)

    state = (
        [v.value for v in weights],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in opt.variables],
    )

    def step(x: Any, y: Any) -> Any:
        nonlocal state
        value, state = jax_step(state, x, y)
        return value

    def write_back() -> None:
        trainable, non_trainable, opt_state = state
        for variables, values in ((weights, trainable), (model.non_trainable_variables, non_trainable)):
            for v, value in zip(variables, values, strict=True):
                v.assign(value)
        for v, value in zip(opt.variables, opt_state, strict=True):
            v.assign(value)

    return step, write_back
