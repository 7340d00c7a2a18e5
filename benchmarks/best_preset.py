"""Candidates for the ``best`` preset on single images: PSNR (scored as in ``quality.py``), the drift
ratio the engine reports, and seconds.

The 150-step ``best`` of 2026-11-27 scored 0.20 dB below ``balanced`` on W2S (its fit drifted;
docs/engine.md "The best preset"). This compares what more compute could buy at ``balanced``'s
step count::

    python benchmarks/best_preset.py w2s 020_1,042_1,100_1
    python benchmarks/best_preset.py corr w2s020_1_g8_r4 balanced,A_bignets40,B_bal_s2c8
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

import quality
import sets
from napari_scoredvi import denoise
from napari_scoredvi.engine.presets import PRESETS

BALANCED = PRESETS["balanced"]
CANDIDATES = {
    "balanced": BALANCED,
    # the 2026-11-27 best's networks, crops and samples at balanced's 40 (15) steps
    "A_bignets40": dataclasses.replace(BALANCED, name="best", iterations=40, warm_iterations=15, crop=128,
                                       samples=2, unet_levels=4, unet_base=32, aux_depth=5, aux_width=32),
    # balanced with 8 crops x 2 samples per step (a quarter of the gradient's variance): today's best
    "B_bal_s2c8": dataclasses.replace(BALANCED, samples=2, crops=8),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("set", choices=("w2s", "corr", "pg"))
    p.add_argument("images", help="comma-separated image names (as quality.py prints them)")
    p.add_argument("candidates", nargs="?", default="A_bignets40,B_bal_s2c8",
                   help=f"comma-separated, from: {', '.join(CANDIDATES)}")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = args.images.split(",")
    items = sets.w2s() if args.set == "w2s" else sets.synthetic(args.set)
    for item in (i for i in items if i.name in names):
        score, _ = quality.scorer(args.set, item)
        for k in args.candidates.split(","):
            t = time.time()
            r = denoise(item.noisy, preset=CANDIDATES[k], device="cpu", seed=0)
            print(args.set, item.name, k, f"{score(r.denoised)[0]:.2f}", f"drift {r.info.drift_ratio:.2f}",
                  f"{time.time() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main()
