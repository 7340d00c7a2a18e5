"""Denoising quality on real fluorescence (W2S) and on Set12 with Gaussian noise, against BM3D.

Prints one row per method with mean PSNR/SSIM and seconds per image, and writes every per-image
figure to a JSON file. Methods: the noisy input; BM3D (PyPI ``bm3d``) with sigma estimated from the
image (what a user gets) and with the best sigma of a small grid scored against the ground truth (an
oracle upper bound); napari-scoredvi at each preset.

W2S files were min-max stretched to 8 bit one by one, so every output is first fitted to the ground
truth with a least-squares affine map ``a * out + b`` (for all methods alike); Set12 is scored as is.

    python benchmarks/quality.py --data ../shared/datasets --presets fast balanced best
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

BM3D_SIGMAS_8BIT = (10, 15, 20, 25, 30, 40, 50, 60, 80)


def affine_fit(out: np.ndarray, gt: np.ndarray) -> np.ndarray:
    a = np.stack([out.ravel(), np.ones(out.size)], axis=1)
    coef = np.linalg.lstsq(a, gt.ravel(), rcond=None)[0]
    return (a @ coef).reshape(gt.shape)


def scores(out: np.ndarray, gt: np.ndarray, data_range: float, affine: bool) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = affine_fit(out.astype(np.float64), gt) if affine else out.astype(np.float64)
    return (
        float(peak_signal_noise_ratio(gt, out, data_range=data_range)),
        float(structural_similarity(gt, out, data_range=data_range)),
    )


def load_pairs(data: Path, which: str, limit: int | None, sigma: float) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, noisy, ground truth) as float64 in 8-bit units."""
    import imageio.v3 as iio
    import tifffile

    pairs = []
    if which == "w2s":
        for f in sorted((data / "w2s" / "noisy_avg1").glob("*.tif"))[:limit]:
            gt = data / "w2s" / "gt_avg400" / f.name.replace("input_avg1", "target_avg400")
            pairs.append((f.stem, tifffile.imread(f).astype(np.float64), tifffile.imread(gt).astype(np.float64)))
    else:
        rng = np.random.default_rng(0)
        for f in sorted((data / "bsd" / "Set12").glob("*.png"))[:limit]:
            gt = iio.imread(f).astype(np.float64)
            pairs.append((f.stem, gt + rng.normal(0, sigma, gt.shape), gt))
    if not pairs:
        raise SystemExit(f"no {which} images under {data}")
    return pairs


def run_bm3d(noisy: np.ndarray, gt: np.ndarray, affine: bool, cache: dict, key: str) -> dict:
    """BM3D with estimated sigma, and the oracle best sigma of BM3D_SIGMAS_8BIT (cached in ``cache``)."""
    import bm3d

    from napari_scoredvi.noise_estimate import estimate_noise_std

    if key in cache:
        return cache[key]
    est = estimate_noise_std(noisy)
    t0 = time.perf_counter()
    out = bm3d.bm3d(noisy / 255.0, est / 255.0) * 255.0
    sec = time.perf_counter() - t0
    p, s = scores(out, gt, 255.0, affine)
    best = {"psnr": -1.0}
    for sigma in BM3D_SIGMAS_8BIT:
        o = bm3d.bm3d(noisy / 255.0, sigma / 255.0) * 255.0
        bp, bs = scores(o, gt, 255.0, affine)
        if bp > best["psnr"]:
            best = {"psnr": bp, "ssim": bs, "sigma": sigma}
    cache[key] = {"estimated": {"psnr": p, "ssim": s, "sigma": est, "seconds": sec}, "oracle": best}
    return cache[key]


def run_direct_prior(noisy: np.ndarray) -> tuple[np.ndarray, float]:
    """The shipped prior denoiser whose noise range holds the estimated noise std, applied once to
    the image (no variational fit): what the score priors alone would give. Returns (output, s)."""
    import torch

    from napari_scoredvi.noise_estimate import estimate_noise_std
    from napari_scoredvi.normalise import fit_normalisation
    from napari_scoredvi.priors import load_priors

    t0 = time.perf_counter()
    norm = fit_normalisation(noisy[None])
    y = norm.to_model(noisy[None])
    std = estimate_noise_std(y)
    priors = load_priors("cpu")
    k = next((i for i, p in enumerate(priors) if std <= p.noise_range[1]), len(priors) - 1)
    with torch.no_grad():
        out = priors[k](torch.from_numpy(y)[None])[0].numpy()
    return norm.image_to_input(out.astype(np.float64))[0], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    p.add_argument("--sets", nargs="+", default=["w2s", "set12"], choices=["w2s", "set12"])
    p.add_argument("--presets", nargs="*", default=["fast", "balanced", "best"], help="none: baselines only")
    p.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise std for Set12, 8-bit units")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each set")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--direct-prior", action="store_true", help="also score the prior denoiser alone (no fit)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quality.json")
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi import denoise

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    cache_path = args.out.with_name("bm3d_cache.json")
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads", "sets": {}}
    for which in args.sets:
        affine = which == "w2s"
        pairs = load_pairs(args.data, which, args.limit, args.sigma)
        rows: dict[str, list] = {}
        for name, noisy, gt in pairs:
            per = {"noisy": (*scores(noisy, gt, 255.0, affine), 0.0)}
            if not args.no_bm3d:
                b = run_bm3d(noisy, gt, affine, cache, f"{which}/{name}/{args.sigma if not affine else ''}")
                cache_path.write_text(json.dumps(cache, indent=1))
                per["bm3d (estimated sigma)"] = (b["estimated"]["psnr"], b["estimated"]["ssim"],
                                                 b["estimated"]["seconds"])
                per["bm3d (oracle sigma)"] = (b["oracle"]["psnr"], b["oracle"]["ssim"], float("nan"))
            if args.direct_prior:
                out, sec = run_direct_prior(noisy)
                per["prior denoiser alone"] = (*scores(out, gt, 255.0, affine), sec)
            for preset in args.presets:
                r = denoise(noisy, preset=preset, device="cpu", seed=0)
                per[f"scoredvi {preset}"] = (*scores(r.denoised, gt, 255.0, affine), r.info["seconds"])
            for method, v in per.items():
                rows.setdefault(method, []).append({"image": name, "psnr": v[0], "ssim": v[1], "seconds": v[2]})
            print(f"{which} {name}: " + "  ".join(f"{m} {v[0]:.2f}" for m, v in per.items()), flush=True)
        label = "W2S (10 pairs, affine-fitted to GT)" if affine else f"Set12, Gaussian sigma {args.sigma:g}"
        print(f"\n{label} -- {report['machine']}")
        print(f"{'method':28s} {'PSNR dB':>8s} {'SSIM':>7s} {'s/image':>8s}")
        summary = {}
        for method, vals in rows.items():
            m = {k: float(np.mean([v[k] for v in vals])) for k in ("psnr", "ssim", "seconds")}
            summary[method] = m
            sec = "-" if np.isnan(m["seconds"]) else f"{m['seconds']:.1f}"  # the oracle's grid is not timed
            print(f"{method:28s} {m['psnr']:8.2f} {m['ssim']:7.4f} {sec:>8s}")
        report["sets"][which] = {"label": label, "summary": summary, "per_image": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
