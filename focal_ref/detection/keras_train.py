"""Training and evaluating the Keras twin of the tiny detector, on the PyTorch runs' scenes and batches.

:func:`train_keras_detector` is :func:`focal_ref.detection.train.train_detector` with the model
(:func:`~focal_ref.detection.keras_model.build_keras_retinanet`), the loss
(:func:`~focal_ref.detection.keras_model.keras_retinanet_loss`, built on
:func:`focal_ref.keras.sigmoid_focal_loss`) and the optimizer (Keras's ``AdamW`` with the same learning
rate and weight decay, gradient norm clipped at 10) in Keras 3. Everything else is shared: the scenes,
anchors and anchor labels come from
:func:`focal_ref.detection.train._prepare` (the same cache), the batch order is the same, and the test AP
comes from the same :func:`~focal_ref.detection.inference.postprocess` and
:func:`~focal_ref.detection.metrics.coco_ap` (COCOeval), fed the Keras outputs as torch tensors.

One training step per backend: eager autograd (torch), ``tf.function`` with a ``GradientTape``
(TensorFlow), or a jitted ``jax.value_and_grad`` of ``stateless_call`` with ``stateless_apply`` (JAX).
Set ``KERAS_BACKEND`` before Keras is imported. On a CPU a run is deterministic: one thread (torch),
op determinism (TensorFlow), and Keras's global seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from focal_ref.detection.inference import postprocess
from focal_ref.detection.keras_model import (
    build_keras_retinanet,
    copy_torch_weights,
    keras_retinanet_loss,
    to_channels_last,
)
from focal_ref.detection.metrics import coco_ap
from focal_ref.detection.model import TinyRetinaNet
from focal_ref.detection.train import DetectorConfig, _prepare, anchor_stats, set_determinism

BACKENDS = ("torch", "jax", "tensorflow")
"""The Keras backends :func:`train_keras_detector` runs on."""
INITS = ("torch", "keras")
"""``"torch"``: start from the PyTorch run's initial weights; ``"keras"``: Keras's own draw, same recipe."""
CLIP_NORM = 10.0
"""The global gradient norm is clipped to this (as ``clip_grad_norm_`` in the PyTorch training)."""

Step = Callable[[np.ndarray, np.ndarray, np.ndarray], Any]


def evaluate_keras(model: Any, scenes: Any, anchors: torch.Tensor, batch_size: int = 50) -> dict[str, float]:
    """COCO AP / AP50 / AP75 of a Keras detector on ``scenes``, by the PyTorch pipeline's inference."""
    from keras import ops

    dets: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    images = to_channels_last(scenes.images)
    for start in range(0, len(scenes), batch_size):
        logits, deltas = model(images[start : start + batch_size], training=False)
        logits = torch.from_numpy(np.asarray(ops.convert_to_numpy(logits), np.float32))
        deltas = torch.from_numpy(np.asarray(ops.convert_to_numpy(deltas), np.float32))
        for lg, dl in zip(logits, deltas, strict=True):
            for out, v in zip(dets, postprocess(lg, dl, anchors), strict=True):
                out.append(v.numpy())
    return coco_ap(scenes.boxes, scenes.labels, *dets, num_classes=len(scenes.config.classes))


