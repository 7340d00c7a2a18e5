"""``speed``: speed and memory of the presets, against BM3D measured in the same run.

Every measurement runs in a fresh child process (so its peak RSS, ``ru_maxrss``, is its own) with
``--threads`` torch threads, on the CPU. Sections (``--sections``):

* ``slice``: each of ``--configs`` on 512x512 W2S raw frames (``--w2s N`` images, affine-fitted to
  the 400-frame average as in ``quality``; ``denoise`` with its defaults, the posterior std
  included): seconds per slice, ratio to BM3D's (sigma from our noise estimator, as a user would run
  it), PSNR/SSIM, peak RSS.
* ``stack``: a synthetic ``--stack-slices`` x 512 x 512 fluorescence stack (Poisson-Gaussian, known
  ground truth) through the stack loop (``pipeline.slices.denoise_stack_steps``, no posterior std,
  as the widget and the batch command run by default) for each of ``--stack-configs``: seconds per
  slice against BM3D's on every 8th slice, PSNR on those slices. The ensemble presets read each slice
  with its neighbours (the default context); for the variational preset the warm-started loop is also
  compared with fitting the every-8th slices on their own (seconds and PSNR).
* ``large``: one ``--large`` x ``--large`` synthetic slice per ``--large-configs`` (``denoise`` with
  its defaults): seconds, the highest RSS (sampled every 20 ms) in each stage (noise estimate and
  set-up, the prior passes or fit steps, the outputs) and the peak.
* ``batch``: the batch pipeline (``pipeline.run.denoise_volume``, Zarr in and out) on synthetic
  ``--batch-slices`` x ``--batch-size``\\ :sup:`2` uint16 volumes with ``--batch-config``: peak RSS
  (flat in the number of slices: one slice's work at a time), seconds per slice, page faults.
* ``allocator``: the same pipeline on ``--allocator-slices`` slices, with the package's allocator
  settings (``engine/host_memory.py``, as shipped) and without them (``NAPARI_SCOREDVI_ALLOCATOR=default``
  in the child's environment): seconds per slice, page faults, peak RSS.
* ``widget`` (not run by default: needs napari and a display, e.g. ``QT_QPA_PLATFORM=offscreen
  xvfb-run -a``): the napari dock widget denoising slices 0 .. N-1 (``--widget-slices``) of a lazily
  read ``--widget-depth`` x ``--widget-size``\\ :sup:`2` uint16 Zarr layer into an OME-Zarr store
  (``--widget-cluster``: on a one-worker dask ``LocalCluster``): the napari process's RSS before the
  run and its peak, seconds per slice.

A configuration is a preset name with optional overrides, e.g. ``fast``, ``balanced:ensemble=4``,
``fast:stabilise=False``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import measure, opponents, sets
from .common import ROOT, Report, preset_arg, preset_config

SECTIONS = ("slice", "stack", "large", "batch", "allocator", "widget")
DEFAULT_SECTIONS = ("slice", "stack", "large", "batch", "allocator")
BM3D = "bm3d (estimated sigma)"
EVERY = 8  # the stack section's BM3D (and cold-fit) slices: 0, 8, 16, ...
ALLOCATORS = {"as shipped": "tuned", "allocator defaults": "default"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks speed``."""
    p.add_argument("--sections", nargs="+", default=list(DEFAULT_SECTIONS), choices=SECTIONS)
    p.add_argument("--configs", nargs="+", type=preset_arg, default=["fast", "balanced"], help="section slice")
    p.add_argument("--w2s", type=int, default=3, help="section slice: W2S images")
    p.add_argument("--stack-slices", type=int, default=32)
    p.add_argument("--stack-size", type=int, default=512)
    p.add_argument("--stack-configs", nargs="+", type=preset_arg, default=["fast", "balanced"])
    p.add_argument("--large", type=int, default=2048, help="section large: the slice's size")
    p.add_argument("--large-configs", nargs="+", type=preset_arg, default=["fast", "balanced"])
    p.add_argument("--batch-slices", type=int, nargs="+", default=[2, 16], help="section batch: volume depths")
    p.add_argument("--batch-size", type=int, default=1024, help="sections batch, allocator: the slices' size")
    p.add_argument("--batch-config", type=preset_arg, default="fast",
                   help="sections batch, allocator, widget (the widget: a preset name)")
    p.add_argument("--allocator-slices", type=int, default=4)
    p.add_argument("--widget-slices", type=int, nargs="+", default=[2, 4])
    p.add_argument("--widget-size", type=int, default=2048)
    p.add_argument("--widget-depth", type=int, default=200)
    p.add_argument("--widget-cluster", action="store_true", help="section widget: on a dask LocalCluster")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)


