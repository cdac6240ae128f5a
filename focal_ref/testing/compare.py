"""Comparing an implementation's numbers with the reference's, and running a battery region by region.

A :class:`Tally` accumulates one region: values compared, the worst error ``|got - want| / max(scale,
floor)`` and where it happened, non-finite values where the reference is finite, and the first failure
that stopped the region (an exception, None, complex values, a wrong shape). :func:`run_regions` turns a
battery into report rows; whatever the implementation raises -- ``SystemExit`` included -- is a finding
of that region, never a crash of the check.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .frameworks import CheckFailure
from .regions import REGIONS, SIGMOID_REGIONS, region_tolerance
from .reports import RegionResult

__all__ = ["Tally", "run_regions", "describe_exception", "num", "alpha_text"]


def num(value: Any) -> str:
    """A number in a report's note: three significant digits.

    Args:
        value: a real number.

    Returns:
        Its text.

    Example:
        >>> num(745.0), num(0.123456)
        ('745', '0.123')
    """
    return f"{value:.3g}"


def alpha_text(alpha: Any) -> str:
    """``alpha=...`` in a note, for a number, None or per-class weights.

    Args:
        alpha: the case's alpha.

    Returns:
        The text.

    Example:
        >>> alpha_text((0.1, 0.9))
        'alpha=(0.1, 0.9)'
    """
    if alpha is None or isinstance(alpha, numbers.Real):
        return f"alpha={num(alpha) if alpha is not None else None}"
    return "alpha=(" + ", ".join(num(a) for a in alpha) + ")"


def describe_exception(exc: BaseException) -> str:
    """A failure note: ``"raised RuntimeError: first line of the message"`` (at most 90 characters).

    Args:
        exc: what the implementation raised.

    Returns:
        The note.

    Example:
        >>> describe_exception(SystemExit(3))
        'raised SystemExit: 3'
    """
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > 90:
        message = message[:87] + "..."
    return f"raised {type(exc).__name__}: {message}" if message else f"raised {type(exc).__name__}"


@dataclass
class Tally:
    """Accumulates one region: values compared, the worst error and where it happened.

    Example:
        >>> t = Tally(1e-6)
        >>> t.compare(np.array([1.0]), np.array([1.0 + 1e-9]), np.array([1.0]), 0.0, str, "loss")
        >>> t.result("moderate logits").status
        'pass'
    """

    rtol: float
    cases: int = 0
    worst: float = 0.0
    worst_note: str = ""
    nonfinite: int = 0
    nonfinite_note: str = ""
    error_note: str = ""
    not_run: dict[str, int] = field(default_factory=dict)

    def failure(self, note: str) -> None:
        """Record the first failure of the region (later ones are dropped)."""
        if not self.error_note:
            self.error_note = note

    def skip(self, reason: str) -> None:
        """Record a case (or a part of one) left out, and why (``"does not accept weight"``).

        The row says so: ``"skipped"`` with the reasons when nothing was compared, and the reasons after the
        verdict otherwise, so a loss that cannot take an argument is never reported as passing it silently.
        """
        self.not_run[reason] = self.not_run.get(reason, 0) + 1

    def _not_run_note(self) -> str:
        return "; ".join(f"not run ({n}x): {reason}" for reason, n in self.not_run.items())

    def compare(
        self,
        got: Any,
        want: np.ndarray,
        scale: np.ndarray,
        floor: float,
        describe: Callable[[int], str],
        what: str,
    ) -> None:
        """Compare ``got`` with ``want`` elementwise, relative to ``max(scale, floor)``.

        Args:
            got: the implementation's values (float64 NumPy).
            want: the reference's values.
            scale: the error scale of each value.
            floor: the smallest scale (an absolute test below it).
            describe: ``describe(flat index)`` -> the case's text for a note.
            what: ``"loss"``, ``"gradient"`` or ``"second derivative"``.
        """
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            self.failure(f"{what} has shape {got.shape}, expected {want.shape}")
            return
        self.cases += want.size
        bad = ~np.isfinite(got) & np.isfinite(want)
        if np.any(bad):
            i = int(np.flatnonzero(bad.ravel())[0])
            self.nonfinite += int(bad.sum())
            if not self.nonfinite_note:
                self.nonfinite_note = f"{num(got.ravel()[i])} {what} at {describe(i)}"
        with np.errstate(invalid="ignore"):
            err = np.abs(got - want) / np.maximum(scale, floor)
        err = np.where(bad, np.inf, np.nan_to_num(err, nan=0.0))
        i = int(np.argmax(err.ravel()))
        if err.ravel()[i] > self.worst:
            self.worst = float(err.ravel()[i])
            self.worst_note = (
                f"worst at {describe(i)}: {what} {num(got.ravel()[i])}, reference {num(want.ravel()[i])}"
            )

    def result(self, region: str) -> RegionResult:
        """The region's row of the report."""
        extra = self._not_run_note()
        if self.error_note:
            note = "; ".join(n for n in (self.error_note, extra) if n)
            return RegionResult(region, self.cases, math.inf, self.rtol, "FAIL", note, "error")
        if self.nonfinite:
            note = "; ".join(n for n in (f"{self.nonfinite} non-finite: {self.nonfinite_note}", extra) if n)
            return RegionResult(region, self.cases, math.inf, self.rtol, "FAIL", note, "non-finite")
        if not self.cases and self.not_run:
            return RegionResult(region, 0, math.nan, math.nan, "skipped", "; ".join(self.not_run))
        status = "pass" if self.worst <= self.rtol else "FAIL"
        note = "; ".join(n for n in ("" if status == "pass" else self.worst_note, extra) if n)
        return RegionResult(region, self.cases, self.worst, self.rtol, status, note)


