"""Candidate noise-variance maps on correlated noise and textured images, against the truth.

For each image the engine's ``fast`` output gives the denoised image ``D`` (the map is read at its
intensity, as the engine reads it) and the posterior variance ``J S`` (Tweedie, docs/engine.md).
The candidates:

* ``engine``: the engine's map (for correlated noise: the stride-4 level function, each bin's
  texture test at its own level);
* ``stride s``: the level function measured on the stride-``s`` sub-images with the line-based
  texture test (``s`` = 3, 4, 5), and ``own s``: with each bin's own level (3, 6);
* ``extrapolated 3-4``: ``(16 v3 - 9 v4) / 7``, texture taken to grow with the square of the stride;
* ``residual``: a line fitted to the binned ``(y - D)^2`` against ``D``; ``residual + divergence``: to
  the binned ``(y - D)^2 / (1 - g)``, ``g = J S / S`` (for an MMSE ``D`` and Gaussian noise,
  ``E[(y - D)^2] = S - J S``).

Synthetic sets (truth known): the worst bin's relative error and the slope ratio, as
``fidelity.py``; the count of images within +-15 % and 0.9-1.1. PolyU/CC: the level function at
the clean image's mean over the residual variance of the noisy image, per channel; the count of
channels within +-25 %.

    python benchmarks/variance_methods.py --sets corr pg polyu cc --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import sets
from fidelity import variance_map

BINS = 16


def residual_line(y: np.ndarray, d: np.ndarray, g: np.ndarray | None) -> np.ndarray:
    """The line fitted to ``(y - d)^2 / (1 - g)`` binned by ``d`` (16 quantile bins), at ``d``."""
    v = (y - d) ** 2 / (1 - (0 if g is None else g))
    edges = np.quantile(d, np.linspace(0, 1, BINS + 1))
    idx = np.clip(np.searchsorted(edges, d.ravel(), side="right") - 1, 0, BINS - 1)
    count = np.bincount(idx, minlength=BINS).clip(1)
    level = np.bincount(idx, d.ravel(), BINS) / count
    value = np.bincount(idx, v.ravel(), BINS) / count
    a, b = np.polyfit(level, value, 1)
    if a < 0:
        a, b = 0.0, float(value.mean())
    return np.maximum(a * d + b, 1e-3 * value.mean())


def candidates(y: np.ndarray, d: np.ndarray | None = None, g: np.ndarray | None = None,
               at: np.ndarray | float | None = None) -> dict[str, np.ndarray | float]:
    """Each candidate's variance, read at ``at`` (default ``d``) for the level-function ones."""
    from napari_scoredvi.engine.noise_estimate import estimate_noise_level_function as nlf

    at = d if at is None else at
    v = {f"stride {s}": nlf(y, stride=s).variance(at) for s in (3, 4, 5)}
    v.update({f"own {s}": nlf(y, stride=s, own_threshold=True).variance(at) for s in (3, 6)})
    v["extrapolated 3-4"] = np.maximum((16 * v["stride 3"] - 9 * v["stride 4"]) / 7, 0.2 * v["stride 3"])
    if d is not None:
        v["residual"] = residual_line(y, d, None)
        v["residual + divergence"] = residual_line(y, d, g)
    return v


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=sets.DATA)
    p.add_argument("--sets", nargs="+", default=["corr", "pg", "polyu", "cc"], choices=["corr", "pg", "polyu", "cc"])
    p.add_argument("--per-source", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi import denoise
    from napari_scoredvi.engine.noise_estimate import estimate_noise

    torch.set_num_threads(args.threads)
    print(f"variance methods, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}")
    for which in args.sets:
        counts: dict[str, list[int]] = {}
        if which in ("corr", "pg"):
            for item in sets.synthetic(which, args.data, args.per_source):
                r = denoise(item.noisy, preset="fast", device="cpu", seed=0)
                y, d = item.noisy.astype(np.float64), r.denoised.astype(np.float64)
                g = np.clip(r.posterior_std.astype(np.float64) ** 2 / r.noise_variance, 0, 0.95)
                maps = {"engine": r.noise_variance, **candidates(y, d, g)}
                scores = {k: variance_map(m, item.variance, item.clean) for k, m in maps.items()}
                print(f"{which} {item.name} (posterior_scale {r.info.posterior_scale[0]:.2f}): " + "; ".join(
                    f"{k} {s['bin_err_max']:+.2f} {s['slope_ratio']:.2f}" for k, s in scores.items()), flush=True)
                for k, s in scores.items():
                    c = counts.setdefault(k, [0, 0, 0, 0])
                    bins_ok, slope_ok = abs(s["bin_err_max"]) <= 0.15, abs(s["slope_ratio"] - 1) <= 0.1
                    c[0] += bins_ok
                    c[1] += slope_ok
                    c[2] += bins_ok and slope_ok
                    c[3] += 1
            print(f"\n{which}: images within bins +-15 % / slope +-10 % / both, of N")
        else:
            items = sets.polyu(args.data) if which == "polyu" else sets.cc(args.data)
            for item in items:
                y, x = item.noisy.astype(np.float64), item.clean.astype(np.float64)
                ratios: dict[str, list[float]] = {}
                model = estimate_noise(np.moveaxis(y, -1, 0))  # as the engine sees the RGB image
                for c in range(3):
                    truth = float(np.var(y[..., c] - x[..., c]))
                    engine = model.levels[c].variance(x[..., c].mean())
                    for k, v in {"engine": engine, **candidates(y[..., c], at=x[..., c].mean())}.items():
                        ratios.setdefault(k, []).append(float(v) / truth)
                print(f"{which} {item.name}: " + "; ".join(
                    f"{k} " + "/".join(f"{v:.2f}" for v in vals) for k, vals in ratios.items()), flush=True)
                for k, vals in ratios.items():
                    c = counts.setdefault(k, [0, 0, 0, 0])
                    c[0] += sum(abs(v - 1) <= 0.25 for v in vals)
                    c[3] += len(vals)
            print(f"\n{which}: channels within +-25 % of the residual variance, of N")
        for k, c in counts.items():
            print(f"  {k:24s} " + (f"{c[0]:3d} {c[1]:3d} {c[2]:3d} of {c[3]}" if which in ("corr", "pg")
                                   else f"{c[0]:3d} of {c[3]}"))
        print(flush=True)


if __name__ == "__main__":
    main()
