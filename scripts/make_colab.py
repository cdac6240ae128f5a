#!/usr/bin/env python
"""Write the Colab editions (colab/) of the book's notebooks; ``--check`` only reports drift.

Usage: python scripts/make_colab.py [--check]. See focal_ref/_colab.py for what an edition holds.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from focal_ref._colab import EditionError, build  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if an edition is out of date"
    )
    args = parser.parse_args()
    try:
        changed = build(ROOT, check=args.check)
    except EditionError as exc:  # a glue key, a figure or an included object is missing
        print(f"make_colab: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(("out of date: " if args.check else "wrote: ") + str(path.relative_to(ROOT)))
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
