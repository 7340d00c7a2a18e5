"""Peak memory of the batch pipeline against the number of slices (it must stay flat).

Writes a synthetic N x H x W uint16 Zarr for each N, runs ``denoise_volume`` on it in a fresh
process, and prints the peak resident set size of that process (Linux ``ru_maxrss``). With
``--allocator tuned default`` each size also runs with the allocator settings of
``napari_scoredvi.engine.host_memory`` turned off (``NAPARI_SCOREDVI_ALLOCATOR=default``), for comparison.

    python benchmarks/batch_memory.py --slices 2 6 --size 1024 --preset fast
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
import numpy as np, zarr, torch
from measure import peak_rss_mb
from napari_scoredvi.pipeline.run import denoise_volume
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io.synthetic import add_camera_noise, clean_fluorescence
n, size, preset, threads, tmp = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
src = zarr.open_array(f"{tmp}/in.zarr", mode="w", shape=(n, size, size), chunks=(1, size, size), dtype="uint16")
clean = clean_fluorescence((size, size), seed=0)
for z in range(n):  # written slice by slice: the whole volume is never in memory here either
    src[z] = add_camera_noise(np.roll(clean, 3 * z, axis=1), seed=z)
base = peak_rss_mb()
t0 = time.perf_counter()
denoise_volume(f"{tmp}/in.zarr", f"{tmp}/out.zarr", DenoiseSettings(preset, "cpu"), axes="ZYX")
print(json.dumps({"slices": n, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
                  "rss_before_run_mb": base}))
"""
HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, nargs="+", default=[2, 6])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--preset", default="fast")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--allocator", nargs="+", choices=["tuned", "default"], default=["tuned"],
                   help="tuned: the package's allocator settings (what users get); default: glibc's and torch's")
    args = p.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: {args.size}x{args.size} uint16 slices, preset {args.preset}, CPU")
    print(f"{'slices':>6s} {'allocator':>9s} {'peak RSS MB':>12s} {'s/slice':>8s}")
    for n in args.slices:
        for allocator in args.allocator:
            env = {**os.environ, "NAPARI_SCOREDVI_ALLOCATOR": allocator}
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, "-c", CHILD, HERE, str(n), str(args.size), args.preset,
                                      str(args.threads), tmp], capture_output=True, text=True, check=True, env=env)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{n:6d} {allocator:>9s} {r['peak_rss_mb']:12.0f} {r['seconds'] / n:8.1f}", flush=True)


if __name__ == "__main__":
    main()
