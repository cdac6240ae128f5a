"""The tiny RetinaNet in Keras 3 layers, and its loss with :func:`focal_ref.keras.sigmoid_focal_loss`.

The architecture is :class:`focal_ref.detection.model.TinyRetinaNet`'s, layer for layer (channels last):
a stem of two 3x3 convolutions (the second with stride 2), two more stride-2 convolutions (strides 4 and 8),
and on every pyramid level of the anchor layout the same class tower + class head (``K * A`` sigmoid
logits per location) and box head (``4 * A`` deltas). The heads' weights are shared between the levels.
A stride-2 convolution pads one pixel on every side, as PyTorch's ``padding=1`` does (Keras's
``padding="same"`` would pad only the bottom and right of an even-sized input, and move every box by a
pixel); the outputs are flattened level by level, then row, column, anchor, class: the order of
:func:`~focal_ref.detection.anchors.make_anchors` and of the PyTorch model.

Initialization (Lin et al. 2017, §4.1, https://arxiv.org/abs/1708.02002): the class tower and both heads
are Gaussian with sigma .01 and bias 0, the class head's bias is the prior ``-log((1 - pi) / pi)``; the
backbone uses PyTorch's default (uniform, bound ``1 / sqrt(fan_in)``, for weights and biases). Or, with
:func:`copy_torch_weights`, the very weights of a PyTorch model.

The loss (:func:`keras_retinanet_loss`) is the PyTorch :func:`~focal_ref.detection.model.retinanet_loss`
written with ``keras.ops``: the focal loss summed over every anchor and class outside the IoU band (the
band's anchors get the target ``-1`` and ``ignore_index=-1``), plus Smooth-L1 over the positive anchors,
both divided by the number of positive anchors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from focal_ref.detection.anchors import AnchorConfig
from focal_ref.detection.model import BACKBONE_STRIDES, prior_bias

IGNORE_TARGET = -1.0
"""The classification target of an anchor in the IoU band, passed as ``ignore_index``."""

# Keras layer name -> the PyTorch TinyRetinaNet's module holding the same convolution
TORCH_NAMES = {
    "stem_conv1": "stem.0",
    "stem_conv2": "stem.2",
    "down4": "down4.0",
    "down8": "down8.0",
    "cls_tower": "cls_tower.0",
    "cls_head": "cls_head",
    "box_head": "box_head",
}


def _torch_default(fan_in: int) -> dict[str, Any]:
    """Initializers of PyTorch's default ``Conv2d`` init: weights and biases U(-1/sqrt(fan_in), ..)."""
    import keras

    bound = 1 / math.sqrt(fan_in)
    return {
        # kaiming_uniform(a=sqrt(5)) = U(-sqrt(3 * (1/3) / fan_in), ..)
        "kernel_initializer": keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def build_keras_retinanet(
    num_classes: int,
    anchors: AnchorConfig,
    canvas: int,
    width: int = 32,
    prior: float | None = 0.01,
) -> Any:
    """The Keras twin of :class:`~focal_ref.detection.model.TinyRetinaNet`.

    Args:
        num_classes: K.
        anchors: the anchor layout (its strides choose the levels the heads run on).
        canvas: the input side in pixels (inputs are ``(B, canvas, canvas, 1)``, channels last).
        width: channels of the backbone and heads.
        prior: the prior probability of the class head's initial bias (``None``: bias 0).

    Returns:
        A ``keras.Model`` from images to ``(logits (B, M, K), deltas (B, M, 4))``, anchors in
        :func:`~focal_ref.detection.anchors.make_anchors` order. Its random weights come from Keras's
        global seed (``keras.utils.set_random_seed``).

    Raises:
        ValueError: a stride outside the backbone's (2, 4, 8), or a canvas not divisible by 8.

    Example:
        >>> m = build_keras_retinanet(3, AnchorConfig(), canvas=48)
        >>> [tuple(o.shape) for o in m.outputs]
        [(None, 1620, 3), (None, 1620, 4)]
    """
    import keras

    if any(s not in BACKBONE_STRIDES for s in anchors.strides):
        raise ValueError(f"anchors.strides must be among {BACKBONE_STRIDES}, got {anchors.strides}")
    if canvas % 8:
        raise ValueError(f"canvas must be divisible by 8, got {canvas}")
    layers = keras.layers
    a, half = anchors.num_anchors, width // 2
    gauss = {"kernel_initializer": keras.initializers.RandomNormal(stddev=0.01), "bias_initializer": "zeros"}
    cls_bias = keras.initializers.Constant(prior_bias(prior)) if prior is not None else "zeros"

    def down(name: str, cin: int, cout: int) -> Any:  # PyTorch's Conv2d(cin, cout, 3, 2, 1) + ReLU
        pad = layers.ZeroPadding2D(1, name=f"{name}_pad")
        conv = layers.Conv2D(cout, 3, 2, "valid", activation="relu", name=name, **_torch_default(9 * cin))
        return lambda x: conv(pad(x))

    images = keras.Input((canvas, canvas, 1), name="images")
    f2 = layers.Conv2D(half, 3, padding="same", activation="relu", name="stem_conv1", **_torch_default(9))(
        images
    )
    f2 = down("stem_conv2", half, width)(f2)
    feats = {2: f2}
    if max(anchors.strides) >= 4:
        feats[4] = down("down4", width, width)(f2)
    if max(anchors.strides) >= 8:
        feats[8] = down("down8", width, width)(feats[4])
    tower = layers.Conv2D(width, 3, padding="same", activation="relu", name="cls_tower", **gauss)
    cls_head = layers.Conv2D(
        num_classes * a,
        3,
        padding="same",
        name="cls_head",
        kernel_initializer=gauss["kernel_initializer"],
        bias_initializer=cls_bias,
    )
    box_head = layers.Conv2D(4 * a, 3, padding="same", name="box_head", **gauss)
    logits, deltas = [], []
    for s in anchors.strides:
        n = (canvas // s) ** 2 * a
        logits.append(layers.Reshape((n, num_classes), name=f"logits_s{s}")(cls_head(tower(feats[s]))))
        deltas.append(layers.Reshape((n, 4), name=f"deltas_s{s}")(box_head(feats[s])))
    cat = layers.Concatenate(axis=1, name="logits"), layers.Concatenate(axis=1, name="deltas")
    outputs = [cat[0](logits), cat[1](deltas)] if len(logits) > 1 else [logits[0], deltas[0]]
    return keras.Model(images, outputs, name="keras_tiny_retinanet")


def copy_torch_weights(keras_model: Any, torch_model: Any) -> None:
    """Set ``keras_model``'s convolutions to a :class:`~focal_ref.detection.model.TinyRetinaNet`'s weights.

    PyTorch kernels ``(out, in, kh, kw)`` become Keras's ``(kh, kw, in, out)``; the biases are copied.

    Raises:
        ValueError: the two models' convolutions differ in shape.
    """
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    for name, torch_name in TORCH_NAMES.items():
        try:
            layer = keras_model.get_layer(name)
        except ValueError:  # a level the anchor layout does not use
            continue
        kernel = state[f"{torch_name}.weight"].transpose(2, 3, 1, 0)
        bias = state[f"{torch_name}.bias"]
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != [kernel.shape, bias.shape]:
            raise ValueError(f"layer {name}: Keras shapes {shapes}, PyTorch {[kernel.shape, bias.shape]}")
        layer.set_weights([kernel, bias])


def class_targets(labels: Any, num_classes: int, dtype: str = "float32") -> Any:
    """One-hot targets (B, M, K) of anchor labels (B, M): 0 for background, :data:`IGNORE_TARGET` in the band.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> ops.convert_to_numpy(class_targets(np.array([[1, -2, -1]]), 2)).tolist()
        [[[0.0, 1.0], [0.0, 0.0], [-1.0, -1.0]]]
    """
    from keras import ops

    labels = ops.convert_to_tensor(labels, "int32")
    onehot = ops.one_hot(ops.maximum(labels, 0), num_classes, dtype=dtype)
    pos = ops.expand_dims(ops.cast(labels >= 0, dtype), -1)
    return ops.where(ops.expand_dims(labels == -1, -1), IGNORE_TARGET, onehot * pos)


def keras_retinanet_loss(
    logits: Any,
    deltas: Any,
    labels: Any,
    box_targets: Any,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    smooth_l1_beta: float = 1 / 9,
) -> tuple[Any, Any, Any]:
    """The RetinaNet loss of a batch in ``keras.ops``, divided by the number of positive anchors.

    .. math::

        L = \\frac{1}{N_{pos}} \\Big[\\sum_{a \\notin \\mathrm{ignored}} \\sum_k \\mathrm{FL}(x_{ak}, y_{ak})
            + \\sum_{a \\in \\mathrm{pos}} \\mathrm{SmoothL1}(d_a - t_a)\\Big]

    (Lin et al. 2017, https://arxiv.org/abs/1708.02002), the same function as the PyTorch
    :func:`~focal_ref.detection.model.retinanet_loss`. The focal term is
    :func:`focal_ref.keras.sigmoid_focal_loss` with ``reduction="sum"`` and ``ignore_index=-1``.

    Args:
        logits: (B, M, K) class logits; deltas: (B, M, 4) predicted box deltas.
        labels: (B, M) integer anchor labels (class, -1 ignore, -2 background).
        box_targets: (B, M, 4) encoded targets (used where ``labels >= 0``).
        alpha, gamma: the focal loss's parameters (``gamma=0``: alpha-balanced cross entropy).
        smooth_l1_beta: the Smooth-L1 transition point (Detectron's 1/9).

    Returns:
        ``(cls_loss, box_loss, num_pos)``: 0-d tensors; ``num_pos`` is the positive count, at least 1.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> cls, box, n = keras_retinanet_loss(
        ...     np.zeros((1, 3, 2), "float32"), np.zeros((1, 3, 4), "float32"), np.array([[1, -2, -1]]),
        ...     np.full((1, 3, 4), 0.5, "float32"))
        >>> print(f"{float(ops.convert_to_numpy(cls)):.4f} {float(ops.convert_to_numpy(box)):.4f}")
        0.4332 1.7778
    """
    from keras import ops

    from focal_ref.keras import sigmoid_focal_loss

    logits = ops.convert_to_tensor(logits)
    dtype = logits.dtype
    targets = class_targets(labels, int(logits.shape[-1]), dtype)
    labels = ops.convert_to_tensor(labels, "int32")
    pos = ops.cast(labels >= 0, dtype)
    num_pos = ops.maximum(ops.sum(pos), 1.0)
    fl = sigmoid_focal_loss(
        logits, targets, alpha=alpha, gamma=gamma, reduction="sum", ignore_index=IGNORE_TARGET
    )
    diff = ops.abs(ops.convert_to_tensor(deltas, dtype) - ops.convert_to_tensor(box_targets, dtype))
    sl1 = ops.where(diff < smooth_l1_beta, 0.5 * diff**2 / smooth_l1_beta, diff - 0.5 * smooth_l1_beta)
    box = ops.sum(sl1 * ops.expand_dims(pos, -1))
    return fl / num_pos, box / num_pos, num_pos


def to_channels_last(images: np.ndarray) -> np.ndarray:
    """Scenes' images (N, 1, H, W) as the Keras model's input (N, H, W, 1), contiguous."""
    return np.ascontiguousarray(np.asarray(images).transpose(0, 2, 3, 1))
