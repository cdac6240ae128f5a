"""Command line: ``python -m focal_ref check package.module:function --kind sigmoid --framework torch``.

Runs :func:`focal_ref.testing.check_sigmoid_focal_loss` (or the softmax check) on the named callable and
prints the report table. ``--second-derivatives`` adds the opt-in second-derivative region; ``--arguments``
(sigmoid only) adds :data:`focal_ref.testing.ARGUMENT_REGIONS`, the sigmoid family's ``weight``,
``pos_weight`` and ``ignore_index`` (a callable without such a keyword gets that row "skipped"). Exit codes:

* 0 -- the check passed;
* 1 -- the check ran and failed (a region FAILed);
* 2 -- a usage error: bad arguments, no such module or attribute, an invalid check argument;
* 3 -- the named module (or the adapter's) raised while being imported (SyntaxError, RuntimeError, an
  ImportError of one of its own imports, SystemExit ...): nothing was checked.

Whatever the callable raises while being checked (``SystemExit`` included) is a failure of that region,
shown in the report.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .testing import (
    ALL_REGIONS,
    ARGUMENT_REGIONS,
    REGIONS,
    check_sigmoid_focal_loss,
    check_softmax_focal_loss,
    load_callable,
)

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_IMPORT = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m focal_ref", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="check a focal loss against the float64 reference",
        description="Check fn(logits, targets, *, alpha, gamma) -> elementwise (sigmoid) or per-sample "
        "(softmax) loss against the float64 reference; exit 1 if any region fails, 2 on a usage error, "
        "3 if the module fails to import.",
    )
    check.add_argument("target", help="the callable, as package.module:function")
    check.add_argument("--kind", choices=("sigmoid", "softmax"), default="sigmoid")
    check.add_argument("--framework", choices=("numpy", "torch", "keras"), default="numpy")
    check.add_argument(
        "--dtype",
        choices=("float64", "float32", "float16", "bfloat16"),
        default=None,
        help="input dtype (default: float64 for numpy, float32 otherwise)",
    )
    check.add_argument(
        "--adapter",
        default=None,
        help="package.module:function called as adapter(fn, logits, targets, *, alpha, gamma)",
    )
    check.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=REGIONS + ARGUMENT_REGIONS,
        metavar="REGION",
        help=f"leave a region out (repeatable): one of {', '.join(REGIONS + ARGUMENT_REGIONS)}",
    )
    check.add_argument(
        "--second-derivatives",
        action="store_true",
        help="also check second derivatives through the framework's autodiff (opt-in region)",
    )
    check.add_argument(
        "--arguments",
        action="store_true",
        help="also check the keyword arguments weight, pos_weight and ignore_index, called as fn(logits, "
        "targets, *, alpha, gamma, reduction=..., <argument>=...) (opt-in regions; --kind sigmoid only)",
    )
    return parser


def _not_found(exc: BaseException, spec: str) -> bool:
    """True when ``exc`` says the named module itself (or a parent package) does not exist."""
    if isinstance(exc, (AttributeError, ValueError)):
        return True
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        module = spec.partition(":")[0] if ":" in spec else spec.rpartition(".")[0]
        return module == exc.name or module.startswith(exc.name + ".")
    return False


def _load(spec: str) -> tuple[Any, int]:
    """The object named by ``spec`` and 0, or None and the exit code, after printing why."""
    try:
        return load_callable(spec), EXIT_PASSED
    except (Exception, SystemExit) as exc:
        if _not_found(exc, spec):
            print(f"focal_ref check: cannot load {spec!r}: {exc}", file=sys.stderr)
            return None, EXIT_USAGE
        print(
            f"focal_ref check: importing {spec!r} raised {type(exc).__name__}: {exc}\n"
            "nothing was checked; the module's own traceback:",
            file=sys.stderr,
        )
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return None, EXIT_IMPORT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code (see the module docstring).

    Example:
        >>> main(["check", "focal_ref:sigmoid_focal_loss", "--skip", "gradients"])  # doctest: +ELLIPSIS
        focal_ref:sigmoid_focal_loss: sigmoid focal loss, numpy float64 -- PASSED
        ...
        0
    """
    args = _parser().parse_args(argv)
    if args.arguments and args.kind != "sigmoid":
        print(
            "focal_ref check: --arguments (weight, pos_weight, ignore_index) applies to --kind sigmoid only",
            file=sys.stderr,
        )
        return EXIT_USAGE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if os.getcwd() not in sys.path:
        sys.path.insert(
            0, os.getcwd()
        )  # as `python -m` does: modules in the working directory are importable
    fn, code = _load(args.target)
    if code:
        return code
    adapter = None
    if args.adapter:
        adapter, code = _load(args.adapter)
        if code:
            return code
    check = check_sigmoid_focal_loss if args.kind == "sigmoid" else check_softmax_focal_loss
    regions = [*REGIONS, *ALL_REGIONS[len(REGIONS) :]] if args.second_derivatives else list(REGIONS)
    if args.arguments:
        regions += ARGUMENT_REGIONS
    try:
        report = check(
            fn,
            framework=args.framework,
            adapter=adapter,
            dtype=args.dtype,
            regions=regions,
            skip=args.skip,
            name=args.target,
        )
    except (ImportError, ValueError, TypeError) as exc:
        print(f"focal_ref check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report)
    return EXIT_PASSED if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
