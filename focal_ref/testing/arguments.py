"""The sigmoid family's keyword arguments: cases for ``weight``, ``pos_weight`` and ``ignore_index``.

API decision 2 (``/work/shared/DESIGN.md``; the reference is :func:`focal_ref.sigmoid_focal_loss`):

.. math::

    \\mathrm{CE}_i = -[\\,w_+\\,y_i\\log p_i + (1-y_i)\\log(1-p_i)\\,],\\qquad
    \\mathrm{FL}_i = w_i\\,\\alpha_t\\,(1-p_t)^{\\gamma}\\,\\mathrm{CE}_i

(Lin et al. 2017, https://arxiv.org/abs/1708.02002, with ``BCEWithLogitsLoss``'s ``pos_weight``), where an
element whose target equals ``ignore_index`` gives 0 (also in the gradient) and leaves the mean's count:
mean = sum_i FL_i / N_kept, 0.0 when every element is ignored; the count stays unweighted.

Each region is a list of :class:`ArgumentCase` on ``(N, C)`` logits with hard labels, built to break the
usual mistakes: weights with zeros and large values, broadcast as ``(N, C)``, ``(C,)`` and ``(N, 1)``;
``pos_weight`` as a number, per class (with 0 and a large value) and per element; ignored elements at
saturated logits and at gamma < 1 (where computing the loss of a target of -1 and masking it afterwards
gives NaN), whole ignored rows, everything ignored, and ignore combined with ``weight`` and ``pos_weight``.
Each case is called with ``reduction="none"``, ``"sum"`` and ``"mean"``, and differentiated (elementwise
loss) through the framework's autodiff; all of it is compared with the reference at the inputs as the
framework holds them (weights included).

The loss (or its adapter) receives the case's arguments as keywords, ``fn(logits, targets, *, alpha,
gamma, reduction=..., weight=...)``. A callable whose signature has no such keyword (and no ``**kwargs``)
is not called with it: the case is "not run: does not accept weight", and a region with no case run is
"skipped" with that note. An adapter that cannot express a case (kornia's ``weight`` is per class only)
raises :class:`~focal_ref.testing.frameworks.NotSupported`, which skips that case with its message.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

import focal_ref

from .compare import Tally, alpha_text, num
from .frameworks import Framework, NotSupported
from .regions import IGNORE_INDEX, POS_WEIGHT, WEIGHT

__all__ = ["ArgumentCase", "argument_battery", "accepts", "argument_grad_scale", "run_argument_case"]

Reduction = Literal["none", "sum", "mean"]
REDUCTIONS: tuple[Reduction, ...] = ("none", "sum", "mean")
#: logits of the saturated rows: float16 holds their losses times the large weight, and sums of them
_BIG_LOGITS = {"float16": (9.0, 17.0), "default": (17.0, 40.0, 100.0)}
#: the large weight (and pos_weight) of each dtype, finite in it with the losses it multiplies
_LARGE = {"float16": 16.0, "default": 1e6}


@dataclass(frozen=True)
class ArgumentCase:
    """One case of an argument region: ``(N, C)`` float64 logits, targets and the keyword arguments.

    Attributes:
        label: what the case is, for a report's note ("per-class weight (C,) with 0 and 1e+06").
        x: the logits.
        y: the targets: 0, 1 or ``ignore_index``.
        alpha: the case's alpha.
        gamma: the case's gamma.
        kwargs: ``weight`` (array), ``pos_weight`` (a number or an array) and ``ignore_index`` (a number),
            those the case uses.

    Example:
        >>> case = ArgumentCase("w", np.zeros((1, 2)), np.ones((1, 2)), 0.25, 2.0, {"weight": np.ones(2)})
        >>> case.needs
        ('weight',)
    """

    label: str
    x: np.ndarray
    y: np.ndarray
    alpha: float | None
    gamma: float
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def needs(self) -> tuple[str, ...]:
        """The keywords the candidate must accept for this case (besides ``reduction``)."""
        return tuple(self.kwargs)


def _base(rng: np.random.Generator, big: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 4)`` logits and hard labels: 6 moderate rows, then per big logit b the row [b, -b, b, -b]
    with labels [1, 0, 0, 1] (easy positive, easy negative, hard negative, hard positive)."""
    x_mod = np.clip(rng.normal(0.0, 1.5, (6, 4)), -3.0, 3.0)
    y_mod = rng.integers(0, 2, (6, 4)).astype(np.float64)
    x_sat = np.array([[b, -b, b, -b] for b in big])
    y_sat = np.tile([1.0, 0.0, 0.0, 1.0], (len(big), 1))
    return np.concatenate([x_mod, x_sat]), np.concatenate([y_mod, y_sat])


