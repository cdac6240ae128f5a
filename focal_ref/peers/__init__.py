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
stack. segmentation-models-pytorch and pytorch-toolbelt ask for torchvision, whose wheels bring another
torch than the pinned CPU build, so their dependencies are not installed: ``import
segmentation_models_pytorch`` fails on timm and pytorch-toolbelt's loss module on OpenCV (cv2). Their loss
modules need only torch, so :func:`load_module` imports those files with the parents' ``__init__``
skipped. focal-loss (TensorFlow) and focal-loss-torch both install
a top-level ``focal_loss`` package into the same folder: installed together, ``import focal_loss`` is
the TensorFlow one and the torch class lives in ``focal_loss.focal_loss``.

Paper: Lin et al., "Focal Loss for Dense Object Detection", https://arxiv.org/abs/1708.02002.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._adapters import load_module
from ._registry import FINDINGS, PEERS, Peer

__all__ = ["PEERS", "FINDINGS", "Peer", "AuditRow", "audit", "audit_table", "load_module"]


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
    from .. import testing

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
