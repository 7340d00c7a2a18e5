"""``fidelity``: are the outputs quantitatively right? Bias, the noise-variance map and the posterior std.

On the synthetic Poisson-Gaussian set of ``sets.py`` (``pg``: clean W2S averages and BSD68 crops in
photon counts, three gains x two read noises, camera offset, uint16; the truth is known exactly), its
spatially correlated twin (``corr``), the 10 W2S pairs (``w2s``) and the real camera sRGB pairs of
PolyU and CC (``polyu``, ``cc``: 8-bit RGB, 256x256 crops), per preset, it prints:

* PSNR (dB; synthetic: peak = clean range; W2S: 255, outputs affine-fitted to the ground truth;
  PolyU/CC: 255, no fit);
* bias of the denoised image over the whole image, the brightest 10 % and the darkest 50 % of clean
  pixels, in units of the noise std over the same pixels (RGB: the pixels are all channel values
  together, the 10 % / 50 % split by clean intensity over all of them);
* the noise-variance map binned by clean intensity (10 quantile bins): the worst bin's relative
  error against the true variance and the slope of a line fitted to the binned map against the true
  slope (the gain) (RGB: per channel, the worst channel of each column);
* ``level_ratio``: the mean of the noise-variance map over the image divided by the mean of the
  true variance (RGB: per channel, the channel farthest from 1);
* coverage of ``denoised +- 1.96 posterior_std`` and the Spearman correlation of the 16x16-block
  mean posterior std with the block RMS error (RGB: coverage over all channel values; every channel
  of every block is one point of the correlation).

Targets (the issue's): bright 10 % and dark 50 % bias within +-0.15 noise std on every image of
``pg`` and ``w2s``; map bins within +-15 % and slope ratio within 0.9-1.1 on at least 10 of 12
images of every synthetic set (``pg``, ``corr``; the same share of another count) and on every W2S
frame; PolyU/CC map level (``level_ratio``) within +-25 % on every image; coverage 90-98 % on every
image of every set. The whole-image bias and the Spearman correlation are reported without a target
(earlier targets: +-0.05, >= 0.5). After each set's summary one line per method counts the images
that meet each target that applies to that set.

W2S: each file was stretched to 8 bit on its own, so the ground truth is first mapped into the raw
frame's units by least squares (``raw ~ a * gt + b``); that aligned average is the clean image, and
the truth of the variance is the squared residual of the raw frame against it, binned the same way.
PolyU/CC: the mean image is in the noisy image's 8-bit units already (``quality`` scores them
without a fit too, and PSNR here is against it as it is), but up to 3.7 levels off the noisy image
in a channel's mean: shifted by that per-channel offset it is the clean image of the bias and the
maps, and the truth of the variance is the squared residual of the noisy image against it (its
mean: the residual's variance). With ``--opponents`` the rows of BM3D at our estimated sigma (CBM3D for
RGB) and of VST + BM3D (grey sets only) give PSNR and bias; they give no maps.

``--figures`` writes the figures of docs/explanation/noise-and-uncertainty.md instead (``fidelity_figures.py``).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from . import fidelity_figures, opponents, sets
from .common import Report, preset_arg, preset_config
from .measure import binned, psnr

BIAS_MAX = 0.15  # |bias| of the bright 10 % and the dark 50 %, noise std units (pg, w2s: every image)
BIN_MAX = 0.15  # |worst bin's relative error| (pg, corr: MAP_SHARE of the images; w2s: every frame)
SLOPE_MAX = 0.10  # |slope ratio - 1| (as the bins)
MAP_SHARE = 10 / 12  # "at least 10 of 12 images of every synthetic set"
LEVEL_MAX = 0.25  # |level_ratio - 1| (polyu, cc: every image)
COVERAGE = (0.90, 0.98)  # coverage of the 95 % interval (every image of every set)
SYNTHETIC = ("pg", "corr")
RGB_SETS = ("polyu", "cc")
TARGETS = (f"bias bright/dark |x|<={BIAS_MAX:g} (pg, w2s: every image); var bins |err|<={BIN_MAX:.0%}, slope "
           f"ratio {1 - SLOPE_MAX:g}-{1 + SLOPE_MAX:g} (pg, corr: >= 10 of 12 images; w2s: every frame); map "
           f"level |ratio-1|<={LEVEL_MAX:.0%} (polyu, cc: every image); coverage {COVERAGE[0]:.0%}-{COVERAGE[1]:.0%}"
           " (every image of every set)")


def bias(out: np.ndarray, clean: np.ndarray, var: np.ndarray) -> dict[str, float]:
    """Mean error over the whole image, the brightest 10 % and the darkest 50 % of clean pixels, in
    units of the root mean true noise variance over the same pixels. RGB (H, W, 3): every channel
    value is a pixel here, the 10 % / 50 % split by clean intensity over all channel values."""
    masks = {"whole": np.ones(clean.shape, bool), "bright": clean >= np.quantile(clean, 0.9),
             "dark": clean <= np.quantile(clean, 0.5)}
    return {k: float((out - clean)[m].mean() / np.sqrt(var[m].mean())) for k, m in masks.items()}


def variance_map(map_: np.ndarray, true_var: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Worst relative bin error of the map against the truth, and the ratio of the fitted slopes."""
    m, level = binned(map_, clean)
    t, _ = binned(true_var, clean)
    slope_map = np.polyfit(level, m, 1)[0]
    slope_true = np.polyfit(level, t, 1)[0]
    err = m / t - 1
    return {"bin_err_max": float(err[np.argmax(np.abs(err))]), "slope_ratio": float(slope_map / slope_true)}


