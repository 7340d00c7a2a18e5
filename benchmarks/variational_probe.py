"""One crop, several variants of a preset: PSNR and seconds per variant (a quick probe, one thread).

    python benchmarks/variational_probe.py 96 corr variational/independent variational/independent/norm=0
    python benchmarks/variational_probe.py 64 polyu variational/independent/iterations=1000

A variant is ``preset/prior set[/field=value...]`` (prior set: auto, independent, correlated; fields
of the Preset, or ``lam``). The crop is the centre ``SIZE`` x ``SIZE`` of the first image of the set
(corr, pg, polyu, cc, w2s); PSNR as in benchmarks/variational.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

import variational


def variant(spec: str):
    """(Preset, prior set, lam) from ``preset/priors/field=value/...``."""
    from napari_scoredvi.engine.presets import get_preset

    name, priors, *changes = spec.split("/")
    preset, lam = get_preset(name), None
    for change in changes:
        key, value = change.split("=")
        if key == "lam":
            lam = float(value)
            continue
        kind = type(getattr(preset, key))
        parsed = value not in ("0", "false") if kind is bool else kind(float(value))
        preset = dataclasses.replace(preset, **{key: parsed})
    return preset, priors, lam


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("size", type=int)
    p.add_argument("set", choices=["corr", "pg", "polyu", "cc", "w2s"])
    p.add_argument("variants", nargs="+")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    item, peak = variational.crops(args.set, args.size, 1)[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {args.set}/{item.name}, {args.size} x {args.size}: noisy "
          f"{variational.psnr(np.asarray(item.noisy, np.float64), item, peak, args.set):.2f} dB", flush=True)
    for spec in args.variants:
        out, seconds, extra = variational.ours(item, *variant(spec))
        print(f"  {spec:50s} {variational.psnr(out, item, peak, args.set):6.2f} dB {seconds:7.1f} s, "
              f"{extra['iterations']} steps, {extra['retries']} retries", flush=True)


if __name__ == "__main__":
    main()