# -- child side: one measurement, its result printed as the last line of JSON ---------------------------
def _bm3d(noisy: np.ndarray) -> np.ndarray:
    return opponents.bm3d_estimated(np.asarray(noisy, np.float64), rgb=False)[0]


def _stack(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    from napari_scoredvi.io.synthetic import noisy_fluorescence_stack

    return noisy_fluorescence_stack(n, (size, size), seed=11, photons=40.0)


def _slice(spec: dict) -> dict:
    from napari_scoredvi import denoise

    rows = []
    for item in sets.w2s(Path(spec["data"]), spec["w2s"]):
        t0 = time.perf_counter()
        if spec["method"] == "bm3d":
            out = _bm3d(item.noisy)
        else:
            out = denoise(item.noisy, preset=preset_config(spec["method"]), device="cpu").denoised
        sec = time.perf_counter() - t0
        rows.append((sec, *measure.psnr_ssim(out, item.clean, 255.0, affine=True)))
    if not rows:
        raise SystemExit(f"no W2S images under {spec['data']}: check --data")
    seconds, psnr, ssim = (float(np.mean(col)) for col in zip(*rows))
    return {"seconds": seconds, "psnr": psnr, "ssim": ssim, "n": len(rows)}


def _stack_loop(spec: dict) -> dict:
    from napari_scoredvi.engine.settings import DenoiseSettings
    from napari_scoredvi.io.slice_grid import SliceGrid
    from napari_scoredvi.pipeline.slices import context_numbers, denoise_stack_steps

    noisy, clean = _stack(spec["slices"], spec["size"])
    grid = SliceGrid.leading(noisy.shape, 1)
    numbers = spec["numbers"]
    outs: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    if spec["method"] == "bm3d":
        for k in numbers:
            outs[k] = _bm3d(noisy[k])
    else:
        settings = DenoiseSettings(preset_config(spec["method"]), "cpu", warm_start=spec["warm"])
        for _ in denoise_stack_steps(lambda k: noisy[k], numbers, lambda k, r: outs.__setitem__(k, r.denoised),
                                     settings, posterior_std=False,  # with each slice's neighbours, as runs read them
                                     neighbours=lambda k: context_numbers(grid, k, settings.stack_context)):
            pass
    sec = (time.perf_counter() - t0) / len(numbers)
    peak = float(clean.max() - clean.min())
    return {"seconds": sec, "psnr_per_slice": {str(k): measure.psnr(outs[k], clean[k], peak) for k in numbers}}


def _large(spec: dict) -> dict:
    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.settings import DenoiseSettings

    image = _stack(1, spec["size"])[0][0]
    stage = {"now": "noise estimate, set-up"}
    peaks: dict[str, int] = {}
    running = True

    def sample() -> None:
        while running:
            peaks[stage["now"]] = max(peaks.get(stage["now"], 0), measure.rss_mb())
            time.sleep(0.02)

    def on_event(event) -> None:  # the stage is named by the unit of work: "prior pass" or "fit step"
        stage["now"] = "outputs" if event.step >= event.total else event.unit

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    finish(denoise_steps(image, DenoiseSettings(preset_config(spec["method"]), "cpu")), on_event)
    seconds = time.perf_counter() - t0
    running = False
    sampler.join()
    return {"seconds": seconds, "stage_rss_mb": peaks}


def _volume(spec: dict) -> dict:
    import zarr

    from napari_scoredvi.engine.settings import DenoiseSettings
    from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence
    from napari_scoredvi.pipeline.run import denoise_volume

    n, size = spec["slices"], spec["size"]
    with tempfile.TemporaryDirectory() as tmp:
        src = zarr.open_array(f"{tmp}/in.zarr", mode="w", shape=(n, size, size), chunks=(1, size, size),
                              dtype="uint16")
        clean = clean_fluorescence((size, size), seed=0)
        for z in range(n):  # written slice by slice: the whole volume is never in memory here either
            src[z] = add_camera_noise(np.roll(clean, 3 * z, axis=1), seed=z)
        before, faults = measure.peak_rss_mb(), measure.page_faults()
        t0 = time.perf_counter()
        denoise_volume(f"{tmp}/in.zarr", f"{tmp}/out.zarr", DenoiseSettings(preset_config(spec["method"]), "cpu"),
                       axes="ZYX")
        seconds = time.perf_counter() - t0
    return {"seconds": seconds / n, "rss_before_run_mb": before, "page_faults": measure.page_faults() - faults}


def _widget(spec: dict) -> dict:
    import dask.array as da
    import zarr
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_scoredvi._qt.denoise_widget import RUN_CLUSTER, RUN_HERE, SCOPE_RANGE, ScoreDVIWidget
    from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence

    n, size, depth = spec["slices"], spec["size"], spec["depth"]
    with tempfile.TemporaryDirectory() as tmp:
        src = zarr.open_array(f"{tmp}/in.zarr", mode="w", shape=(depth, size, size), chunks=(1, size, size),
                              dtype="uint16", fill_value=100)
        clean = clean_fluorescence((size, size), seed=0)
        for z in range(n):  # only the slices to denoise are written
            src[z] = add_camera_noise(np.roll(clean, 3 * z, axis=1), seed=z)
        viewer = napari.Viewer(show=False)
        layer = viewer.add_image(da.from_zarr(zarr.open_array(f"{tmp}/in.zarr", mode="r")), name="volume",
                                 contrast_limits=(0, 4000))
        w = ScoreDVIWidget(viewer)
        w._preset_box.value, w._device_box.value, w._run_on_box.value = spec["method"], "cpu", RUN_HERE
        cluster = None
        if spec["cluster"]:
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None)
            w._run_on_box.value, w._scheduler_box.value = RUN_CLUSTER, cluster.scheduler_address
        w._layer_box.value = layer
        w._scope_box.value = SCOPE_RANGE
        w._first_box.value, w._last_box.value = 0, n - 1
        w._output_box.value = f"{tmp}/out.zarr"
        app = QApplication.instance()
        for _ in range(20):
            app.processEvents()
        before = measure.peak_rss_mb()
        t0 = time.perf_counter()
        w.run()
        while w.worker is not None:
            app.processEvents()
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        done = int(sum(zarr.open_array(f"{tmp}/out.zarr/done", mode="r")[:n].tolist()))
        viewer.close()
        if cluster is not None:
            cluster.close()
    if done != n:
        raise SystemExit(f"the widget finished {done} of {n} slices")
    return {"seconds": seconds / n, "rss_before_run_mb": before}