def variance_map_rgb(map_: np.ndarray, true_var: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """:func:`variance_map` per channel of (H, W, 3) images; each column's worst channel (the bin
    error farthest from 0, the slope ratio farthest from 1)."""
    per = [variance_map(map_[..., c], true_var[..., c], clean[..., c]) for c in range(clean.shape[-1])]
    return {"bin_err_max": max((r["bin_err_max"] for r in per), key=abs),
            "slope_ratio": max((r["slope_ratio"] for r in per), key=lambda v: abs(v - 1))}


def level_ratio(map_: np.ndarray, true_var: np.ndarray, rgb: bool = False) -> float:
    """Mean of the noise-variance map over the image / mean of the true variance; RGB: per channel,
    the channel farthest from 1."""
    if not rgb:
        return float(map_.mean() / true_var.mean())
    ratios = map_.mean(axis=(0, 1)) / true_var.mean(axis=(0, 1))
    return float(ratios[np.argmax(np.abs(ratios - 1))])


def posterior(out: np.ndarray, std: np.ndarray, clean: np.ndarray, block: int = 16) -> dict[str, float]:
    """Coverage of ``out +- 1.96 std`` (every pixel, every channel) and the Spearman correlation of the
    ``block`` x ``block`` mean std with the block RMS error (RGB: one point per block and channel)."""
    from scipy.stats import spearmanr

    err = out - clean
    h, w = (s - s % block for s in clean.shape[:2])
    blocks = (h // block, block, w // block, block) + clean.shape[2:]
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
    elif item.rgb:  # PolyU/CC: the mean image is in the noisy image's 8-bit units already, no fit ...
        # ... but up to 3.7 levels off it per channel (an exposure difference, not noise): the mean image
        # shifted by that offset is the clean image of the bias and the maps, so that the truth of the
        # variance is the residual's variance and the bias is the denoiser's (PSNR is against the mean
        # image as it is, as in quality.py)
        clean = item.clean + (item.noisy - item.clean).mean(axis=(0, 1))
        var_truth = (item.noisy - clean) ** 2
        peak = 255.0
    else:  # W2S: the average, aligned to the raw frame's units, is the clean image
        clean = sets.affine_fit(item.clean, item.noisy)
        var_truth = (item.noisy - clean) ** 2
        peak = 255.0
    row = {"psnr": psnr(sets.affine_fit(denoised, item.clean), item.clean, 255.0)
           if item.variance is None and not item.rgb else psnr(denoised, item.clean, peak)}
    row.update({f"bias_{k}": v for k, v in bias(denoised, clean, var_truth).items()})
    nan = float("nan")
    row.update((variance_map_rgb if item.rgb else variance_map)(noise_variance, var_truth, clean)
               if noise_variance is not None else {"bin_err_max": nan, "slope_ratio": nan})
    row["level_ratio"] = level_ratio(noise_variance, var_truth, item.rgb) if noise_variance is not None else nan
    row.update(posterior(denoised, posterior_std, clean) if posterior_std is not None
               else {"coverage": nan, "spearman": nan})
    return row


def opponent_rows(item: sets.Item) -> dict[str, dict]:
    """PSNR and bias (as :func:`score`) of BM3D at our estimated sigma (CBM3D for RGB) and of VST +
    BM3D (grey only): whether a classical denoiser, tuned as a user tunes it, moves intensities the
    same way; NaN for the maps."""
    if item.rgb:
        # no VST + BM3D on PolyU/CC: the generalised Anscombe transform stabilises Poisson-Gaussian
        # raw data (variance affine in the mean); sRGB JPEG/PNG values have passed demosaicking, colour
        # mixing, gamma and tone curves, so their variance is no affine function of the intensity and
        # the transform would not make it constant (and opponents.vst_bm3d is grey only)
        runs = (("cbm3d (estimated sigma)", opponents.bm3d_estimated(item.noisy, True)),)
    else:
        runs = (("bm3d (estimated sigma)", opponents.bm3d_estimated(item.noisy, False)),
                ("vst + bm3d", opponents.vst_bm3d(item.noisy)))
    return {name: {**score(item, out), "seconds": info["seconds"]} for name, (out, info) in runs}


def target_counts(which: str, rows: list[dict]) -> dict[str, dict]:
    """For each target that applies to set ``which`` (and whose columns these rows have: the
    opponents have no maps), how many images meet it: {label: {"met", "images", "need"}}."""
    n = len(rows)
    every = n
    share = math.ceil(MAP_SHARE * n - 1e-9)
    checks = []
    if which in ("pg", "w2s"):
        checks.append((f"bias bright/dark within {BIAS_MAX:g}", ("bias_bright", "bias_dark"), every,
                       lambda r: abs(r["bias_bright"]) <= BIAS_MAX and abs(r["bias_dark"]) <= BIAS_MAX))
    if which in SYNTHETIC or which == "w2s":
        need = share if which in SYNTHETIC else every
        checks.append((f"bins {BIN_MAX * 100:.0f} %", ("bin_err_max",), need,
                       lambda r: abs(r["bin_err_max"]) <= BIN_MAX))
        checks.append((f"slope {SLOPE_MAX * 100:.0f} %", ("slope_ratio",), need,
                       lambda r: abs(r["slope_ratio"] - 1) <= SLOPE_MAX))
    checks.append((f"coverage {COVERAGE[0] * 100:.0f}-{COVERAGE[1] * 100:.0f} %", ("coverage",), every,
                   lambda r: COVERAGE[0] <= r["coverage"] <= COVERAGE[1]))
    if which in RGB_SETS:
        checks.append((f"level {LEVEL_MAX * 100:.0f} %", ("level_ratio",), every,
                       lambda r: abs(r["level_ratio"] - 1) <= LEVEL_MAX))
    out = {}
    for label, cols, need, ok in checks:
        if all(np.isnan(r[c]) for r in rows for c in cols):
            continue
        out[label] = {"met": sum(bool(ok(r)) for r in rows), "images": n, "need": need}
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks fidelity``."""
    p.add_argument("--sets", nargs="+", default=["pg", "w2s"], choices=["pg", "corr", "w2s", *RGB_SETS])
    p.add_argument("--presets", nargs="*", type=preset_arg, default=["fast", "balanced"],
                   help="presets or configurations, e.g. fast:final_pass=False")
    p.add_argument("--opponents", action="store_true",
                   help="also PSNR and bias of BM3D (estimated sigma; CBM3D for RGB) and VST + BM3D (grey "
                        "sets only); they give no maps")
    p.add_argument("--per-source", type=int, default=2, help="clean W2S and BSD68 images each in the synthetic sets")
    p.add_argument("--conditions", type=int, default=None, help="only the first N (gain, read noise) conditions")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of w2s, polyu (at most 8), cc")
    p.add_argument("--threads", type=int, default=2)
    fidelity_figures.add_arguments(p)


def _set_summary(which: str, per: dict[str, list]) -> dict:
    """Print one set's means (and worst images) per row and the target counts; return them."""
    cols = ["psnr", "bias_whole", "bias_bright", "bias_dark", "bin_err_max", "slope_ratio", "level_ratio",
            "coverage", "spearman"]
    print(f"{'preset':24s} " + " ".join(f"{c:>12s}" for c in cols))
    summary = {}
    for preset, rows in per.items():
        mean = {c: float(np.mean([r[c] for r in rows])) for c in cols}
        worst = {c: float(max((r[c] for r in rows),
                              key=lambda v, c=c: abs(v - (1 if c in ("slope_ratio", "level_ratio") else 0))))
                 for c in cols[1:7]}
        summary[preset] = {"mean": mean, "worst": worst, "targets": target_counts(which, rows)}
        print(f"{preset:24s} " + " ".join(f"{mean[c]:12.3f}" for c in cols))
        print(f"{'  worst':24s} {'':>12s} " + " ".join(f"{worst[c]:12.3f}" for c in cols[1:7]))
    for preset, entry in summary.items():
        if entry["targets"]:
            print(f"targets ({preset}): " + "; ".join(
                f"{label}: {t['met']}/{t['images']}" + (f" (need {t['need']})" if t["need"] < t["images"] else "")
                for label, t in entry["targets"].items()))
    return summary


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks fidelity``: writes ``fidelity.json`` and ``fidelity.log`` (``--figures``:
    the PNG files of docs/images, nothing in the results folder)."""
    import torch

    from napari_scoredvi import denoise

    torch.set_num_threads(args.threads)
    if args.figures:
        with Report(None, args.results, "fidelity figures", args.threads):
            fidelity_figures.write(args)
        return
    with Report("fidelity", args.results, "fidelity benchmark", args.threads) as report:
        print(f"targets: {TARGETS}", flush=True)
        for which in args.sets:
            items = sets.load(which, args.data, args.limit, args.per_source, args.conditions)
            per: dict[str, list] = {}
            for item in items:
                for preset in args.presets:
                    r = denoise(item.noisy, channel_axis=-1 if item.rgb else None, preset=preset_config(preset),
                                device="cpu", seed=0)
                    row = {"image": item.name, **score(item, r.denoised, r.noise_variance, r.posterior_std),
                           "seconds": r.info.seconds}
                    per.setdefault(preset, []).append(row)
                    print(f"{which} {item.name} {preset}: " + " ".join(
                        f"{k} {v:.3f}" for k, v in row.items() if k != "image"), flush=True)
                if args.opponents:
                    for name, row in opponent_rows(item).items():
                        per.setdefault(name, []).append({"image": item.name, **row})
            print(f"\n{which}: {len(items)} images; mean over images (bias/bins/slope/level: also the worst image)")
            report.data.setdefault("sets", {})[which] = {"summary": _set_summary(which, per), "per_image": per}
