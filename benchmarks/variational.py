"""``variational``: ScoreDVI as published (the ``variational`` preset) where its claim lives: priors that
do not match the noise.

Section ``rows``: on centre crops (``--crop``, small enough for a CPU) of the first ``--limit``
images of each set, every row one denoising of the same crop, seed 0, one thread:

* ``balanced, matched``: the ``balanced`` preset with the engine's own prior choice
  (correlated-noise priors where it measures correlated noise);
* ``balanced, independent``: ``balanced`` forced to the priors trained on pixel-independent noise;
* ``variational, independent``: the published cold-start fit with those Gaussian priors (the claim:
  nothing trained on the correlated or camera noise);
* ``variational, independent, lam=0``: the same without the score prior (the control);
* ``variational, matched``: the published fit with the engine's prior choice;
* ``oracle BM3D`` (CBM3D on RGB): BM3D with the sigma that maximises PSNR, searched finely.

PSNR in dB (synthetic sets: peak = the clean crop's range; W2S: 255 after an affine fit of the output
to the ground truth; PolyU/CC: 255). Rows are cached per crop and configuration in
``variational-cache.json`` (keyed by the contents of the engine's files), so the command resumes
where it stopped. Targets: corr, matched - variational(independent) <= 0.5 dB; PolyU and CC,
variational(independent) >= oracle CBM3D; W2S, variational(independent) >= balanced.

Section ``cost``: seconds per Adam step (and per 500-step fit) of the ``variational`` preset and of
the reference configuration's network sizes (image U-Net 4 levels x 64 channels; the noise,
assignment and weight networks 5 x 32 each, here one trunk of width 96) on ``--cost-sizes`` slices,
timed over ``--cost-steps`` steps after the first, in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from . import measure, opponents, sets
from .common import Report, engine_version, write_json

SECTIONS = ("rows", "cost")
ROWS = {  # row -> (preset, prior set, lam)
    "balanced, matched": ("balanced", "auto", None),
    "balanced, independent": ("balanced", "independent", None),
    "variational, independent": ("variational", "independent", None),
    "variational, independent, lam=0": ("variational", "independent", 0.0),
    "variational, matched": ("variational", "auto", None),
}
ORACLE = "oracle BM3D"
STEPS = 500  # the reference's fit


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks variational``."""
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--sets", nargs="+", default=["corr", "polyu", "cc", "w2s"],
                   choices=["corr", "pg", "polyu", "cc", "w2s"])
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--limit", type=int, default=3, help="images per set")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--cost-sizes", type=int, nargs="+", default=[256, 512], help="section cost: slice sizes")
    p.add_argument("--cost-steps", type=int, default=3, help="section cost: steps timed per configuration")


def crops(which: str, data, size: int, limit: int) -> list[tuple[sets.Item, float]]:
    """(item cropped to ``size``, PSNR peak) for the first ``limit`` images of a set (the synthetic
    sets with 3 clean images per source)."""
    out = []
    for item in sets.load(which, data, per_source=3)[:limit]:
        clean, noisy = sets.centre(item.clean, size), sets.centre(item.noisy, size)
        peak = 255.0 if which in ("w2s", "polyu", "cc") else float(clean.max() - clean.min())
        out.append((dataclasses.replace(item, clean=clean, noisy=noisy, variance=None), peak))
    return out


def psnr(out: np.ndarray, item: sets.Item, peak: float, which: str) -> float:
    """PSNR of a crop's output (W2S: after the affine fit to the ground truth)."""
    out = sets.affine_fit(out, item.clean) if which == "w2s" else out
    return measure.psnr(out, item.clean, peak)


def ours(item: sets.Item, preset: str, priors: str, lam: float | None) -> tuple[np.ndarray, float, dict]:
    """One denoising of the crop: (denoised, seconds, {iterations, retries})."""
    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.settings import DenoiseSettings

    t0 = time.perf_counter()
    result = finish(denoise_steps(item.noisy, DenoiseSettings(preset, "cpu", 0, lam, priors=priors),
                                  channel_axis=-1 if item.rgb else None, posterior_std=False))
    return result.denoised, time.perf_counter() - t0, {"iterations": result.info.iterations,
                                                         "retries": result.info.retries}


def oracle_bm3d(item: sets.Item, peak: float, which: str) -> tuple[float, float]:
    """PSNR and seconds (one BM3D run) of BM3D (CBM3D on RGB) at the best sigma for the crop."""
    found = opponents.bm3d_oracle(np.asarray(item.noisy, np.float64), item.rgb, peak,
                                  lambda out: (psnr(out, item, peak, which), 0.0))
    return found["psnr"], found["seconds"]


class _Timed(Exception):
    """Raised from the progress callback once enough steps are timed (stops the fit)."""


def seconds_per_step(preset, size: int, steps: int) -> float:
    """Seconds per Adam step of ``preset`` (a :class:`VariationalPreset`) on a random ``size`` x ``size``
    slice, through ``denoise_steps``: from the end of the first step to that of step ``steps + 1``."""
    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.settings import DenoiseSettings

    times: list[float] = []

    def tick(_event) -> None:
        times.append(time.perf_counter())
        if len(times) > steps:
            raise _Timed

    image = np.random.default_rng(0).random((size, size))
    try:
        finish(denoise_steps(image, DenoiseSettings(preset, "cpu", 0), posterior_std=False), tick)
    except _Timed:
        pass
    return (times[steps] - times[0]) / steps


