"""Command line: ``python -m focal_ref check package.module:function --kind sigmoid --framework torch``.

Runs :func:`focal_ref.testing.check_sigmoid_focal_loss` (or the softmax check) on the named callable,
prints the report table and exits 0 when it passed, 1 when it failed, 2 on a usage or import error.
"""

from __future__ import annotations

import argparse
import os
import sys

from .testing import REGIONS, check_sigmoid_focal_loss, check_softmax_focal_loss, load_callable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m focal_ref", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="check a focal loss against the float64 reference",
        description="Check fn(logits, targets, *, alpha, gamma) -> elementwise (sigmoid) or per-sample "
        "(softmax) loss against the float64 reference; exit 1 if any region fails.",
    )
    check.add_argument("target", help="the callable, as package.module:function")
    check.add_argument("--kind", choices=("sigmoid", "softmax"), default="sigmoid")
    check.add_argument("--framework", choices=("numpy", "torch", "keras"), default="numpy")
    check.add_argument("--dtype", choices=("float64", "float32", "float16", "bfloat16"), default=None,
                       help="input dtype (default: float64 for numpy, float32 otherwise)")
    check.add_argument("--adapter", default=None,
                       help="package.module:function called as adapter(fn, logits, targets, *, alpha, gamma)")
    check.add_argument("--skip", action="append", default=[], choices=REGIONS, metavar="REGION",
                       help=f"leave a region out (repeatable): one of {', '.join(REGIONS)}")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    sys.path.insert(0, os.getcwd())  # as `python -m` does: modules in the working directory are importable
    try:
        fn = load_callable(args.target)
        adapter = load_callable(args.adapter) if args.adapter else None
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"focal_ref check: cannot load {args.target!r}: {exc}", file=sys.stderr)
        return 2
    check = check_sigmoid_focal_loss if args.kind == "sigmoid" else check_softmax_focal_loss
    try:
        report = check(fn, framework=args.framework, adapter=adapter, dtype=args.dtype, skip=args.skip,
                       name=args.target)
    except (ImportError, ValueError, TypeError) as exc:
        print(f"focal_ref check: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
