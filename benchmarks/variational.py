"""ScoreDVI as published (the ``variational`` preset) where its claim lives: priors that do not match the noise.

On centre crops (``--crop``, small enough for a CPU) of the first ``--limit`` images of each set, every
row one denoising of the same crop, seed 0, one thread:

* ``default, matched``: the default preset with the engine's own prior choice (correlated-noise
  priors where it measures correlated noise);
* ``default, independent``: the default preset forced to the priors trained on pixel-independent noise;
* ``variational, independent``: the published cold-start fit with those Gaussian priors (the claim:
  nothing trained on the correlated or camera noise);
* ``variational, independent, lam=0``: the same without the score prior (the control);
* ``variational, matched``: the published fit with the engine's prior choice;
* ``oracle BM3D`` (CBM3D on RGB): BM3D with the sigma that maximises PSNR, searched finely.

PSNR in dB (synthetic sets: peak = the clean crop's range; W2S: 255 after an affine fit of the output
to the ground truth; PolyU/CC: 255). Rows are cached per crop and configuration in
``benchmarks/results/variational.json`` (keyed by the contents of the engine's files), so the
command resumes where it stopped. ``--cost`` times the reference configuration (its network sizes
and step count) per step on one crop and prints the cost table.

    python benchmarks/variational.py --crop 96 --limit 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

import measure
import sets

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = "balanced"
ROWS = {  # row -> (preset, prior set, lam)
    "default, matched": (DEFAULT, "auto", None),
    "default, independent": (DEFAULT, "independent", None),
    "variational, independent": ("variational", "independent", None),
    "variational, independent, lam=0": ("variational", "independent", 0.0),
    "variational, matched": ("variational", "auto", None),
}


def crops(which: str, size: int, limit: int) -> list[tuple[sets.Item, float]]:
    """(item cropped to ``size``, PSNR peak) for the first ``limit`` images of a set."""
    loaders = {"corr": lambda: sets.synthetic("corr"), "pg": lambda: sets.synthetic("pg"), "w2s": sets.w2s,
               "polyu": sets.polyu, "cc": sets.cc}
    out = []
    for item in loaders[which]()[:limit]:
        clean, noisy = sets._centre(item.clean, size), sets._centre(item.noisy, size)
        peak = 255.0 if which in ("w2s", "polyu", "cc") else float(clean.max() - clean.min())
        out.append((dataclasses.replace(item, clean=clean, noisy=noisy, variance=None), peak))
    return out


def psnr(out: np.ndarray, item: sets.Item, peak: float, which: str) -> float:
    out = sets.affine_fit(out, item.clean) if which == "w2s" else out
    return measure.psnr(out, item.clean, peak)


def ours(item: sets.Item, preset, priors: str, lam: float | None) -> tuple[np.ndarray, float, dict]:
    """One denoising of the crop (``preset``: a name or a Preset): (denoised, seconds, {iterations, retries})."""
    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.settings import DenoiseSettings

    t0 = time.perf_counter()
    result = finish(denoise_steps(item.noisy, DenoiseSettings(preset, "cpu", 0, lam, priors=priors),
                                  channel_axis=-1 if item.rgb else None, posterior_std=False))
    return result.denoised, time.perf_counter() - t0, {"iterations": result.info.iterations,
                                                         "retries": result.info.retries}


def oracle_bm3d(item: sets.Item, peak: float, which: str) -> tuple[float, float]:
    import opponents

    found = opponents.bm3d_oracle(np.asarray(item.noisy, np.float64), item.rgb, peak,
                                  lambda out: (psnr(out, item, peak, which), 0.0))
    return found["psnr"], found["seconds"]


def reference_seconds_per_step(size: int, channels: int = 1, steps: int = 10) -> float:
    """Seconds per step of the reference configuration's network sizes (image U-Net 4 levels x 64
    channels; noise, assignment and weight nets 5 x 32 each; K = 3 priors, one sample) on a
    ``size`` x ``size`` crop: our fit code with those sizes, timed over ``steps`` steps after one."""
    import torch

    from napari_scoredvi.engine.presets import get_preset
    from napari_scoredvi.engine.priors import load_priors
    from napari_scoredvi.engine.variational import fit_cold

    # the reference's three separate 5 x 32 CNNs, as one trunk of the same total width
    cfg = dataclasses.replace(get_preset("variational"), unet_levels=4, unet_base=64, aux_depth=5, aux_width=96,
                              iterations=steps + 1)
    y = torch.rand(channels, size, size)
    gen = fit_cold(y, cfg, load_priors("cpu"), 1.0, 0.01, 0, 0, steps + 1)
    next(gen)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(gen)
    return (time.perf_counter() - t0) / steps


def engine_version() -> str:
    """A hash of the contents of the files ``denoise`` runs (quality.py's list): committing them does
    not change it, editing them does."""
    import hashlib

    import quality

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in quality._engine_files(root):
        digest.update(name.encode() + (root / name).read_bytes())
    return "content-" + digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="*", default=["corr", "polyu", "cc", "w2s"])
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--limit", type=int, default=4, help="images per set")
    p.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--cost", action="store_true", help="also time the reference configuration per step")
    p.add_argument("--cache", type=Path, default=RESULTS / "variational.json")
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi.engine.presets import get_preset

    torch.set_num_threads(1)
    version = engine_version()
    cache = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    print(f"{time.strftime('%Y-%m-%d %H:%M')} engine {version}, crop {args.crop}, {args.limit} per set, 1 thread",
          flush=True)

    def save() -> None:
        tmp = args.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(args.cache)

    summary: dict[str, dict[str, list[float]]] = {}
    for which in args.sets:
        for item, peak in crops(which, args.crop, args.limit):
            base = f"{which}/{item.name}/{args.crop}"
            for row in args.rows:
                key = f"{base}/{row}"
                preset, priors, lam = ROWS[row]
                config = get_preset(preset).as_dict()
                if (cache.get(key, {}).get("engine"), cache.get(key, {}).get("preset")) != (version, config):
                    out, seconds, extra = ours(item, preset, priors, lam)
                    cache[key] = {"engine": version, "preset": config, "psnr": psnr(out, item, peak, which),
                                  "seconds": seconds, **extra}
                    save()
                summary.setdefault(which, {}).setdefault(row, []).append(cache[key]["psnr"])
                summary[which].setdefault(row + " s", []).append(cache[key]["seconds"])
            key = f"{base}/oracle BM3D"
            if key not in cache:
                value, seconds = oracle_bm3d(item, peak, which)
                cache[key] = {"psnr": value, "seconds": seconds}
                save()
            summary[which].setdefault("oracle BM3D", []).append(cache[key]["psnr"])
            print(f"  {base}: " + ", ".join(f"{r} {cache[f'{base}/{r}']['psnr']:.2f}" for r in
                                            [*args.rows, "oracle BM3D"]), flush=True)
    print(f"\nmean PSNR (dB) and seconds per crop, {args.crop} x {args.crop}:")
    for which, rows in summary.items():
        print(f"{which} ({len(rows['oracle BM3D'])} crops)")
        for row, values in rows.items():
            if not row.endswith(" s"):
                secs = rows.get(row + " s")
                print(f"  {row:34s} {np.mean(values):6.2f}" + (f"  {np.mean(secs):7.1f} s" if secs else ""))
    print("\ntargets:")
    for which, rows in summary.items():
        v = rows.get("variational, independent")
        if v is None:
            continue
        if which == "corr" and "default, matched" in rows:
            gap = np.mean(rows["default, matched"]) - np.mean(v)
            print(f"  corr: matched - variational(independent) = {gap:+.2f} dB (target <= 0.5): "
                  f"{'PASS' if gap <= 0.5 else 'FAIL'}")
        if which in ("polyu", "cc"):
            gap = np.mean(v) - np.mean(rows["oracle BM3D"])
            print(f"  {which}: variational(independent) - oracle CBM3D = {gap:+.2f} dB (target >= 0): "
                  f"{'PASS' if gap >= 0 else 'FAIL'}")
        if which == "w2s" and "default, matched" in rows:
            gap = np.mean(v) - np.mean(rows["default, matched"])
            print(f"  w2s: variational(independent) - default = {gap:+.2f} dB (target >= 0): "
                  f"{'PASS' if gap >= 0 else 'FAIL'}")
    if args.cost:
        ref = reference_seconds_per_step(args.crop)
        steps = get_preset("variational").iterations
        print(f"\ncost on {args.crop} x {args.crop}: reference configuration {ref:.3f} s/step x 500 steps = "
              f"{ref * 500:.0f} s; variational preset ({steps} steps): see the rows' seconds above")


if __name__ == "__main__":
    main()
