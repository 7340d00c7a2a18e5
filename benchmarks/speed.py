"""Speed, memory and quality of the presets against BM3D measured in the same run.

Every measurement runs in a fresh child process (so its peak RSS is its own) with ``--threads``
torch threads. Sections (pick with ``--sections``):

* ``slice``: each configuration on 512x512 W2S raw frames (``--w2s N`` images, affine-fitted to the
  400-frame average as in quality.py): seconds per slice, ratio to BM3D (sigma estimated by our
  noise estimator, as a user would run it) in the same run, PSNR/SSIM, peak RSS.
* ``stack``: a synthetic ``--stack-slices`` x 512 x 512 fluorescence stack (Poisson-Gaussian, known
  ground truth): per-slice seconds of the warm-started stack loop against BM3D's per-slice time, and
  its PSNR against fitting the same slices on their own (every 8th slice).
* ``large``: one ``--large`` x ``--large`` synthetic slice: peak RSS and seconds.

A configuration is a preset name with optional overrides, e.g. ``fast``,
``balanced:iterations=150``, ``fast:crops=1,samples=2``. The override ``allocator=default`` runs
the configuration with the package's allocator settings turned off (``napari_scoredvi.engine.host_memory``).

    python benchmarks/speed.py --configs fast balanced --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import measure
import sets

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "datasets"


# -- child side -----------------------------------------------------------------------------------
def _preset(spec: str):
    return sets.preset_config(spec)


def _bm3d(noisy: np.ndarray) -> np.ndarray:
    import bm3d

    from napari_scoredvi.engine.noise_estimate import estimate_noise_std

    lo, hi = float(noisy.min()), float(noisy.max())
    unit = (noisy - lo) / (hi - lo)
    return bm3d.bm3d(unit, estimate_noise_std(unit)) * (hi - lo) + lo


def _w2s(n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(item.name, item.noisy, item.clean) for item in sets.w2s(DATA, n)]


def _stack(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    from napari_scoredvi.io.synthetic import noisy_fluorescence_stack

    return noisy_fluorescence_stack(n, (size, size), seed=11, photons=40.0)


def child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from napari_scoredvi import denoise
    from napari_scoredvi.engine.settings import DenoiseSettings
    from napari_scoredvi.pipeline.slices import denoise_stack_steps

    kind, method = spec["kind"], spec["method"]
    res: dict = {}
    if kind == "slice":
        rows = []
        for _name, noisy, gt in _w2s(spec["w2s"]):
            t0 = time.perf_counter()
            out = _bm3d(noisy) if method == "bm3d" else denoise(noisy, preset=_preset(method), device="cpu").denoised
            sec = time.perf_counter() - t0
            rows.append((sec, *measure.psnr_ssim(out, gt, 255.0, affine=True)))
        res = {"seconds": float(np.mean([r[0] for r in rows])), "psnr": float(np.mean([r[1] for r in rows])),
               "ssim": float(np.mean([r[2] for r in rows])), "n": len(rows)}
    elif kind == "stack":
        noisy, clean = _stack(spec["slices"], spec["size"])
        rng = float(clean.max() - clean.min())
        numbers = spec["numbers"]
        outs: dict[int, np.ndarray] = {}
        t0 = time.perf_counter()
        if method == "bm3d":
            for k in numbers:
                outs[k] = _bm3d(noisy[k].astype(np.float64))
        else:
            cfg = _preset(method)
            # as the batch command and the widget run by default: no posterior-std output asked for
            settings = DenoiseSettings(cfg, "cpu", warm_start=spec["warm"])
            for _ in denoise_stack_steps(lambda k: noisy[k], numbers, lambda k, r: outs.__setitem__(k, r.denoised),
                                         settings, posterior_std=False):
                pass
        sec = (time.perf_counter() - t0) / len(numbers)
        psnr = {str(k): measure.psnr(outs[k], clean[k], rng) for k in numbers}
        res = {"seconds": sec, "psnr_per_slice": psnr, "psnr": float(np.mean(list(psnr.values())))}
    elif kind == "large":
        noisy, _ = _stack(1, spec["size"])
        t0 = time.perf_counter()
        denoise(noisy[0], preset=_preset(method), device="cpu")
        res = {"seconds": time.perf_counter() - t0}
    res["peak_rss_mb"] = measure.peak_rss_mb()
    return res


# -- parent side ----------------------------------------------------------------------------------
def run_child(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    if "allocator=default" in spec["method"]:
        env["NAPARI_SCOREDVI_ALLOCATOR"] = "default"
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0:
        raise SystemExit(f"child {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine(threads: int) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {threads} torch threads, torch {torch.__version__}, device cpu"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["fast", "balanced"])
    p.add_argument("--sections", nargs="+", default=["slice", "stack", "large"], choices=["slice", "stack", "large"])
    p.add_argument("--w2s", type=int, default=3, help="W2S images for the slice section")
    p.add_argument("--stack-slices", type=int, default=32)
    p.add_argument("--stack-configs", nargs="+", default=["fast", "balanced"])
    p.add_argument("--large", type=int, default=2048)
    p.add_argument("--large-configs", nargs="+", default=["balanced"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=HERE / "results" / "speed.json")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(args.threads), "sections": {}}
    print(f"{report['date']}  {report['machine']}")
    base = {"threads": args.threads}
    if "slice" in args.sections:
        print(f"\n512x512 W2S raw frames ({args.w2s} images), seconds per slice; ratio = seconds / BM3D's")
        print(f"{'configuration':30s} {'s/slice':>8s} {'ratio':>6s} {'PSNR':>6s} {'SSIM':>6s} {'peak RSS MB':>11s}")
        ref = run_child(dict(base, kind="slice", method="bm3d", w2s=args.w2s))
        rows = {"bm3d (estimated sigma)": ref}
        for cfg in args.configs:
            rows[cfg] = run_child(dict(base, kind="slice", method=cfg, w2s=args.w2s))
        for name, r in rows.items():
            r["ratio_to_bm3d"] = r["seconds"] / ref["seconds"]
            print(f"{name:30s} {r['seconds']:8.2f} {r['ratio_to_bm3d']:6.2f} {r['psnr']:6.2f} {r['ssim']:6.3f} "
                  f"{r['peak_rss_mb']:11.0f}", flush=True)
        report["sections"]["slice"] = rows
    if "stack" in args.sections:
        n = args.stack_slices
        every = list(range(0, n, 8))
        print(f"\nsynthetic {n}x512x512 stack: warm-started stack loop vs each slice fitted on its own "
              f"(slices {every}); seconds per slice")
        print(f"{'configuration':30s} {'s/slice':>8s} {'ratio':>6s} {'PSNR':>6s} {'PSNR alone':>10s} "
              f"{'dPSNR':>6s} {'peak RSS MB':>11s}")
        stack = dict(base, kind="stack", slices=n, size=512)
        ref = run_child(dict(stack, method="bm3d", numbers=every, warm=False))
        rows = {"bm3d (estimated sigma)": ref}
        print(f"{'bm3d (estimated sigma)':30s} {ref['seconds']:8.2f} {1:6.2f} {ref['psnr']:6.2f}", flush=True)
        for cfg in args.stack_configs:
            warm = run_child(dict(stack, method=cfg, numbers=list(range(n)), warm=True))
            alone = run_child(dict(stack, method=cfg, numbers=every, warm=False))
            same = float(np.mean([warm["psnr_per_slice"][str(k)] for k in every]))
            warm.update(ratio_to_bm3d=warm["seconds"] / ref["seconds"], psnr_alone_same_slices=alone["psnr"],
                        psnr_warm_same_slices=same, seconds_alone=alone["seconds"])
            rows[cfg] = warm
            print(f"{cfg:30s} {warm['seconds']:8.2f} {warm['ratio_to_bm3d']:6.2f} {same:6.2f} {alone['psnr']:10.2f} "
                  f"{same - alone['psnr']:6.2f} {warm['peak_rss_mb']:11.0f}", flush=True)
        report["sections"]["stack"] = rows
    if "large" in args.sections:
        print(f"\none {args.large}x{args.large} synthetic slice")
        rows = {}
        for cfg in args.large_configs:
            r = run_child(dict(base, kind="large", method=cfg, size=args.large))
            rows[cfg] = r
            print(f"{cfg:30s} {r['seconds']:8.1f} s  peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        report["sections"]["large"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
