"""Run the tiny detector's experiments and write their records with provenance to book/tuning/results/.

python scripts/run_detection_experiments.py wins --seeds 0 1 --jobs 2
python scripts/run_detection_experiments.py wins --settings dense_sparsest --bands on --seeds 0 1 2 \
    --out book/tuning/results/detection_wins_extra.json
python scripts/run_detection_experiments.py threshold --settings dense_sparsest --seeds 0
python scripts/run_detection_experiments.py grid --seeds 0 1 --jobs 2
python scripts/run_detection_experiments.py baselines --seeds 0 1 --jobs 2
python scripts/run_detection_experiments.py calibration --seeds 0 1 --jobs 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from focal_ref.detection import sweeps

RESULTS = Path(__file__).resolve().parent.parent / "book" / "tuning" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    experiments = ["wins", "grid", "length", "baselines", "calibration", "threshold"]
    parser.add_argument("experiment", choices=experiments)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=list(sweeps.WINS_SETTINGS))
    parser.add_argument(
        "--bands", choices=["both", "on", "off"], default="both", help="wins: with/without the ignore band"
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[900], help="length: training steps")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.experiment == "wins":
        bands = {"both": (True, False), "on": (True,), "off": (False,)}[args.bands]
        items = sweeps.wins_configs(args.seeds, args.settings, bands)
    elif args.experiment == "threshold":  # the top rung's FL and best CE, AP at two score thresholds
        items = [
            (k, c)
            for k, c in sweeps.wins_configs(args.seeds, args.settings, (True,))
            if (k["gamma"], k["alpha"]) in sweeps.THRESHOLD_LOSSES
        ]
    elif args.experiment == "length":
        items = sweeps.length_configs(args.seeds, args.settings[-1], args.steps)
    elif args.experiment == "baselines":
        items = sweeps.baseline_configs(args.seeds)
    elif args.experiment == "calibration":
        items = sweeps.calibration_configs(args.seeds)
    else:
        items = sweeps.grid_configs(args.seeds)
    new = args.experiment in ("baselines", "calibration")
    out = args.out or RESULTS / (f"{args.experiment}.json" if new else f"detection_{args.experiment}.json")
    run_one = {"calibration": sweeps.run_calibration_one, "threshold": sweeps.run_threshold_one}.get(
        args.experiment
    )
    try:
        from tqdm.auto import tqdm

        def progress(it):
            return tqdm(it, total=len(items), desc=args.experiment)
    except ImportError:  # pragma: no cover
        progress = None
    payload = sweeps.run_experiment(
        args.experiment, items, args.seeds, out, jobs=args.jobs, progress=progress, run_one=run_one
    )
    print(f"wrote {out} ({len(payload['records'])} runs, {payload['provenance']['wall_s']} s)")
    if args.experiment == "wins":
        for row in sweeps.wins_summary(payload["records"]):
            print(row)


if __name__ == "__main__":
    main()
