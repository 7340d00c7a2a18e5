"""Peak memory of the napari process when the dock widget denoises slices of a large Zarr layer.

For each N in ``--slices``, a fresh process opens a real napari viewer (``napari.Viewer(show=False)``;
needs OpenGL: run under ``xvfb-run -a``, with ``QT_QPA_PLATFORM=offscreen`` where the X11 libraries
Qt's xcb platform wants are missing), adds a lazily read ``--depth`` x ``--size`` x ``--size``
uint16 Zarr volume as a dask layer (only the slices to denoise hold data; the rest is the fill
value, never written to disk), and runs the ScoreDVI widget on slices 0 .. N-1 (scope "range of
slices", outputs to an OME-Zarr store, shown as lazy layers). It prints the peak resident set size
of the napari process (Linux ``ru_maxrss``, the worker thread included) before and after the run,
and the seconds per slice. Memory flat in N means a whole-stack run peaks at the same level.
With ``--cluster`` the widget runs on a dask ``LocalCluster`` (one worker process, one thread),
started in the napari process and driven by its scheduler address, as a lab GPU machine would be;
the peak is then the napari process's alone (the worker's is not counted).

    QT_QPA_PLATFORM=offscreen xvfb-run -a python benchmarks/widget_memory.py --slices 2 4 --size 2048 --depth 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])  # the benchmarks folder
import numpy as np, zarr, dask.array as da, torch
from measure import peak_rss_mb
n, size, depth, preset, threads, tmp = (int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5],
                                        int(sys.argv[6]), sys.argv[7])
cluster = sys.argv[8] == "cluster"
torch.set_num_threads(threads)
import napari
from qtpy.QtWidgets import QApplication
from napari_scoredvi._qt.denoise_widget import RUN_CLUSTER, RUN_HERE, SCOPE_RANGE, ScoreDVIWidget
from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence

src = zarr.open_array(f"{tmp}/in.zarr", mode="w", shape=(depth, size, size), chunks=(1, size, size),
                      dtype="uint16", fill_value=100)
clean = clean_fluorescence((size, size), seed=0)
for z in range(n):  # only the slices to denoise are written
    src[z] = add_camera_noise(np.roll(clean, 3 * z, axis=1), seed=z)
viewer = napari.Viewer(show=False)
layer = viewer.add_image(da.from_zarr(zarr.open_array(f"{tmp}/in.zarr", mode="r")), name="volume",
                         contrast_limits=(0, 4000))
w = ScoreDVIWidget(viewer)
w._preset_box.value, w._device_box.value, w._run_on_box.value = preset, "cpu", RUN_HERE
if cluster:
    from distributed import LocalCluster
    lc = LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None)
    w._run_on_box.value, w._scheduler_box.value = RUN_CLUSTER, lc.scheduler_address
w._layer_box.value = layer
w._scope_box.value = SCOPE_RANGE
w._first_box.value, w._last_box.value = 0, n - 1
w._output_box.value = f"{tmp}/out.zarr"
app = QApplication.instance()
for _ in range(20):
    app.processEvents()
base = peak_rss_mb()
t0 = time.perf_counter()
w.run()
while w.worker is not None:
    app.processEvents()
    time.sleep(0.05)
seconds = time.perf_counter() - t0
peak = peak_rss_mb()
done = zarr.open_array(f"{tmp}/out.zarr/done", mode="r")[:n].tolist()
out = viewer.layers["denoised (volume)"].data
print(json.dumps({"slices": n, "seconds": seconds, "peak_rss_mb": peak, "rss_before_run_mb": base,
                  "done": sum(done), "output_layer": type(out).__module__ + "." + type(out).__name__,
                  "output_shape": list(out.shape)}))
viewer.close()
"""
HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, nargs="+", default=[1, 3])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--depth", type=int, default=200)
    p.add_argument("--preset", default="fast")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cluster", action="store_true", help="run on a dask LocalCluster through its address")
    args = p.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: napari widget, {args.depth} x {args.size} x {args.size} uint16 Zarr "
          f"layer, preset {args.preset}, CPU, {args.threads} torch threads"
          + (", on a dask LocalCluster (1 worker process)" if args.cluster else ", in the napari process"))
    print(f"{'slices':>6s} {'RSS before MB':>14s} {'peak RSS MB':>12s} {'s/slice':>8s}  output layer")
    for n in args.slices:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, HERE, str(n), str(args.size), str(args.depth),
                                  args.preset, str(args.threads), tmp, "cluster" if args.cluster else "here"],
                                 capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"run with {n} slice(s) failed:\n{out.stderr[-3000:]}")
        r = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
        assert r["done"] == n, r
        print(f"{n:6d} {r['rss_before_run_mb']:14.0f} {r['peak_rss_mb']:12.0f} {r['seconds'] / n:8.1f}  "
              f"{r['output_layer']} {tuple(r['output_shape'])}", flush=True)


if __name__ == "__main__":
    main()
