"""The engine's measure of spatially correlated noise (``NoiseCorrelation.residual``) on every set.

About 1 means independent pixels; the engine treats the noise as correlated below
``NoiseCorrelation.THRESHOLD``. Prints the range of the measure per set (RGB: per channel) and how
many images fall on the wrong side of the threshold.

    python benchmarks/noise_correlation.py
"""

from __future__ import annotations

import numpy as np

import sets


def main() -> None:
    from napari_scoredvi.engine.noise_estimate import NoiseCorrelation, estimate_noise

    groups = {"pg (independent)": sets.synthetic("pg"), "corr (lag-1 0.6)": sets.synthetic("corr"),
              "w2s (real widefield)": sets.w2s(), "polyu (camera sRGB)": sets.polyu()}
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