def train_keras_detector(
    config: DetectorConfig, *, init: str = "torch", progress: Iterable | None = None
) -> dict:
    """Train the Keras detector from scratch with the recipe of ``config`` and measure it on the test scenes.

    Supports the plain recipe (any ``alpha``, ``gamma``, ``prior``, ``ignore_band``, the ``num_pos``
    normalization); OHEM, class weighting and the other normalizations are PyTorch-only switches.

    Args:
        config: the run, as for :func:`~focal_ref.detection.train.train_detector`.
        init: ``"torch"`` copies the initial weights of the PyTorch run with the same config (the same
            start point); ``"keras"`` draws them with Keras's initializers from the same distributions,
            seeded by ``keras.utils.set_random_seed(config.seed)``.
        progress: an iterable over ``range(config.steps)`` to drive the loop (a tqdm bar), or None.

    Returns:
        A dict as :func:`~focal_ref.detection.train.train_detector`'s: ``AP``, ``AP50``, ``AP75``, the
        anchor statistics, ``final_loss`` (mean of the last 20 steps), ``wall_s``, ``backend`` and
        ``model`` (the trained ``keras.Model``; drop it before serializing).

    Raises:
        ValueError: another ``init``, a Keras backend outside :data:`BACKENDS`, or a config with OHEM,
            class weights or another normalization, before anything is trained.

    Example:
        >>> r = train_keras_detector(DetectorConfig(steps=2, n_train=16, n_test=4))
        >>> sorted(k for k in r if k.startswith("AP")), r["model"].name
        (['AP', 'AP50', 'AP75'], 'keras_tiny_retinanet')
    """
    import keras

    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise ValueError(f"train_keras_detector supports the Keras backends {BACKENDS}, not {backend!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if config.ohem is not None or config.class_weight is not None:
        raise ValueError("train_keras_detector runs the plain recipe: ohem and class_weight must be None")
    if config.normalization != "num_pos":
        raise ValueError(f"train_keras_detector normalizes by num_pos, not {config.normalization!r}")
    start = time.perf_counter()
    set_determinism(config.seed)
    keras.utils.set_random_seed(config.seed)
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        try:  # only possible before TensorFlow runs its first op
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    test_seed = config.seed + 1000 if config.test_seed is None else config.test_seed
    train, test, anchors, labels, box_targets = _prepare(
        config.scenes,
        config.anchors,
        config.ignore_band,
        config.seed,
        config.n_train,
        config.n_test,
        test_seed,
    )
    k = len(config.scenes.classes)
    model = build_keras_retinanet(k, config.anchors, config.scenes.canvas, config.width, config.prior)
    if init == "torch":  # the PyTorch run draws its model right after set_determinism(seed)
        set_determinism(config.seed)
        copy_torch_weights(model, TinyRetinaNet(k, config.anchors, config.width, config.prior))
    opt = keras.optimizers.AdamW(
        learning_rate=config.lr, weight_decay=config.weight_decay, epsilon=1e-8, global_clipnorm=CLIP_NORM
    )
    opt.build(model.trainable_variables)
    rng = np.random.default_rng(config.seed)  # the PyTorch run's batch order
    order = np.concatenate(
        [rng.permutation(len(train)) for _ in range(config.steps * config.batch_size // len(train) + 1)]
    )
    images = to_channels_last(train.images)
    labels_np, targets_np = labels.numpy().astype(np.int32), box_targets.numpy()
    step_fn, finish = _step_fn(backend, model, opt, config)
    losses = []
    for step in range(config.steps) if progress is None else progress:
        idx = order[step * config.batch_size : (step + 1) * config.batch_size]
        losses.append(float(step_fn(images[idx], labels_np[idx], targets_np[idx])))
    finish()
    result: dict[str, Any] = dict(evaluate_keras(model, test, anchors))
    result.update(anchor_stats(labels))
    result["final_loss"] = float(np.mean(losses[-20:])) if losses else float("nan")
    result["wall_s"] = time.perf_counter() - start
    result["backend"] = backend
    result["model"] = model
    return result


def _step_fn(backend: str, model: Any, opt: Any, config: DetectorConfig) -> tuple[Step, Callable[[], None]]:
    """One training step for the backend, and what to run after the last step (JAX writes back its state)."""
    weights = model.trainable_variables

    def total(outputs: Any, lab: Any, tgt: Any) -> Any:
        logits, deltas = outputs
        cls, box, _ = keras_retinanet_loss(logits, deltas, lab, tgt, alpha=config.alpha, gamma=config.gamma)
        return cls + box

    def nothing() -> None:
        return None

    if backend == "torch":

        def torch_step(x: Any, lab: Any, tgt: Any) -> Any:
            for v in weights:
                v.value.grad = None
            outputs = model(torch.from_numpy(x), training=True)
            value = total(outputs, torch.from_numpy(lab), torch.from_numpy(tgt))
            value.backward()
            with torch.no_grad():
                opt.apply_gradients(zip([v.value.grad for v in weights], weights, strict=True))
            return value.detach()

        return torch_step, nothing
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def tf_step(x: Any, lab: Any, tgt: Any) -> Any:
            with tf.GradientTape() as tape:
                value = total(model(x, training=True), lab, tgt)
            opt.apply_gradients(zip(tape.gradient(value, weights), weights, strict=True))
            return value

        return tf_step, nothing
    import jax

    def compute(trainable: Any, non_trainable: Any, x: Any, lab: Any, tgt: Any) -> Any:
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return total(outputs, lab, tgt), non_trainable

    grad_fn = jax.value_and_grad(compute, has_aux=True)

    @jax.jit
    def jax_step(state: Any, x: Any, lab: Any, tgt: Any) -> Any:
        trainable, non_trainable, opt_state = state
        (value, non_trainable), grads = grad_fn(trainable, non_trainable, x, lab, tgt)
        trainable, opt_state = opt.stateless_apply(opt_state, grads, trainable)
        return value, (trainable, non_trainable, opt_state)

    state = (
        [v.value for v in weights],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in opt.variables],
    )

    def step(x: Any, lab: Any, tgt: Any) -> Any:
        nonlocal state
        value, state = jax_step(state, x, lab, tgt)
        return value

    def write_back() -> None:
        trainable, non_trainable, opt_state = state
        for variables, values in ((weights, trainable), (model.non_trainable_variables, non_trainable)):
            for v, value in zip(variables, values, strict=True):
                v.assign(value)
        for v, value in zip(opt.variables, opt_state, strict=True):
            v.assign(value)

    return step, write_back
