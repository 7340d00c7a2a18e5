"""Are the outputs quantitatively right? Bias, the noise-variance map and the posterior std.

On the synthetic Poisson-Gaussian set of ``sets.py`` (clean W2S averages and BSD68 crops in photon
counts, three gains x two read noises, camera offset, uint16; the truth is known exactly) and on the
10 W2S pairs, per preset, it prints:

* PSNR (dB; synthetic: peak = clean range; W2S: 255, outputs affine-fitted to the ground truth);
* bias of the denoised image over the whole image, the brightest 10 % and the darkest 50 % of clean
  pixels, in units of the noise std over the same pixels (targets: +-0.05 whole, +-0.1 bright/dark);
* the noise-variance map binned by clean intensity (10 quantile bins): the worst bin's relative
  error against the true variance (target +-15 %) and the slope of a line fitted to the binned map
  against the true slope (the gain; target +-10 %);
* coverage of ``denoised +- 1.96 posterior_std`` (target 85-99 %) and the Spearman correlation of
  the 16x16-block mean posterior std with the block RMS error (target >= 0.5).

W2S: each file was stretched to 8 bit on its own, so the ground truth is first mapped into the raw
frame's units by least squares (``raw ~ a * gt + b``); that aligned average is the clean image, and
the truth of the variance is the squared residual of the raw frame against it, binned the same way.

    python benchmarks/fidelity.py --presets fast balanced
    python benchmarks/fidelity.py --presets --opponents --sets pg corr w2s   # the opponents' bias
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import sets
from measure import psnr

TARGETS = "bias whole |x|<=0.05, bright/dark |x|<=0.1; var bins |err|<=15%, slope ratio 0.9-1.1; " \
          "coverage 85-99%, block Spearman >= 0.5"


def bias(out: np.ndarray, clean: np.ndarray, var: np.ndarray) -> dict[str, float]:
    """Mean error over the whole image, the brightest 10 % and the darkest 50 % of clean pixels, in
    units of the root mean true noise variance over the same pixels."""
    masks = {"whole": np.ones(clean.shape, bool), "bright": clean >= np.quantile(clean, 0.9),
             "dark": clean <= np.quantile(clean, 0.5)}
    return {k: float((out - clean)[m].mean() / np.sqrt(var[m].mean())) for k, m in masks.items()}


def binned(values: np.ndarray, intensity: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` and of ``intensity`` in ``bins`` quantile bins of ``intensity`` (bins left
    empty by repeated intensity values, as in 8-bit data, are dropped)."""
    edges = np.quantile(intensity, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, intensity.ravel(), side="right") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    full = count > 0
    return ((np.bincount(idx, values.ravel(), bins) / count.clip(1))[full],
            (np.bincount(idx, intensity.ravel(), bins) / count.clip(1))[full])


