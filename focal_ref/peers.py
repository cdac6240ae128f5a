"""An audit of the focal losses people use, run through :mod:`focal_ref.testing` against the reference.

One :class:`Peer` per published function: where it comes from, how its conventions map onto the
reference's ``fn(logits, targets, *, alpha, gamma) -> per-element (or per-sample) loss``, and which of the
checker's regions apply. The mapping is explicit, in one adapter per package, so that a verdict measures
the implementation and not a convention mix-up:

* alpha: the reference's alpha weights the positive class (alpha_t = alpha y + (1-alpha)(1-y)) and
  ``None`` means no weighting. fvcore turns weighting off with ``alpha=-1``; Keras's
  ``binary_focal_crossentropy`` only with ``apply_class_balancing=False``; packages without an alpha (or
  with another meaning of it) are checked at ``alpha=None`` only.
* reduction: every adapter asks for the unreduced loss; per-class maps (MONAI, kornia) are summed over
  the class axis to the reference's per-sample softmax loss.
* probabilities: packages that take probabilities (focal-loss-torch) get ``softmax(logits)`` computed in
  the checked dtype; what that costs at saturation is part of their API's verdict.

The packages are pinned in ``requirements-audit.txt`` and installed with ``--no-deps`` beside the pinned
stack. Two of them cannot be imported as packages here: segmentation-models-pytorch and pytorch-toolbelt
import torchvision (and pytorch-toolbelt OpenCV) at package import, and torchvision does not load beside
the CPU build of torch 2.13.0. Their loss modules need only torch, so :func:`load_module` imports those
files with the parents' ``__init__`` skipped. focal-loss (TensorFlow) and focal-loss-torch both install
a top-level ``focal_loss`` package into the same folder: installed together, ``import focal_loss`` is
the TensorFlow one and the torch class lives in ``focal_loss.focal_loss``.

Paper: Lin et al., "Focal Loss for Dense Object Detection", https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pathlib
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PEERS", "Peer", "AuditRow", "audit", "audit_table", "load_module"]


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
        sys.modules[
            "pytorch_toolbelt.utils"
        ].pytorch_toolbelt_deprecated = support.pytorch_toolbelt_deprecated
    return load_module("pytorch_toolbelt.losses.functional")


# ----------------------------------------------------------------------------------------------
# adapters: adapter(fn, logits, targets, *, alpha, gamma) -> the reference's unreduced loss


def _kornia_binary(fn, x, y, *, alpha, gamma):
    # kornia wants (N, C, *): one channel
    return fn(x[:, None], y[:, None], alpha=alpha, gamma=gamma, reduction="none")[:, 0]


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


def _kornia_softmax(fn, x, t, *, alpha, gamma):
    return fn(x, t, alpha=alpha, gamma=gamma, reduction="none").sum(dim=1)


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


# ----------------------------------------------------------------------------------------------
# the peers


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


# ----------------------------------------------------------------------------------------------
# running the audit


@dataclass
class AuditRow:
    """One peer's outcome: its report, or why it could not be checked."""

    peer: Peer
    version: str | None
    report: Any = None  # a focal_ref.testing.ConformanceReport
    problem: str | None = None


def audit(peers: Sequence[Peer] = PEERS, *, dtype: str = "float32") -> list[AuditRow]:
    """Check every peer with :mod:`focal_ref.testing` in ``dtype`` and return one row each.

    A peer that cannot be imported (not installed, or Keras not on the TensorFlow backend for the
    ``"keras"`` framework) gets a row whose ``problem`` says why; nothing is skipped silently.
    """
    from . import testing

    rows = []
    for peer in peers:
        version = peer.version()
        if peer.framework == "keras":
            import keras

            if keras.backend.backend() != "tensorflow":
                rows.append(AuditRow(peer, version, problem="checked on the TensorFlow backend only"))
                continue
        try:
            fn = peer.load()
        except Exception as exc:  # an import error of a third-party package is a finding, not a crash
            rows.append(AuditRow(peer, version, problem=f"cannot import: {type(exc).__name__}: {exc}"))
            continue
        check = (
            testing.check_sigmoid_focal_loss if peer.kind == "sigmoid" else testing.check_softmax_focal_loss
        )
        report = check(
            fn,
            framework=peer.framework,
            adapter=peer.adapter,
            dtype=dtype,
            alphas=peer.alphas,
            skip=peer.skip,
            name=peer.name,
        )
        rows.append(AuditRow(peer, version, report=report))
    return rows


def audit_table(rows: Sequence[AuditRow]) -> str:
    """A Markdown table: package and version against each region's verdict and worst error."""
    regions: list[str] = []
    for row in rows:
        if row.report is not None:
            for result in row.report.rows:
                if result.region not in regions:
                    regions.append(result.region)
    lines = [
        "| implementation | version | " + " | ".join(regions) + " |",
        "|---|---|" + "---|" * len(regions),
    ]
    for row in rows:
        if row.report is None:
            cells = [row.problem or ""] + [""] * (len(regions) - 1)
        else:
            by_region = {r.region: r for r in row.report.rows}
            cells = [by_region[r].short if r in by_region else "n/a" for r in regions]
        lines.append(f"| {row.peer.name} | {row.version or 'not installed'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# One sentence per failing peer: the mechanism behind its failures. The regions and the minimal inputs
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
