"""Run the audit of the focal losses people use (focal_ref.peers) and store it with provenance.

    python scripts/run_peer_audit.py        # writes book/blog/results/peer_audit.json

The book's peers page reads the stored file and re-checks it; tests/test_peers_audit.py pins the
verdicts for the pinned versions (requirements-audit.txt).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from focal_ref import peers  # noqa: E402


def main() -> None:
    start = time.perf_counter()
    result = {"dtypes": {}}
    for dtype in ("float32", "float64"):
        rows = peers.audit(dtype=dtype)
        result["dtypes"][dtype] = [
            {
                "implementation": row.peer.name,
                "distribution": row.peer.distribution,
                "version": row.version,
                "kind": row.peer.kind,
                "convention": row.peer.convention,
                "problem": row.problem,
                "regions": {
                    r.region: {
                        "status": r.status,
                        "max_rel_err": r.max_rel_err,
                        "cause": r.cause,
                        "note": r.note,
                    }
                    for r in (row.report.rows if row.report is not None else ())
                },
            }
            for row in rows
        ]
    result["provenance"] = {
        "command": "python scripts/run_peer_audit.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    out = ROOT / "book" / "blog" / "results" / "peer_audit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)} in {result['provenance']['wall_s']} s")


if __name__ == "__main__":
    main()