def argument_battery(
    seed: int, alphas: Sequence[float | None], gammas: Sequence[float], dtype: str
) -> dict[str, list[ArgumentCase]]:
    """``{region: [ArgumentCase, ...]}`` for :data:`~focal_ref.testing.regions.ARGUMENT_REGIONS`.

    Every input is built once per gamma (0 and 2 where the check's gammas have them, and 0.5: NaN from a
    negative base at an ignored element); the alphas take turns.

    Args:
        seed: seed of the random part.
        alphas: the check's alphas.
        gammas: the check's gammas.
        dtype: the dtype name (float16 gets smaller saturated logits and a smaller large weight).

    Returns:
        The cases of each argument region.

    Example:
        >>> b = argument_battery(0, (0.25,), (2.0,), "float32")
        >>> [len(b[r]) for r in ("weight", "pos_weight", "ignore_index")]
        [6, 6, 10]
    """
    rng = np.random.default_rng(seed)
    key = "float16" if dtype == "float16" else "default"
    big, large = _BIG_LOGITS[key], _LARGE[key]
    x, y = _base(rng, big)
    n, c = x.shape
    w_elem = rng.choice(np.array([0.0, 0.5, 1.0, 3.0, large]), size=(n, c))
    w_elem[6:, 2] = 0.0  # zero weight on each hard negative at a saturated logit
    w_elem[6, 3] = large
    w_class = np.array([0.0, 1.0, large, 0.25])
    w_sample = rng.choice(np.array([0.0, 0.5, 2.0, large]), size=(n, 1))
    w_sample[0, 0], w_sample[-1, 0] = 0.0, large
    pw_class = np.array([0.0, 0.5, large, 1.0])
    pw_elem = rng.choice(np.array([0.0, 0.25, 1.0, 4.0, large]), size=(n, c))

    some = y.copy()
    some[rng.random((n, c)) < 0.3] = -1.0
    some[6:, 1:3] = -1.0  # ignored elements at saturated logits
    rows = y.copy()
    rows[::3] = -100.0  # whole rows (anchors in RetinaNet's IoU band), another ignore_index
    nothing = np.full((n, c), -1.0)

    inputs: dict[str, list[tuple[str, np.ndarray, dict[str, Any]]]] = {
        WEIGHT: [
            (f"per-element weight (N, C) with 0 and {num(large)}", y, {"weight": w_elem}),
            (f"per-class weight (C,) with 0 and {num(large)}", y, {"weight": w_class}),
            (f"per-sample weight (N, 1) with 0 and {num(large)}", y, {"weight": w_sample}),
        ],
        POS_WEIGHT: [
            ("pos_weight=3 (a number)", y, {"pos_weight": 3.0}),
            (f"per-class pos_weight (C,) with 0 and {num(large)}", y, {"pos_weight": pw_class}),
            (f"per-element pos_weight (N, C) with 0 and {num(large)}", y, {"pos_weight": pw_elem}),
        ],
        IGNORE_INDEX: [
            ("ignore_index=-1 on some elements", some, {"ignore_index": -1.0}),
            ("ignore_index=-100 on whole rows", rows, {"ignore_index": -100.0}),
            ("every element ignored", nothing, {"ignore_index": -1.0}),
            ("ignore_index=-1 with a per-element weight", some, {"ignore_index": -1.0, "weight": w_elem}),
            (
                "ignore_index=-1 with a per-class pos_weight",
                some,
                {"ignore_index": -1.0, "pos_weight": pw_class},
            ),
        ],
    }
    use = [g for g in gammas if g in (0.0, 2.0)] or list(gammas)[:1]
    use = [*use, 0.5] if 0.5 not in use else use
    battery: dict[str, list[ArgumentCase]] = {}
    for region, items in inputs.items():
        cases = []
        for k, (label, targets, kwargs) in enumerate(items):
            for j, g in enumerate(use):
                alpha = alphas[(k + j) % len(alphas)]
                cases.append(ArgumentCase(label, x, targets, alpha, g, kwargs))
        battery[region] = cases
    return battery


def accepts(target: Callable[..., Any], name: str) -> bool | None:
    """Whether ``target``'s signature takes the keyword ``name`` (or ``**kwargs``); None when unknown.

    Args:
        target: the loss, or its adapter.
        name: the keyword.

    Returns:
        True, False, or None for a callable without a readable signature (it is then called, and a
        ``TypeError`` about an unexpected keyword is read as "does not accept").

    Example:
        >>> accepts(lambda x, y, *, alpha, gamma, weight=None: x, "weight"), accepts(max, "weight")
        (True, None)
    """
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(
        (p.name == name and p.kind in keyword) or p.kind == inspect.Parameter.VAR_KEYWORD for p in params
    )


