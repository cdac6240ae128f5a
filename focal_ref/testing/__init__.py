"""Conformance checks: run anyone's focal loss over a battery of cases against the float64 reference.

::

    from focal_ref.testing import check_sigmoid_focal_loss
    report = check_sigmoid_focal_loss(my_loss, framework="torch")
    print(report)            # a plain-text table; in a notebook the report renders as an HTML table
    assert report.passed

The callable under test has the **documented signature** ::

    fn(logits, targets, *, alpha, gamma) -> loss

* sigmoid: ``logits`` and ``targets`` are 1-D float tensors of the framework (targets in [0, 1]); the result
  is the elementwise loss, shape ``(N,)``. ``alpha`` is a number in [0, 1] weighting the positive class
  (alpha_t = alpha*y + (1-alpha)*(1-y)) or ``None`` (alpha_t = 1).
* softmax: ``logits`` is ``(N, C)``; ``targets`` is ``(N,)`` integer class indices, or ``(N, C)`` float
  probabilities in the "soft labels" region; the result is the per-sample loss, shape ``(N,)``. ``alpha`` is
  ``None`` or a tuple of C per-class weights (FL = -sum_c y_c alpha_c (1-p_c)^gamma log p_c).

Anything else (other argument order, probabilities instead of logits, another alpha convention, a
reduced result, a module) goes through an **adapter** ``adapter(fn, logits, targets, *, alpha, gamma)``
that calls ``fn`` its own way and returns the documented result.

Regions (each a row of the report):

* ``moderate logits`` -- logits in [-3, 3], hard labels, several alpha and gamma: formula and conventions;
* ``saturated logits`` -- |logit| from 6 to 745, hard labels, easy (p_t -> 1) and hard (p_t -> 0) examples:
  clamps, epsilons, ``1 - sigmoid(x)`` and other cancellations;
* ``soft labels`` -- targets strictly between 0 and 1 (sigmoid) or probability vectors (softmax);
* ``gamma < 1 near saturation`` -- gamma = 0.25 and 0.5 where 1 - p_t is tiny or 0: NaN from a negative base;
* ``gradients`` -- d loss / d logits from the framework's autodiff (torch autograd; Keras through its
  backend: TensorFlow ``GradientTape``, torch autograd or ``jax.vjp``) on cases from every region above,
  against :func:`focal_ref.sigmoid_focal_loss_grad` / :func:`focal_ref.softmax_focal_loss_grad`.
  ``framework="numpy"`` cannot differentiate: the row is skipped.
* ``second derivatives`` (opt-in: ``regions=[*REGIONS, SECOND_DERIVATIVES]``) -- d^2 loss / d logits^2
  through the framework's autodiff twice (torch double backward, nested ``GradientTape``, ``jax.jvp`` of
  ``jax.vjp``): the elementwise second derivative (sigmoid) or each sample's C x C Hessian (softmax),
  against the reference's (see :mod:`focal_ref.testing.battery`). A zero Hessian from a closed-form
  backward that autograd cannot differentiate, or a NaN at saturation, fails here.

Argument regions of the sigmoid check (opt-in: ``regions=[*REGIONS, *ARGUMENT_REGIONS]``; the defaults, and
so the peer audit, are unchanged), for the sigmoid family's keywords (:mod:`focal_ref.testing.arguments`):

* ``weight`` -- per-element weights with zeros and a large value, as ``(N, C)``, ``(C,)`` and ``(N, 1)``;
* ``pos_weight`` -- a number, per class ``(C,)`` with 0 and a large value, per element;
* ``ignore_index`` -- ignored elements at saturated logits and at gamma < 1, whole ignored rows, every
  element ignored (the mean is 0.0), ignore combined with ``weight`` and with ``pos_weight``.

Each case is ``(N, C)`` logits with hard labels, called as ``fn(logits, targets, *, alpha, gamma,
reduction=..., <argument>=...)`` for ``reduction`` "none", "sum" and "mean" (mean = sum / number of
non-ignored elements, unweighted), and differentiated (elementwise loss), against the reference at the
inputs and weights as the framework holds them, with the gradient tolerance. A callable (or adapter) that
does not take the keyword is not called with it: the row is "skipped" with the note "does not accept
weight"; one without ``reduction`` is checked elementwise only, and its note says so. An adapter raises
:class:`~focal_ref.testing.frameworks.NotSupported` for a case its library cannot express (kornia's weight
is per class only): that case is skipped with the message.

Error measure: the inputs are first converted to the framework's tensors of ``dtype`` and read back, and
the reference is evaluated at those rounded inputs, so only the implementation's own error counts. The
error of a value is |got - want| / max(scale, floor) with the tolerance ``rtol`` below:

* losses: scale = |want|: a componentwise relative error;
* sigmoid gradients: scale = alpha_t m^gamma (gamma |1-2y| r CE + m), the sum of the magnitudes of the
  gradient's two terms (= |want| for hard labels), so a soft-label gradient that is small only through
  cancellation is not held to a relative accuracy that no floating-point code reaches;
* softmax gradients, class-index targets: scale = sum_c |d loss / d log p_c| over the sample's classes,
  which bounds every component of that sample's gradient (a normwise error: the backward pass of
  log_softmax is accurate to that scale, not componentwise);
* softmax gradients, probability targets: scale = p_j sum_{c != j} w_c g_c + w_j g_j (1 - p_j), the
  magnitudes of the two terms of component j. Targets within 1e-15 ... 1e-3 of one-hot make the first sum
  tiny; writing it as ``sum - w_j`` cancels and fails here;
* second derivatives: scale = |reference| + the gradient's scale (sigmoid), or per sample the largest
  |Hessian entry| + the largest gradient scale (softmax), with a tolerance of twice the gradient's;
* ``floor`` keeps values near the dtype's subnormal range to an absolute test.

Tolerances (``TOLERANCES``): rtol = 64 ulp for float32/float64 losses and 128 ulp for their gradients;
float16/bfloat16 (which should be computed in float32 inside) get 4 and 8 ulp of the half type.
A non-finite value where the reference is finite, an exception (``SystemExit`` included), ``None``, a
complex result, or a result of the wrong shape fails the region, with a note naming the case. Invalid
arguments of the check itself (``gammas``, ``alphas``, ``num_classes``, regions) raise ``ValueError`` before
anything runs.

:func:`summarize` puts several reports in one table (a row per implementation, a column per region).
Adapters for common signatures (the blog post's code, Keras's built-ins, kornia) are in
:mod:`focal_ref.testing.adapters`. The same check runs from the command line, exiting 1 on failure
(2 on a usage error, 3 when the named module fails to import)::

    python -m focal_ref check package.module:function --kind sigmoid --framework torch

The package's modules: :mod:`~focal_ref.testing.regions` (region names, tolerances),
:mod:`~focal_ref.testing.reports` (reports and tables), :mod:`~focal_ref.testing.frameworks` (tensors and
autodiff), :mod:`~focal_ref.testing.battery` (cases, reference values, error scales),
:mod:`~focal_ref.testing.compare` (tallies, running regions), :mod:`~focal_ref.testing.checkers` (the two
checks), :mod:`~focal_ref.testing.arguments` (the argument regions), :mod:`~focal_ref.testing.adapters`
and :mod:`~focal_ref.testing.loader` (the command line's loader).
"""

