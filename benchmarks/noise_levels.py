"""The noise level function alone (no denoising): how right is ``var(I) = a I + b`` per image?

The noise-variance output of ``denoise`` is the noise level function that ``noise_estimate`` fits to
the noisy image, evaluated at the denoised intensity. This scores the function itself, evaluated at
the clean intensity, exactly as ``fidelity.py`` scores the map (10 quantile bins of clean intensity:
the worst bin's relative error against the true variance, target +-15 %, and the ratio of the
fitted slopes, target 0.9-1.1), on the synthetic Poisson-Gaussian sets and the W2S pairs of
``sets.py``, for two estimators:

* ``stride4``: ``estimate_noise_level_function`` on the 16 stride-4 pixel-shuffled sub-images;
* ``stride1``: the same on the full-resolution image, with the plain flatness test;
* ``engine``: ``estimate_noise(...).levels``, what ``denoise`` uses (stride 4, then stride 1 with the
  trimmed flatness test when the noise is pixel-independent).

Per image it also prints ``dark_kurt``, the kurtosis of the true noise (noisy - clean) over the
darkest 10 % of clean pixels (3 for Gaussian noise), and, on the synthetic sets, ``clean_reads``:
the engine's estimator run on the *clean* image, binned the same way, as a share of the true noise
variance (worst bin): how much of the noise the clean image's own fine texture or grain already
looks like, which no single-image estimator can tell from the noise. It takes seconds per image, so it is the quick
check while working on the estimator.

    python benchmarks/noise_levels.py --sets pg corr w2s --per-source 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import sets
from fidelity import binned, variance_map


def truth(item: sets.Item) -> tuple[np.ndarray, np.ndarray]:
    """(clean, true variance) in the noisy image's units, as ``fidelity.score`` defines them."""
    if item.variance is not None:
        return item.clean, item.variance
    clean = sets.affine_fit(item.clean, item.noisy)
    return clean, (item.noisy - clean) ** 2


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=sets.DATA)
    p.add_argument("--sets", nargs="+", default=["pg", "corr", "w2s"], choices=["pg", "corr", "w2s"])
    p.add_argument("--per-source", type=int, default=2, help="clean W2S and BSD68 images each in the synthetic sets")
    p.add_argument("--limit", type=int, default=None, help="only the first N W2S pairs")
    args = p.parse_args(argv)
    from napari_scoredvi.engine.noise_estimate import estimate_noise, estimate_noise_level_function

    estimators = {"stride4": lambda im: estimate_noise_level_function(im),
                  "stride1": lambda im: estimate_noise_level_function(im, stride=1),
                  "engine": lambda im: estimate_noise(im).levels[0]}
    print(f"noise level function benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          "targets: bins |err| <= 15 %, slope ratio 0.9-1.1", flush=True)
    from pathlib import Path

    data = Path(args.data)
    for which in args.sets:
        items = sets.w2s(data, args.limit) if which == "w2s" else sets.synthetic(which, data, args.per_source)
        rows: dict[str, list[dict]] = {k: [] for k in estimators}
        for item in items:
            noisy = item.noisy.astype(np.float64)
            clean, var = truth(item)
            dark = (noisy - clean)[clean <= np.quantile(clean, 0.1)]
            dark = dark - dark.mean()
            line = f"{which} {item.name:24s} dark_kurt {np.mean(dark**4) / np.mean(dark**2) ** 2:5.2f}"
            if item.variance is not None:
                reads = binned(estimate_noise(clean).levels[0].variance(clean), clean)[0] / binned(var, clean)[0]
                line += f" clean_reads {reads.max():5.2f}"
            for name, est in estimators.items():
                r = variance_map(est(noisy).variance(clean), var, clean)
                rows[name].append(r)
                line += f"  {name}: bin_err_max {r['bin_err_max']:7.3f} slope_ratio {r['slope_ratio']:6.3f}"
            print(line, flush=True)
        print(f"\n{which}: {len(items)} images")
        print(f"{'estimator':10s} {'mean|bin|':>10s} {'worst bin':>10s} {'slope mean':>11s} {'slope min':>10s} "
              f"{'slope max':>10s} {'slope ok':>9s} {'both ok':>8s}")
        for name, rs in rows.items():
            be = np.array([r["bin_err_max"] for r in rs])
            sr = np.array([r["slope_ratio"] for r in rs])
            slope_ok = np.abs(sr - 1) <= 0.1
            both = slope_ok & (np.abs(be) <= 0.15)
            ok, ok2 = f"{slope_ok.sum()}/{len(rs)}", f"{both.sum()}/{len(rs)}"
            print(f"{name:10s} {np.mean(np.abs(be)):10.3f} {be[np.argmax(np.abs(be))]:10.3f} {sr.mean():11.3f} "
                  f"{sr.min():10.3f} {sr.max():10.3f} {ok:>9s} {ok2:>8s}")
        print(flush=True)


if __name__ == "__main__":
    main()