def argument_grad_scale(case: ArgumentCase, xs: np.ndarray, ys: np.ndarray, kw: dict[str, Any]) -> np.ndarray:
    """w alpha_t m^gamma (gamma |1-2y| r CE + (1-y) p + w_+ y q): the magnitudes of the gradient's terms.

    Args:
        case: the case (alpha, gamma).
        xs: the logits as the framework holds them.
        ys: the targets as held, ignored entries included.
        kw: the keyword arguments as held (NumPy).

    Returns:
        The error scale of each element's gradient (0 where ignored or weighted 0: an absolute test).

    Example:
        >>> case = ArgumentCase("", np.zeros((1, 1)), np.ones((1, 1)), None, 0.0)
        >>> argument_grad_scale(case, case.x, case.y, {"pos_weight": 2.0}).tolist()  # 2 * (1 - p)
        [[1.0]]
    """
    ignore = kw.get("ignore_index")
    keep = np.ones(xs.shape, bool) if ignore is None else ys != ignore
    y = np.where(keep, ys, 0.0)
    p, q, _, m = focal_ref.sigmoid_parts(xs, y)
    pw = np.broadcast_to(np.asarray(kw.get("pos_weight", 1.0), dtype=np.float64), xs.shape)
    w = np.broadcast_to(np.asarray(kw.get("weight", 1.0), dtype=np.float64), xs.shape)
    ce = focal_ref.sigmoid_focal_loss(xs, y, alpha=None, gamma=0.0, pos_weight=pw)
    r = np.where(m > 0, p * q / np.where(m > 0, m, 1.0), 0.0)
    alpha_t = 1.0 if case.alpha is None else case.alpha * y + (1.0 - case.alpha) * (1.0 - y)
    g = case.gamma
    scale = w * alpha_t * m**g * (g * np.abs(1.0 - 2.0 * y) * r * ce + (1.0 - y) * p + pw * y * q)
    return np.where(keep, scale, 0.0)


def _describe(
    case: ArgumentCase, xs: np.ndarray, ys: np.ndarray, kw: dict[str, Any], reduction: str
) -> Callable[[int], str]:
    def describe(i: int) -> str:
        head = f"[{case.label}] reduction={reduction}, {alpha_text(case.alpha)}, gamma={num(case.gamma)}"
        if reduction != "none":
            return head
        parts = [f"x={num(xs.flat[i])}", f"y={num(ys.flat[i])}"]
        for name in ("weight", "pos_weight"):
            if name in kw:
                parts.append(f"{name}={num(np.broadcast_to(kw[name], xs.shape).flat[i])}")
        return f"{head}, element {tuple(int(k) for k in np.unravel_index(i, xs.shape))}: " + ", ".join(parts)

    return describe


def run_argument_case(
    tally: Tally,
    case: ArgumentCase,
    call: Callable[..., Any],
    target: Callable[..., Any],
    fw: Framework,
    dtype: str,
    floor: float,
) -> None:
    """Run one case: its loss under each reduction and its elementwise gradient, against the reference.

    Args:
        tally: the region's tally.
        case: the case.
        call: ``call(logits, targets, alpha=, gamma=, **keywords)``, the loss or its adapter.
        target: the callable whose signature says which keywords it takes (the adapter, or the loss).
        fw: the framework.
        dtype: the dtype name.
        floor: the dtype's floor of the error scale.
    """
    missing = [name for name in case.needs if accepts(target, name) is False]
    if missing:
        tally.skip(f"does not accept {missing[0]}")
        return
    xt, yt = fw.floats(case.x, dtype), fw.floats(case.y, dtype)
    xs, ys = fw.to_numpy(xt), fw.to_numpy(yt)
    held: dict[str, Any] = {}  # the keywords passed, and (kw) as the framework holds them
    kw: dict[str, Any] = {}
    for name, value in case.kwargs.items():
        if isinstance(value, np.ndarray):
            held[name] = fw.floats(value, dtype)
            kw[name] = fw.to_numpy(held[name])
        else:
            held[name] = kw[name] = value  # a Python number: ignore_index, or a pos_weight of one value
    reductions: tuple[Reduction, ...] = REDUCTIONS if accepts(target, "reduction") is not False else ("none",)
    if len(reductions) == 1:
        tally.skip("does not accept reduction: only the elementwise loss checked")

    def run(logits: Any, reduction: str) -> Any:
        extra = {"reduction": reduction} if len(reductions) > 1 else {}
        try:
            return call(logits, yt, alpha=case.alpha, gamma=case.gamma, **extra, **held)
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc):
                raise NotSupported(f"does not accept {str(exc).split('argument')[-1].strip()}") from exc
            raise

    ref = dict(alpha=case.alpha, gamma=case.gamma, **kw)
    try:
        for reduction in reductions:
            want = np.asarray(focal_ref.sigmoid_focal_loss(xs, ys, reduction=reduction, **ref))
            got = fw.to_numpy(run(xt, reduction))
            describe = _describe(case, xs, ys, kw, reduction)
            tally.compare(got, want, np.abs(want), floor, describe, "loss")
        if not fw.can_differentiate:
            tally.skip(f"{fw.name} cannot differentiate: gradients not checked")
            return
        _, grad = fw.value_and_grad(lambda logits: run(logits, "none"), xt)
    except NotSupported as exc:
        tally.skip(str(exc))
        return
    want = focal_ref.sigmoid_focal_loss_grad(xs, ys, **ref)
    scale = argument_grad_scale(case, xs, ys, kw)
    tally.compare(grad, want, scale, floor, _describe(case, xs, ys, kw, "none"), "gradient")
