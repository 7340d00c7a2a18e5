"""Why the noise estimator under-reads PolyU's noise: per crop, the variance of the true residual
``noisy - clean`` against the engine's estimate, and what the residual itself looks like.

Columns (green channel for the correlations; variances averaged over R, G, B; 8-bit units^2):
``resid`` the residual's variance; ``flat`` / ``edges`` its variance on the clean image's flattest
50 % and steepest 10 % of pixels (Sobel magnitude); ``est`` the engine's estimate (mean of its noise
level function over the image); ``s1`` / ``s4`` the residual's own minimum and mean eigenvalue of
the covariance of 5x5 patches taken at stride 1 / in the stride-4 sub-images (what a PCA estimator
of the minimum eigenvalue reads when the noise is the residual, and the noise's actual variance);
``lag`` the residual's correlation at lags 1, 2, 4, 8 in x. With ``--trace`` (green channel of the
crops whose name holds one of the given words), the last iteration of the estimator's texture test
(``measure_noise_levels``): the intensity bins it kept, their measured variance and patch counts,
and the line fitted to them, next to the residual's variance per intensity octile. (The earlier
iterations, in ``results/polyu_noise.log``, were printed by wrapping the estimator's private line
fit; the engine has no public way to report them.)::

    python benchmarks/polyu_noise.py | tee benchmarks/results/polyu_noise.log
    python benchmarks/polyu_noise.py --trace desk_4 flower_2 | tee -a benchmarks/results/polyu_noise.log
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import sobel

import sets
from napari_scoredvi.engine.noise_estimate import N_BINS, PATCH, STRIDE, estimate_noise, measure_noise_levels


def patch_eigenvalues(noise: np.ndarray, stride: int) -> tuple[float, float]:
    """Minimum and mean eigenvalue of the covariance of PATCH x PATCH patches of ``noise`` (H, W),
    taken in its ``stride``-shuffled sub-images."""
    subs = [noise[i::stride, j::stride] for i in range(stride) for j in range(stride)]
    rows = np.concatenate([np.lib.stride_tricks.sliding_window_view(s, (PATCH, PATCH)).reshape(-1, PATCH * PATCH)
                           for s in subs])
    ev = np.linalg.eigvalsh(np.cov(rows, rowvar=False))
    return float(ev[0]), float(ev.mean())


def trace(words: list[str]) -> None:
    """Print the texture test's last iteration on the green channel of the crops named."""
    for item in (i for i in sets.polyu() if any(w in i.name for w in words)):
        green, clean = item.noisy[..., 1].astype(np.float64), item.clean[..., 1].astype(np.float64)
        print(item.name, f"(green, stride {STRIDE})")
        bins = measure_noise_levels(green)
        print("  last iteration: levels", np.round(bins.levels).astype(int).tolist(), "variances",
              np.round(bins.variances, 2).tolist(), "patches", bins.counts.astype(int).tolist())
        print("  final:", bins.nlf)
        resid = (green - clean)[PATCH // 2 : -(PATCH // 2), PATCH // 2 : -(PATCH // 2)]
        level = np.lib.stride_tricks.sliding_window_view(clean, (PATCH, PATCH)).mean(axis=(2, 3))
        edges = np.quantile(level, np.linspace(0, 1, N_BINS + 1))
        print("  residual variance per intensity octile:",
              [round(float(resid[(level >= a) & (level <= b)].var()), 1) for a, b in zip(edges[:-1], edges[1:])])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", nargs="+", metavar="WORD", help="trace the texture test on these crops")
    args = p.parse_args()
    if args.trace:
        trace(args.trace)
        return
    print(f"{'crop':36s} {'resid':>6s} {'flat':>6s} {'edges':>7s} {'est':>6s} "
          f"{'s1 min/mean':>13s} {'s4 min/mean':>13s}  lag 1/2/4/8")
    for item in sets.polyu():
        clean = item.clean.astype(np.float64)
        resid = item.noisy.astype(np.float64) - clean
        grad = np.hypot(sobel(clean.mean(-1), 0), sobel(clean.mean(-1), 1))
        flat, edges = grad <= np.quantile(grad, 0.5), grad >= np.quantile(grad, 0.9)
        channels = np.moveaxis(item.noisy.astype(np.float64), -1, 0)
        model = estimate_noise(channels)
        est = np.mean([np.mean(nlf.variance(c)) for nlf, c in zip(model.levels, channels)])
        eig = {s: np.mean([patch_eigenvalues(resid[..., c], s) for c in range(3)], axis=0) for s in (1, 4)}
        g = resid[..., 1]
        lags = [np.corrcoef(g[:, :-k].ravel(), g[:, k:].ravel())[0, 1] for k in (1, 2, 4, 8)]
        print(f"{item.name[:36]:36s} {resid.var():6.2f} {resid[flat].var():6.2f} {resid[edges].var():7.2f} "
              f"{est:6.2f} {eig[1][0]:6.2f}/{eig[1][1]:6.2f} {eig[4][0]:6.2f}/{eig[4][1]:6.2f}  "
              + " ".join(f"{v:.2f}" for v in lags), flush=True)


if __name__ == "__main__":
    main()