def variance_map(map_: np.ndarray, true_var: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Worst relative bin error of the map against the truth, and the ratio of the fitted slopes."""
    m, level = binned(map_, clean)
    t, _ = binned(true_var, clean)
    slope_map = np.polyfit(level, m, 1)[0]
    slope_true = np.polyfit(level, t, 1)[0]
    err = m / t - 1
    return {"bin_err_max": float(err[np.argmax(np.abs(err))]), "slope_ratio": float(slope_map / slope_true)}


def posterior(out: np.ndarray, std: np.ndarray, clean: np.ndarray, block: int = 16) -> dict[str, float]:
    from scipy.stats import spearmanr

    err = out - clean
    h, w = (s - s % block for s in clean.shape)
    blocks = (h // block, block, w // block, block)
    rms = np.sqrt((err[:h, :w] ** 2).reshape(blocks).mean(axis=(1, 3))).ravel()
    mstd = std[:h, :w].reshape(blocks).mean(axis=(1, 3)).ravel()
    return {"coverage": float(np.mean(np.abs(err) <= 1.96 * std)), "spearman": float(spearmanr(mstd, rms)[0])}


def score(item: sets.Item, denoised: np.ndarray, noise_variance: np.ndarray | None = None,
          posterior_std: np.ndarray | None = None) -> dict:
    """PSNR and bias of ``denoised``; the map columns from ``noise_variance`` / ``posterior_std``
    (NaN where not given: the opponents give no maps)."""
    if item.variance is not None:  # synthetic: the truth is known
        clean, true_var, peak = item.clean, item.variance, float(item.clean.max() - item.clean.min())
        var_truth = true_var
    else:  # W2S: the average, aligned to the raw frame's units, is the clean image
        clean = sets.affine_fit(item.clean, item.noisy)
        var_truth = (item.noisy - clean) ** 2
        peak = 255.0
    row = {"psnr": psnr(sets.affine_fit(denoised, item.clean), item.clean, 255.0) if item.variance is None
           else psnr(denoised, clean, peak)}
    row.update({f"bias_{k}": v for k, v in bias(denoised, clean, var_truth).items()})
    nan = float("nan")
    row.update(variance_map(noise_variance, var_truth, clean) if noise_variance is not None
               else {"bin_err_max": nan, "slope_ratio": nan})
    row.update(posterior(denoised, posterior_std, clean) if posterior_std is not None
               else {"coverage": nan, "spearman": nan})
    return row


def opponent_rows(item: sets.Item) -> dict[str, dict]:
    """PSNR and bias (as :func:`score`) of BM3D at our estimated sigma and of VST + BM3D: whether a
    classical denoiser, tuned as a user tunes it, moves intensities the same way; NaN for the maps."""
    import opponents

    rows = {}
    for name, (out, info) in (("bm3d (estimated sigma)", opponents.bm3d_estimated(item.noisy, False)),
                              ("vst + bm3d", opponents.vst_bm3d(item.noisy))):
        rows[name] = {**score(item, out), "seconds": info["seconds"]}
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=sets.DATA)
    p.add_argument("--sets", nargs="+", default=["pg", "w2s"], choices=["pg", "corr", "w2s"])
    p.add_argument("--presets", nargs="*", default=["fast", "balanced"],
                   help="preset names, optionally with overrides, e.g. fast:final_denoise=false")
    p.add_argument("--opponents", action="store_true",
                   help="also PSNR and bias of BM3D (estimated sigma) and VST + BM3D (they give no maps)")
    p.add_argument("--per-source", type=int, default=2, help="clean W2S and BSD68 images each in the synthetic sets")
    p.add_argument("--conditions", type=int, default=None, help="only the first N (gain, read noise) conditions")
    p.add_argument("--limit", type=int, default=None, help="only the first N W2S pairs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fidelity.json")
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi import denoise

    torch.set_num_threads(args.threads)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine, "sets": {}}
    print(f"fidelity benchmark, {report['date']}, {machine}\ntargets: {TARGETS}", flush=True)
    for which in args.sets:
        items = sets.w2s(args.data, args.limit) if which == "w2s" else sets.synthetic(
            which, args.data, args.per_source, args.conditions)
        per: dict[str, list] = {}
        for item in items:
            for preset in args.presets:
                r = denoise(item.noisy, preset=sets.preset_config(preset), device="cpu", seed=0)
                row = {"image": item.name, **score(item, r.denoised, r.noise_variance, r.posterior_std),
                       "seconds": r.info.seconds}
                per.setdefault(preset, []).append(row)
                print(f"{which} {item.name} {preset}: " + " ".join(
                    f"{k} {v:.3f}" for k, v in row.items() if k != "image"), flush=True)
            if args.opponents:
                for name, row in opponent_rows(item).items():
                    per.setdefault(name, []).append({"image": item.name, **row})
        print(f"\n{which}: {len(items)} images; mean over images (bias/bins/slope: also the worst image)")
        cols = ["psnr", "bias_whole", "bias_bright", "bias_dark", "bin_err_max", "slope_ratio", "coverage",
                "spearman"]
        print(f"{'preset':24s} " + " ".join(f"{c:>12s}" for c in cols))
        summary = {}
        for preset, rows in per.items():
            mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
            worst = {c: float(max((r[c] for r in rows), key=lambda v, c=c: abs(v - (1 if c == "slope_ratio" else 0))))
                     for c in cols[1:6]}
            summary[preset] = {"mean": mean, "worst": worst}
            print(f"{preset:24s} " + " ".join(f"{mean[c]:12.3f}" for c in cols))
            print(f"{'  worst':24s} {'':>12s} " + " ".join(f"{worst[c]:12.3f}" for c in cols[1:6]))
        report["sets"][which] = {"summary": summary, "per_image": per}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