from __future__ import annotations

from . import adapters
from .adapters import (
    keras_binary_focal_crossentropy,
    keras_categorical_focal_crossentropy,
    keras_closure,
    kornia_binary,
    kornia_softmax,
    multiclass_per_row,
    multilabel_per_example,
    torch_per_example,
)
from .checkers import check_sigmoid_focal_loss, check_softmax_focal_loss
from .frameworks import NotSupported
from .loader import load_callable
from .regions import (
    ALL_REGIONS,
    ARGUMENT_REGIONS,
    GRADIENTS,
    IGNORE_INDEX,
    LOW_GAMMA,
    MODERATE,
    OPTIONAL_REGIONS,
    POS_WEIGHT,
    REGIONS,
    SATURATED,
    SECOND_DERIVATIVES,
    SIGMOID_REGIONS,
    SOFT,
    TOLERANCES,
    WEIGHT,
)
from .reports import (
    ConformanceReport,
    RegionResult,
    SummaryTable,
    html_table,
    markdown_table,
    summarize,
    text_table,
)

__all__ = [
    "REGIONS",
    "OPTIONAL_REGIONS",
    "ALL_REGIONS",
    "MODERATE",
    "SATURATED",
    "SOFT",
    "LOW_GAMMA",
    "GRADIENTS",
    "SECOND_DERIVATIVES",
    "ARGUMENT_REGIONS",
    "SIGMOID_REGIONS",
    "WEIGHT",
    "POS_WEIGHT",
    "IGNORE_INDEX",
    "NotSupported",
    "TOLERANCES",
    "RegionResult",
    "ConformanceReport",
    "SummaryTable",
    "check_sigmoid_focal_loss",
    "check_softmax_focal_loss",
    "summarize",
    "load_callable",
    "text_table",
    "markdown_table",
    "html_table",
    "adapters",
    "keras_closure",
    "torch_per_example",
    "multilabel_per_example",
    "multiclass_per_row",
    "keras_binary_focal_crossentropy",
    "keras_categorical_focal_crossentropy",
    "kornia_binary",
    "kornia_softmax",
]