RunCase = Callable[[Tally, Any, str], None]


def run_regions(
    battery: Mapping[str, Sequence[Any]],
    regions: Iterable[str],
    dtype: str,
    run_case: RunCase,
    skipped_notes: dict[str, str],
) -> tuple[RegionResult, ...]:
    """Run the chosen regions of a battery; one row per region of the report.

    The default regions always get a row ("skipped" when not chosen); an optional region gets one only
    when chosen. An exception the implementation raises (``SystemExit`` included, but not
    ``KeyboardInterrupt``) fails its region with a note and stops that region.

    Args:
        battery: ``{region: cases}``.
        regions: the regions to run.
        dtype: the dtype name, for the tolerances.
        run_case: ``run_case(tally, case, region)``.
        skipped_notes: ``{region: why}`` for regions that cannot run here.

    Returns:
        The rows, in the order of :data:`~focal_ref.testing.regions.SIGMOID_REGIONS`.

    Example:
        >>> def run_case(tally, case, region):
        ...     tally.compare(np.ones(2), np.ones(2), np.ones(2), 0.0, str, "loss")
        >>> rows = run_regions({"moderate logits": [()]}, ["moderate logits"], "float64", run_case, {})
        >>> [r.short for r in rows]
        ['pass 0.0e+00', 'skipped', 'skipped', 'skipped', 'skipped']
    """
    chosen = tuple(regions)
    rows = []
    for region in SIGMOID_REGIONS:
        if region not in chosen:
            if region in REGIONS:
                rows.append(RegionResult(region, 0, math.nan, math.nan, "skipped", "not requested"))
            continue
        cases = battery.get(region, [])
        if region in skipped_notes:
            rows.append(RegionResult(region, 0, math.nan, math.nan, "skipped", skipped_notes[region]))
            continue
        if not cases:
            rows.append(RegionResult(region, 0, math.nan, math.nan, "skipped", "no cases for these gammas"))
            continue
        tally = Tally(region_tolerance(region, dtype))
        for case in cases:
            try:
                run_case(tally, case, region)
            except CheckFailure as exc:
                tally.failure(str(exc))
            except (Exception, SystemExit) as exc:  # anything the implementation raises is a finding
                tally.failure(describe_exception(exc))
            if tally.error_note:
                break
        rows.append(tally.result(region))
    return tuple(rows)
