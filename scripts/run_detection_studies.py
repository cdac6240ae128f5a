"""Run the detector studies (prior init, normalization, Figure 4); write book/tuning/results/studies_*.json.

python scripts/run_detection_studies.py prior --seeds 0 1
python scripts/run_detection_studies.py normalization --seeds 0 1
python scripts/run_detection_studies.py figure4 --seeds 0 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from focal_ref.detection import studies, sweeps

RESULTS = Path(__file__).resolve().parent.parent / "book" / "tuning" / "results"
STUDIES = {
    "prior": (studies.prior_configs, studies.run_traced),
    "normalization": (studies.normalization_configs, studies.run_traced),
    "figure4": (studies.figure4_configs, studies.figure4_record),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=list(STUDIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    make, run_one = STUDIES[args.study]
    items = make(args.seeds)
    out = args.out or RESULTS / f"studies_{args.study}.json"
    try:
        from tqdm.auto import tqdm

        def progress(it):
            return tqdm(it, total=len(items), desc=args.study)
    except ImportError:  # pragma: no cover
        progress = None
    payload = sweeps.run_experiment(
        args.study, items, args.seeds, out, jobs=args.jobs, progress=progress, run_one=run_one
    )
    print(f"wrote {out} ({len(payload['records'])} runs, {payload['provenance']['wall_s']} s)")


if __name__ == "__main__":
    main()
