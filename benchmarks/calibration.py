"""``calibration``: photon-transfer calibration on synthetic camera frames with a known gain: measured vs known.

Two clean scenes in photoelectrons: ``wedge`` (``io.synthetic.step_wedge``: flat squares at 16 levels,
5-400 e-, on a 2 e- background: what the calibration is meant for) and ``fluorescence``
(``io.synthetic.clean_fluorescence`` scaled to 300 e- at its brightest pixel: blobs and filaments, few
flat regions). Each goes through ``io.synthetic.camera_frame`` (Poisson, read noise 2 e-, times the gain,
offset 100 ADU, uint16) and :func:`napari_scoredvi.calibration.photon_transfer.calibrate` with the offset given.
Prints measured / known gain and measured / known read noise per gain and seed, and the summary;
then the same for the 5 slices of the napari sample stack (``io.synthetic.noisy_fluorescence_stack``:
gain 1 ADU/e-, read noise 3 e-, offset 100 ADU, 256 x 256, at most 60 e-).

``--plots DIR`` also writes ``calibration-sample.png``: the plot of slice 2 of the sample stack
(what the napari widget and ``napari-scoredvi calibrate --plot`` draw).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .common import Report

GAINS = (0.5, 2.0, 5.0)  # ADU per photoelectron
READ_NOISE_E = 2.0
OFFSET = 100.0  # ADU
SCENES = ("wedge", "fluorescence")
SAMPLE_GAIN, SAMPLE_READ_NOISE_E, SAMPLE_SLICES = 1.0, 3.0, 5  # the napari sample stack


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks calibration``."""
    p.add_argument("--size", type=int, default=256, help="frame size (pixels a side)")
    p.add_argument("--seeds", type=int, default=8, help="frames per scene and gain")
    p.add_argument("--plots", metavar="DIR", type=Path, help="also write calibration-sample.png here")


def scene(name: str, size: int, seed: int) -> np.ndarray:
    """A clean scene of :data:`SCENES` in photoelectrons."""
    from napari_scoredvi.io.synthetic import clean_fluorescence, step_wedge

    if name == "wedge":
        return step_wedge((size, size), seed=seed)
    return 300.0 * clean_fluorescence((size, size), seed=seed).astype(np.float64)


def scene_rows(name: str, size: int, seeds: int) -> dict:
    """Calibrate every (gain, seed) frame of one scene; print the rows and the summary, return them."""
    from napari_scoredvi.calibration.photon_transfer import calibrate
    from napari_scoredvi.io.synthetic import camera_frame

    ratios, rn_ratios, secs, ses = [], [], [], []
    for gain in GAINS:
        for seed in range(seeds):
            img = camera_frame(scene(name, size, seed), gain, READ_NOISE_E, OFFSET, seed)
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
    summary = {"gain_ratio_mean": float(g.mean()), "gain_ratio_min": float(g.min()), "gain_ratio_max": float(g.max()),
               "gain_worst_error": float(np.abs(g - 1).max()), "read_noise_ratio_median": float(np.nanmedian(rn)),
               "read_noise_ratio_min": float(np.nanmin(rn)), "read_noise_ratio_max": float(np.nanmax(rn)),
               "read_noise_not_computable": int(np.isnan(rn).sum()), "seconds_median": float(np.median(secs)),
               "gain_ratio_std_over_seeds": float(np.mean(g.std(axis=1, ddof=1))) if seeds > 1 else float("nan"),
               "gain_se_jackknife": float(np.mean(ses))}
    print(f"  gain ratio: mean {g.mean():.3f}, min {g.min():.3f}, max {g.max():.3f}, worst |error| "
          f"{np.abs(g - 1).max():.1%}; read-noise ratio: median {np.nanmedian(rn):.2f}, "
          f"min {np.nanmin(rn):.2f}, max {np.nanmax(rn):.2f}, not computable {int(np.isnan(rn).sum())}; "
          f"median {np.median(secs):.2f} s per frame")
    print(f"  error bars: std of the gain ratio over seeds {summary['gain_ratio_std_over_seeds']:.3f}, mean "
          f"jackknife s.e. {np.mean(ses):.3f} (of the gain)")
    return {"gain_ratio": g.tolist(), "read_noise_ratio": rn.tolist(), "summary": summary}


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks calibration``: writes ``calibration.json`` and ``calibration.log``."""
    from napari_scoredvi.calibration.photon_transfer import calibrate
    from napari_scoredvi.io.synthetic import noisy_fluorescence_stack

    with Report("calibration", args.results, "calibration benchmark", 1) as report:
        print(f"{args.size}x{args.size} frames, read noise {READ_NOISE_E:g} e-, offset {OFFSET:g} ADU (given); "
              f"seeds 0-{args.seeds - 1}")
        report.data["scenes"] = {name: scene_rows(name, args.size, args.seeds) for name in SCENES}
        stack, _ = noisy_fluorescence_stack(SAMPLE_SLICES, (256, 256), seed=0)
        res = [calibrate(plane, offset=OFFSET, gain_known=SAMPLE_GAIN) for plane in stack]
        print(f"\nnapari sample stack (gain {SAMPLE_GAIN:g} ADU/e-, read noise {SAMPLE_READ_NOISE_E:g} e-, offset "
              f"{OFFSET:g} ADU), slices 0-{SAMPLE_SLICES - 1}")
        print("  gain measured/known " + " ".join(f"{r.gain_ratio:.3f}" for r in res))
        print("  read noise measured/known " + " ".join(f"{r.read_noise_e / SAMPLE_READ_NOISE_E:.2f}" for r in res))
        report.data["sample_stack"] = {"gain_ratio": [r.gain_ratio for r in res],
                                       "read_noise_ratio": [r.read_noise_e / SAMPLE_READ_NOISE_E for r in res]}
        if args.plots:
            from napari_scoredvi.calibration.plot import save_plot

            out = save_plot(res[2], args.plots / "calibration-sample.png",
                            "napari sample stack, slice 2 (gain 1, read noise 3 e-, offset 100)")
            print(f"wrote {out}")
