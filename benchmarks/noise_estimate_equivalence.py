"""Does the noise estimator give the same answers as at an earlier commit? (For speed-only changes.)

Loads the noise estimator's module as it was at ``--against`` (``git show``;
``src/napari_scoredvi/engine/noise_estimate.py``, or ``src/napari_scoredvi/noise_estimate.py`` before
the package's subpackages) beside the current one, runs ``estimate_noise`` of both on every image of
the pg, corr, w2s and polyu sets, and counts per set the images whose noise level functions (slope
and intercept), correlated-or-not class and lag-1 correlations are exactly equal, and the seconds
each version took.

    python benchmarks/noise_estimate_equivalence.py --against a06e9ac
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import sets

ROOT = Path(__file__).resolve().parents[1]


#: where the estimator's module lives, newest layout first
PATHS = ("src/napari_scoredvi/engine/noise_estimate.py", "src/napari_scoredvi/noise_estimate.py")


def _module_at(rev: str, folder: str):
    for where in PATHS:
        shown = subprocess.run(["git", "show", f"{rev}:{where}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            text = shown.stdout
            break
    else:
        raise SystemExit(f"no noise_estimate.py at {rev} (looked for {', '.join(PATHS)})")
    path = Path(folder) / "noise_estimate_then.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("noise_estimate_then", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["noise_estimate_then"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", required=True, help="a git revision")
    p.add_argument("--data", type=Path, default=sets.DATA)
    args = p.parse_args(argv)
    from napari_scoredvi.engine import noise_estimate as now

    with tempfile.TemporaryDirectory() as folder:
        then = _module_at(args.against, folder)
        groups = {"pg": sets.synthetic("pg", args.data), "corr": sets.synthetic("corr", args.data),
                  "w2s": sets.w2s(args.data), "polyu": sets.polyu(args.data)}
        print(f"{time.strftime('%Y-%m-%d %H:%M')}: estimate_noise now vs at {args.against}")
        for label, items in groups.items():
            same_levels = same_class = same_lag = 0
            seconds = {"then": 0.0, "now": 0.0}
            for item in items:
                image = np.asarray(np.moveaxis(item.noisy, -1, 0) if item.rgb else item.noisy, np.float64)
                t0 = time.perf_counter()
                a = then.estimate_noise(image)
                t1 = time.perf_counter()
                b = now.estimate_noise(image)
                seconds["then"] += t1 - t0
                seconds["now"] += time.perf_counter() - t1
                same_levels += [(f.slope, f.intercept) for f in a.levels] == [(f.slope, f.intercept) for f in b.levels]
                same_class += a.correlated == b.correlated
                same_lag += a.lag1 == b.lag1
            print(f"{label:6s} {len(items):3d} images: identical levels {same_levels}, same class {same_class}, "
                  f"same lag-1 {same_lag}; seconds then {seconds['then']:.1f}, now {seconds['now']:.1f}", flush=True)


if __name__ == "__main__":
    main()
