"""Seconds per step, and per 500-step fit, of the ``variational`` preset against the reference
configuration's network sizes, on 256 x 256 and 512 x 512 slices, in one run (one thread).

    python benchmarks/variational_cost.py --sizes 256 512 --steps 5
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch


def seconds_per_step(cfg, size: int, steps: int) -> float:
    from napari_scoredvi.engine.priors import load_priors
    from napari_scoredvi.engine.variational import fit_cold

    y = torch.rand(1, size, size, generator=torch.Generator().manual_seed(0))
    cfg = dataclasses.replace(cfg, iterations=steps + 1)
    gen = fit_cold(y, cfg, load_priors("cpu"), 1.0, 0.01, 0, 0, steps + 1)
    next(gen)  # the first step allocates
    t0 = time.perf_counter()
    for _ in range(steps):
        next(gen)
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="*", type=int, default=[256, 512])
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from napari_scoredvi.engine.presets import get_preset

    ours = get_preset("variational")
    # the reference's image U-Net (4 levels x 64, batch norm) and its three 5 x 32 CNNs as one trunk
    reference = dataclasses.replace(ours, unet_levels=4, unet_base=64, aux_depth=5, aux_width=96)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, 1 thread; seconds per step (x 500 steps)")
    for size in args.sizes:
        a, b = seconds_per_step(ours, size, args.steps), seconds_per_step(reference, size, args.steps)
        print(f"{size} x {size}: variational {a:.3f} s/step ({500 * a:.0f} s), reference sizes {b:.3f} s/step "
              f"({500 * b:.0f} s), ratio {a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
