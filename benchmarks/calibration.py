"""Photon-transfer calibration on synthetic camera frames with a known gain: measured vs known.

Two clean scenes in photoelectrons: ``wedge`` (``io.synthetic.step_wedge``: flat squares at 16 levels,
5-400 e-, on a 2 e- background: what the calibration is meant for) and ``fluorescence``
(``io.synthetic.clean_fluorescence`` scaled to 300 e- at its brightest pixel: blobs and filaments, few
flat regions). Each goes through ``io.synthetic.camera_frame`` (Poisson, read noise 2 e-, times the gain,
offset 100 ADU, uint16) and :func:`napari_scoredvi.calibration.photon_transfer.calibrate` with the offset given.
Prints measured / known gain and measured / known read noise per gain and seed, and the summary;
then the same for the 5 slices of the napari sample stack (``io.synthetic.noisy_fluorescence_stack``:
gain 1 ADU/e-, read noise 3 e-, offset 100 ADU, 256 x 256, at most 60 e-).

    python benchmarks/calibration.py [--size 256] [--seeds 8] [--plots docs/images]

``--plots DIR`` also writes ``calibration-sample.png``: the plot of slice 2 of the sample stack
(what the napari widget and ``napari-scoredvi calibrate --plot`` draw).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_scoredvi.calibration.photon_transfer import calibrate
from napari_scoredvi.io.synthetic import camera_frame, clean_fluorescence, noisy_fluorescence_stack, step_wedge

GAINS = (0.5, 2.0, 5.0)  # ADU per photoelectron
READ_NOISE_E = 2.0
OFFSET = 100.0  # ADU
SCENES = {
    "wedge": lambda size, seed: step_wedge((size, size), seed=seed),
    "fluorescence": lambda size, seed: 300.0 * clean_fluorescence((size, size), seed=seed).astype(np.float64),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--plots", metavar="DIR", help="write calibration-sample.png here")
    args = p.parse_args()
    print(f"{args.size}x{args.size} frames, read noise {READ_NOISE_E:g} e-, offset {OFFSET:g} ADU (given); "
          f"seeds 0-{args.seeds - 1}")
    for name, scene in SCENES.items():
        ratios, rn_ratios, secs, ses = [], [], [], []
        for gain in GAINS:
            for seed in range(args.seeds):
                img = camera_frame(scene(args.size, seed), gain, READ_NOISE_E, OFFSET, seed)
                t0 = time.perf_counter()
                r = calibrate(img, offset=OFFSET, gain_known=gain)
                secs.append(time.perf_counter() - t0)
                ratios.append(r.gain_ratio)
                ses.append(r.gain_se / gain)
                rn_ratios.append((r.read_noise_e if r.read_noise_e is not None else np.nan) / READ_NOISE_E)
        g = np.array(ratios).reshape(len(GAINS), -1)
        rn = np.array(rn_ratios).reshape(len(GAINS), -1)
        print(f"\nscene {name}")
        for k, gain in enumerate(GAINS):
            print(f"  gain {gain:g} ADU/e-: measured/known " + " ".join(f"{v:.3f}" for v in g[k]))
            print(f"  {'':14} read noise measured/known " + " ".join(f"{v:.2f}" for v in rn[k]))
        print(f"  gain ratio: mean {g.mean():.3f}, min {g.min():.3f}, max {g.max():.3f}, worst |error| "
              f"{np.abs(g - 1).max():.1%}; read-noise ratio: median {np.nanmedian(rn):.2f}, "
              f"min {np.nanmin(rn):.2f}, max {np.nanmax(rn):.2f}, not computable {int(np.isnan(rn).sum())}; "
              f"median {np.median(secs):.2f} s per frame")
        print(f"  error bars: std of the gain ratio over seeds {np.mean(g.std(axis=1, ddof=1)):.3f}, mean "
              f"jackknife s.e. {np.mean(ses):.3f} (of the gain)")
    stack, _ = noisy_fluorescence_stack(5, (256, 256), seed=0)
    res = [calibrate(plane, offset=100.0, gain_known=1.0) for plane in stack]
    print("\nnapari sample stack (gain 1 ADU/e-, read noise 3 e-, offset 100 ADU), slices 0-4")
    print("  gain measured/known " + " ".join(f"{r.gain_ratio:.3f}" for r in res))
    print("  read noise measured/known " + " ".join(f"{r.read_noise_e / 3.0:.2f}" for r in res))
    if args.plots:
        from pathlib import Path

        from napari_scoredvi.calibration.plot import save_plot

        out = save_plot(calibrate(stack[2], offset=100.0, gain_known=1.0), Path(args.plots) / "calibration-sample.png",
                        "napari sample stack, slice 2 (gain 1, read noise 3 e-, offset 100)")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
