"""The published focal losses audited, one :class:`Peer` each, and what was found about each failure."""

from __future__ import annotations

import importlib
import importlib.metadata
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..testing.adapters import kornia_binary as _kornia_binary
from ..testing.adapters import kornia_softmax as _kornia_softmax
from ._adapters import (
    _focal_loss_tf_binary,
    _focal_loss_tf_sparse,
    _focal_loss_torch,
    _fvcore,
    _keras_binary,
    _keras_categorical,
    _monai_sigmoid,
    _monai_softmax,
    _optax,
    _smp_or_toolbelt_binary,
    _softmax_with_logits,
    _toolbelt_functional,
    load_module,
)


@dataclass(frozen=True)
class Peer:
    """One published focal loss and how to check it.

    Attributes:
        name: the function as its users call it.
        distribution: the PyPI distribution that ships it (its version is read from the installed metadata).
        kind: ``"sigmoid"`` (elementwise) or ``"softmax"`` (per sample, integer targets).
        framework: the tensors it takes: ``"torch"``, ``"keras"`` (TensorFlow backend) or ``"numpy"``.
        module / attribute: where to find it; ``bypass_init`` loads the module with :func:`load_module`.
        adapter: maps the reference's call onto the function's own conventions.
        alphas: the alpha values the function can express (``(None,)`` if it has no matching alpha).
        skip: checker regions that do not apply (for example soft labels for a hard-label-only API).
        convention: one sentence on the mapping.
    """

    name: str
    distribution: str
    kind: str
    framework: str
    module: str
    attribute: str
    adapter: Callable[..., Any]
    alphas: tuple = (0.25, 0.75, None)
    skip: tuple = ()
    bypass_init: bool = False
    loader: Callable[[], types.ModuleType] | None = field(default=None, compare=False)
    convention: str = ""

    def load(self) -> Callable[..., Any]:
        """The function (or class) under test; raises ImportError if it cannot be imported."""
        if self.loader is not None:
            module = self.loader()
        elif self.bypass_init:
            module = load_module(self.module)
        else:
            module = importlib.import_module(self.module)
        return getattr(module, self.attribute)

    def version(self) -> str | None:
        """The installed version of :attr:`distribution`, or None."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


_NO_ALPHA = (None,)
_SOFTMAX_NO_SOFT = ("soft labels",)  # integer targets only

PEERS: tuple[Peer, ...] = (
    Peer(
        "fvcore.nn.sigmoid_focal_loss",
        "fvcore",
        "sigmoid",
        "torch",
        "fvcore.nn",
        "sigmoid_focal_loss",
        _fvcore,
        convention="alpha=-1 turns weighting off",
    ),
    Peer(
        "kornia.losses.binary_focal_loss_with_logits",
        "kornia",
        "sigmoid",
        "torch",
        "kornia.losses",
        "binary_focal_loss_with_logits",
        _kornia_binary,
        convention="input (N, 1); the reference's conventions",
    ),
    Peer(
        "monai.losses.FocalLoss(use_softmax=False)",
        "monai",
        "sigmoid",
        "torch",
        "monai.losses",
        "FocalLoss",
        _monai_sigmoid,
        convention="input (N, C): one channel; alpha weights the positive class",
    ),
    Peer(
        "segmentation_models_pytorch focal_loss_with_logits",
        "segmentation-models-pytorch",
        "sigmoid",
        "torch",
        "segmentation_models_pytorch.losses._functional",
        "focal_loss_with_logits",
        _smp_or_toolbelt_binary,
        bypass_init=True,
        convention="loss module loaded without the package",
    ),
    Peer(
        "pytorch_toolbelt focal_loss_with_logits",
        "pytorch-toolbelt",
        "sigmoid",
        "torch",
        "pytorch_toolbelt.losses.functional",
        "focal_loss_with_logits",
        _smp_or_toolbelt_binary,
        loader=_toolbelt_functional,
        convention="loss module loaded without the package",
    ),
    Peer(
        "optax.losses.sigmoid_focal_loss",
        "optax",
        "sigmoid",
        "numpy",
        "optax.losses",
        "sigmoid_focal_loss",
        _optax,
        convention="JAX (x64 for float64); no autodiff row: checked as values",
    ),
    Peer(
        "keras.losses.binary_focal_crossentropy",
        "keras",
        "sigmoid",
        "keras",
        "keras.losses",
        "binary_focal_crossentropy",
        _keras_binary,
        convention="apply_class_balancing=True for alpha; labels (N, 1)",
    ),
    Peer(
        "focal_loss.binary_focal_loss (TF)",
        "focal-loss",
        "sigmoid",
        "keras",
        "focal_loss",
        "binary_focal_loss",
        _focal_loss_tf_binary,
        alphas=_NO_ALPHA,
        convention="no alpha (pos_weight is another weighting)",
    ),
    Peer(
        "kornia.losses.focal_loss",
        "kornia",
        "softmax",
        "torch",
        "kornia.losses",
        "focal_loss",
        _kornia_softmax,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        convention="(N, C) map summed over classes; its alpha is 1-alpha for class 0, alpha for the rest",
    ),
    Peer(
        "monai.losses.FocalLoss(use_softmax=True)",
        "monai",
        "softmax",
        "torch",
        "monai.losses",
        "FocalLoss",
        _monai_softmax,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        convention="to_onehot_y=True; (N, C) map summed over classes",
    ),
    Peer(
        "segmentation_models_pytorch softmax_focal_loss_with_logits",
        "segmentation-models-pytorch",
        "softmax",
        "torch",
        "segmentation_models_pytorch.losses._functional",
        "softmax_focal_loss_with_logits",
        _softmax_with_logits,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        bypass_init=True,
        convention="no alpha",
    ),
    Peer(
        "pytorch_toolbelt softmax_focal_loss_with_logits",
        "pytorch-toolbelt",
        "softmax",
        "torch",
        "pytorch_toolbelt.losses.functional",
        "softmax_focal_loss_with_logits",
        _softmax_with_logits,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        loader=_toolbelt_functional,
        convention="no alpha",
    ),
    Peer(
        "focal_loss.focal_loss.FocalLoss (focal-loss-torch)",
        "focal-loss-torch",
        "softmax",
        "torch",
        "focal_loss.focal_loss",
        "FocalLoss",
        _focal_loss_torch,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        convention="takes probabilities: softmax(logits) in the checked dtype; eps=1e-16 inside the log",
    ),
    Peer(
        "keras.losses.categorical_focal_crossentropy",
        "keras",
        "softmax",
        "keras",
        "keras.losses",
        "categorical_focal_crossentropy",
        _keras_categorical,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        convention="one-hot targets; its scalar alpha=1.0 is the reference's None",
    ),
    Peer(
        "focal_loss.sparse_categorical_focal_loss (TF)",
        "focal-loss",
        "softmax",
        "keras",
        "focal_loss",
        "sparse_categorical_focal_loss",
        _focal_loss_tf_sparse,
        alphas=_NO_ALPHA,
        skip=_SOFTMAX_NO_SOFT,
        convention="no alpha",
    ),
)


# come from the reports themselves (``audit``); tests/test_peers_audit.py checks each mechanism directly.
FINDINGS: dict[str, str] = {
    "fvcore.nn.sigmoid_focal_loss": (
        "computes in float32 whatever the input dtype (`inputs.float()`), takes CE from torch's "
        "binary_cross_entropy_with_logits, which rounds log(1 + e^-|x|) to 0 once e^-|x| < float32's eps "
        "(|x| > 17), and forms 1 - p_t by subtraction, so for gamma < 1 autograd meets 0^(gamma-1) = inf: NaN"
    ),
    "kornia.losses.binary_focal_loss_with_logits": (
        "gives each CE term its own modulating factor, t FL(x, 1) + (1-t) FL(x, 0): a different loss "
        "for soft labels (equal for hard ones)"
    ),
    "monai.losses.FocalLoss(use_softmax=False)": (
        "weights CE by exp(gamma * logsigmoid(-x (2t - 1))), which is (1 - p_t)^gamma only for hard "
        "labels, and forms CE as x - x t - logsigmoid(x), which cancels to 0 for confident negatives"
    ),
    "segmentation_models_pytorch focal_loss_with_logits": (
        "takes p_t = exp(-BCE), which for soft labels is not p_t, and 1 - p_t by subtraction: "
        "0 for saturated logits, NaN gradients for gamma < 1"
    ),
    "pytorch_toolbelt focal_loss_with_logits": (
        "the torchvision formula in float32 (`output.float()`): 1 - p_t by subtraction and CE from "
        "binary_cross_entropy_with_logits, so 0 for saturated logits and NaN gradients for gamma < 1"
    ),
    "keras.losses.binary_focal_crossentropy": (
        "applies the sigmoid and then the probability BCE, which clips p to [1e-7, 1 - 1e-7], and forms "
        "1 - p_t by subtraction: wrong losses at saturation and a NaN gradient for gamma < 1"
    ),
    "focal_loss.binary_focal_loss (TF)": (
        "weights CE by (1 - p)^gamma or p^gamma as the label cast to bool says (any non-zero soft label "
        "counts as positive), not by (1 - p_t)^gamma, and forms 1 - p by subtraction: 0 losses and NaN "
        "gradients at saturation"
    ),
    "kornia.losses.focal_loss": (
        "computes 1 - p as 1 - exp(log p): 0 (and a zero loss) once p_t rounds to 1"
    ),
    "monai.losses.FocalLoss(use_softmax=True)": (
        "computes 1 - p by subtraction after softmax: zero losses at saturation and NaN gradients "
        "for gamma < 1"
    ),
    "segmentation_models_pytorch softmax_focal_loss_with_logits": (
        "computes 1 - p_t as 1 - exp(-CE): zero losses at saturation and NaN gradients for gamma < 1"
    ),
    "pytorch_toolbelt softmax_focal_loss_with_logits": (
        "is not the softmax focal loss: binary CE with logits over every class of the one-hot target, "
        "weighted by a softmax p_t (at gamma = 0 it is not the cross entropy)"
    ),
    "focal_loss.focal_loss.FocalLoss (focal-loss-torch)": (
        "takes probabilities and computes -log(p_t + 1e-16) and 1 - p_t by subtraction: zero losses "
        "at saturation and NaN gradients for gamma < 1"
    ),
    "keras.losses.categorical_focal_crossentropy": (
        "clips probabilities to [1e-7, 1 - 1e-7]: a floor of about 1e-7 on the loss of a confident right "
        "answer, and a zero gradient where the clip is active"
    ),
    "focal_loss.sparse_categorical_focal_loss (TF)": (
        "computes 1 - p_t by subtraction after softmax, and raises for float64 input (gamma is a float32 "
        "tensor in its pow)"
    ),
}