def reference_preset():
    """The reference configuration's network sizes on the ``variational`` preset (its three separate
    5 x 32 networks as one trunk of the same total width)."""
    from napari_scoredvi.engine.presets import get_preset

    return dataclasses.replace(get_preset("variational"), name="reference sizes", unet_levels=4, unet_base=64,
                               aux_depth=5, aux_width=96)


def rows(args: argparse.Namespace) -> dict:
    """Section ``rows``: compute the rows not cached, print the per-crop rows, means and targets."""
    from napari_scoredvi.engine.presets import get_preset

    path = args.results / "variational-cache.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    version = engine_version()
    print(f"engine {version}, crop {args.crop}, {args.limit} per set, 1 thread", flush=True)
    summary: dict[str, dict[str, list[float]]] = {}
    for which in args.sets:
        for item, peak in crops(which, args.data, args.crop, args.limit):
            base = f"{which}/{item.name}/{args.crop}"
            for row in args.rows:
                key = f"{base}/{row}"
                preset, priors, lam = ROWS[row]
                config = get_preset(preset).as_dict()
                if (cache.get(key, {}).get("engine"), cache.get(key, {}).get("preset")) != (version, config):
                    out, seconds, extra = ours(item, preset, priors, lam)
                    cache[key] = {"engine": version, "preset": config, "psnr": psnr(out, item, peak, which),
                                  "seconds": seconds, **extra}
                    write_json(path, cache)
                summary.setdefault(which, {}).setdefault(row, []).append(cache[key]["psnr"])
                summary[which].setdefault(row + " s", []).append(cache[key]["seconds"])
            key = f"{base}/{ORACLE}"
            if key not in cache:
                value, seconds = oracle_bm3d(item, peak, which)
                cache[key] = {"psnr": value, "seconds": seconds}
                write_json(path, cache)
            summary[which].setdefault(ORACLE, []).append(cache[key]["psnr"])
            print(f"  {base}: " + ", ".join(f"{r} {cache[f'{base}/{r}']['psnr']:.2f}" for r in
                                            [*args.rows, ORACLE]), flush=True)
    print(f"\nmean PSNR (dB) and seconds per crop, {args.crop} x {args.crop}:")
    means = {which: {row: float(np.mean(values)) for row, values in rs.items()} for which, rs in summary.items()}
    for which, rs in means.items():
        print(f"{which} ({len(summary[which][ORACLE])} crops)")
        for row, value in rs.items():
            if not row.endswith(" s"):
                secs = rs.get(row + " s")
                print(f"  {row:34s} {value:6.2f}" + (f"  {secs:7.1f} s" if secs is not None else ""))
    return {"engine": version, "crop": args.crop, "means": means, "targets": _targets(means)}


def _targets(means: dict[str, dict[str, float]]) -> list[dict]:
    """Print and return the targets the means can check."""
    print("\ntargets:")
    out = []
    for which, rs in means.items():
        v = rs.get("variational, independent")
        if v is None:
            continue
        if which == "corr" and "balanced, matched" in rs:
            out.append((which, "balanced, matched - variational, independent", rs["balanced, matched"] - v, "<=", 0.5))
        if which in ("polyu", "cc"):
            out.append((which, "variational, independent - oracle CBM3D", v - rs[ORACLE], ">=", 0.0))
        if which == "w2s" and "balanced, matched" in rs:
            out.append((which, "variational, independent - balanced", v - rs["balanced, matched"], ">=", 0.0))
    report = []
    for which, what, gap, sense, limit in out:
        ok = gap <= limit if sense == "<=" else gap >= limit
        print(f"  {which}: {what} = {gap:+.2f} dB (target {sense} {limit:g}): {'PASS' if ok else 'FAIL'}")
        report.append({"set": which, "what": what, "value_db": gap, "target": f"{sense} {limit:g}", "pass": ok})
    return report


def cost(args: argparse.Namespace) -> dict:
    """Section ``cost``: seconds per step of the variational preset and of the reference sizes."""
    from napari_scoredvi.engine.presets import get_preset

    print(f"\nseconds per step (x {STEPS} steps), {args.cost_steps} steps timed, 1 thread", flush=True)
    out = {}
    for size in args.cost_sizes:
        ours_s = seconds_per_step(get_preset("variational"), size, args.cost_steps)
        ref_s = seconds_per_step(reference_preset(), size, args.cost_steps)
        out[str(size)] = {"variational": ours_s, "reference_sizes": ref_s}
        print(f"{size} x {size}: variational {ours_s:.3f} s/step ({ours_s * STEPS:.0f} s), reference sizes "
              f"{ref_s:.3f} s/step ({ref_s * STEPS:.0f} s), ratio {ours_s / ref_s:.2f}", flush=True)
    return out


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks variational``: writes ``variational.json`` and ``variational.log``."""
    import torch

    torch.set_num_threads(1)
    with Report("variational", args.results, "variational benchmark", 1) as report:
        if "rows" in args.sections:
            report.data["rows"] = rows(args)
        if "cost" in args.sections:
            report.data["cost"] = cost(args)