CHILDREN = {"slice": _slice, "stack": _stack_loop, "large": _large, "volume": _volume, "widget": _widget}


def child(spec: dict) -> dict:
    """Run one measurement in this (fresh) process; its result with this process's peak RSS."""
    import torch

    torch.set_num_threads(spec["threads"])
    return {**CHILDREN[spec["kind"]](spec), "peak_rss_mb": measure.peak_rss_mb()}


# -- parent side ---------------------------------------------------------------------------------------
def run_child(spec: dict) -> dict:
    """:func:`child` in a fresh ``python -m benchmarks speed --child`` process (its own threads' and
    allocator's environment); SystemExit with its error output when it fails."""
    threads = str(spec["threads"])
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if spec.get("allocator") == "default":
        env["NAPARI_SCOREDVI_ALLOCATOR"] = "default"
    out = subprocess.run([sys.executable, "-m", "benchmarks", "speed", "--child", json.dumps(spec)], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def slice_section(args: argparse.Namespace, base: dict) -> dict:
    """Section ``slice``: seconds, ratio to BM3D, PSNR/SSIM and peak RSS per configuration."""
    print(f"\n512x512 W2S raw frames ({args.w2s} images), seconds per slice; ratio = seconds / BM3D's")
    print(f"{'configuration':30s} {'s/slice':>8s} {'ratio':>6s} {'PSNR':>6s} {'SSIM':>6s} {'peak RSS MB':>11s}")
    rows = {}
    for name, method in ((BM3D, "bm3d"), *((c, c) for c in args.configs)):
        r = rows[name] = run_child(dict(base, kind="slice", method=method, w2s=args.w2s))
        r["ratio_to_bm3d"] = r["seconds"] / rows[BM3D]["seconds"]
        print(f"{name:30s} {r['seconds']:8.2f} {r['ratio_to_bm3d']:6.2f} {r['psnr']:6.2f} {r['ssim']:6.3f} "
              f"{r['peak_rss_mb']:11.0f}", flush=True)
    return rows


def stack_section(args: argparse.Namespace, base: dict) -> dict:
    """Section ``stack``: the stack loop's seconds per slice against BM3D's, PSNR on every 8th slice;
    for the variational preset also the warm-started loop against fitting those slices alone."""
    n = args.stack_slices
    every = list(range(0, n, EVERY))
    print(f"\nsynthetic {n}x{args.stack_size}x{args.stack_size} stack, no posterior std: seconds per slice of the "
          f"stack loop; PSNR on slices {every}; variational: also each of those slices fitted alone")
    print(f"{'configuration':30s} {'s/slice':>8s} {'ratio':>6s} {'PSNR':>6s} {'peak RSS MB':>11s} "
          f"{'s alone':>8s} {'PSNR alone':>10s} {'dPSNR':>6s}")
    stack = dict(base, kind="stack", slices=n, size=args.stack_size)
    ref = run_child(dict(stack, method="bm3d", numbers=every, warm=False))

    def line(name: str, r: dict) -> str:
        r["psnr"] = float(np.mean([r["psnr_per_slice"][str(k)] for k in every]))
        r["ratio_to_bm3d"] = r["seconds"] / ref["seconds"]
        return f"{name:30s} {r['seconds']:8.2f} {r['ratio_to_bm3d']:6.2f} {r['psnr']:6.2f} {r['peak_rss_mb']:11.0f}"

    print(line(BM3D, ref), flush=True)
    rows = {BM3D: ref}
    for name in args.stack_configs:
        r = rows[name] = run_child(dict(stack, method=name, numbers=list(range(n)), warm=True))
        text = line(name, r)
        if preset_config(name).kind == "variational":
            alone = run_child(dict(stack, method=name, numbers=every, warm=False))
            psnr_alone = float(np.mean(list(alone["psnr_per_slice"].values())))
            r.update(seconds_alone=alone["seconds"], psnr_alone=psnr_alone)
            text += f" {alone['seconds']:8.2f} {psnr_alone:10.2f} {r['psnr'] - psnr_alone:6.2f}"
        print(text, flush=True)
    return rows


def large_section(args: argparse.Namespace, base: dict) -> dict:
    """Section ``large``: seconds, the highest RSS by stage and the peak of one large slice."""
    print(f"\none {args.large}x{args.large} synthetic slice: seconds, peak RSS; highest RSS (MB) by stage: noise "
          "estimate and set-up, the prior passes or fit steps, the outputs")
    rows = {}
    for cfg in args.large_configs:
        r = rows[cfg] = run_child(dict(base, kind="large", method=cfg, size=args.large))
        stages = ", ".join(f"{k} {v}" for k, v in r["stage_rss_mb"].items())
        print(f"{cfg:30s} {r['seconds']:8.1f} s  peak RSS {r['peak_rss_mb']:.0f} MB ({stages})", flush=True)
    return rows


def _volumes(args: argparse.Namespace, base: dict, depths: list[int], allocators: dict[str, str]) -> dict:
    """The batch pipeline on each depth with each allocator setting: a table and its rows."""
    print(f"{'slices':>6s} {'allocator':>18s} {'peak RSS MB':>12s} {'s/slice':>8s} {'page faults':>12s}")
    rows = {}
    for n in depths:
        for label, allocator in allocators.items():
            r = rows[f"{n} slices, {label}"] = run_child(dict(base, kind="volume", method=args.batch_config,
                                                              slices=n, size=args.batch_size, allocator=allocator))
            print(f"{n:6d} {label:>18s} {r['peak_rss_mb']:12.0f} {r['seconds']:8.1f} {r['page_faults']:12d}",
                  flush=True)
    return rows


def widget_section(args: argparse.Namespace, base: dict) -> dict:
    """Section ``widget``: the napari process's RSS before and peak while the widget denoises N slices."""
    where = "on a dask LocalCluster (1 worker process)" if args.widget_cluster else "in the napari process"
    print(f"\nnapari widget, {args.widget_depth} x {args.widget_size} x {args.widget_size} uint16 Zarr layer, "
          f"{args.batch_config}, {where}")
    print(f"{'slices':>6s} {'RSS before MB':>14s} {'peak RSS MB':>12s} {'s/slice':>8s}")
    rows = {}
    for n in args.widget_slices:
        r = rows[f"{n} slices"] = run_child(dict(base, kind="widget", method=args.batch_config, slices=n,
                                                 size=args.widget_size, depth=args.widget_depth,
                                                 cluster=args.widget_cluster))
        print(f"{n:6d} {r['rss_before_run_mb']:14.0f} {r['peak_rss_mb']:12.0f} {r['seconds']:8.1f}", flush=True)
    return rows


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks speed``: writes ``speed.json`` and ``speed.log``."""
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    base = {"threads": args.threads, "data": str(args.data)}
    with Report("speed", args.results, "speed benchmark, device cpu", args.threads) as report:
        sections = report.data["sections"] = {}
        if "slice" in args.sections:
            sections["slice"] = slice_section(args, base)
        if "stack" in args.sections:
            sections["stack"] = stack_section(args, base)
        if "large" in args.sections:
            sections["large"] = large_section(args, base)
        if "batch" in args.sections:
            print(f"\nbatch pipeline, {args.batch_size}x{args.batch_size} uint16 Zarr volumes, {args.batch_config}")
            sections["batch"] = _volumes(args, base, args.batch_slices, {"as shipped": "tuned"})
        if "allocator" in args.sections:
            print(f"\nallocator settings: the batch pipeline on {args.allocator_slices} slices of "
                  f"{args.batch_size}x{args.batch_size}, {args.batch_config}")
            sections["allocator"] = _volumes(args, base, [args.allocator_slices], ALLOCATORS)
        if "widget" in args.sections:
            sections["widget"] = widget_section(args, base)
