"""The engine's measure of spatially correlated noise (``NoiseCorrelation.residual``) on every set.

About 1 means independent pixels; the engine treats the noise as correlated below
``NoiseCorrelation.THRESHOLD``. Prints the range of the measure per set (RGB: per channel) and how
many images fall on the wrong side of the threshold.

    python benchmarks/noise_correlation.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sets


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=sets.DATA)
    args = p.parse_args(argv)
    from napari_scoredvi.engine.noise_estimate import NoiseCorrelation, estimate_noise

    groups = {"pg (independent)": sets.synthetic("pg", args.data),
              "corr (lag-1 0.6)": sets.synthetic("corr", args.data),
              "w2s (real widefield)": sets.w2s(args.data), "polyu (camera sRGB)": sets.polyu(args.data)}
    print(f"threshold {NoiseCorrelation.THRESHOLD}")
    for label, items in groups.items():
        values, flagged = [], 0
        for item in items:
            image = np.moveaxis(item.noisy, -1, 0) if item.rgb else item.noisy
            model = estimate_noise(image)
            values += [c.residual for c in model.correlation]
            flagged += model.correlated
        print(f"{label:22s} {len(items):3d} images: residual {min(values):.2f}-{max(values):.2f}, "
              f"treated as correlated: {flagged}")


if __name__ == "__main__":
    main()
