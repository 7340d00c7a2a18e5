"""Photon-transfer calibration on synthetic camera frames with a known gain: measured vs known.

Each frame: the clean synthetic fluorescence image of ``samples.clean_fluorescence`` (blobs and
filaments on a dim background) scaled to ``PHOTONS`` photoelectrons at its brightest pixel, Poisson
noise, times the gain, plus Gaussian read noise and a camera offset, rounded to uint16; then
:func:`napari_scoredvi.calibration.calibrate` with the offset given. Prints measured gain / known
gain and measured / known read noise for every gain and seed, and the worst case.

    python benchmarks/calibration.py [--size 256] [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_scoredvi.calibration import calibrate
from napari_scoredvi.samples import clean_fluorescence

GAINS = (0.5, 2.0, 5.0)  # ADU per photoelectron
PHOTONS = 300.0  # photoelectrons at the brightest clean pixel
READ_NOISE_E = 2.0  # electrons
OFFSET = 100.0  # ADU


def camera_frame(size: int, gain: float, seed: int, photons: float = PHOTONS, read_noise_e: float = READ_NOISE_E,
                 offset: float = OFFSET) -> np.ndarray:
    """A Poisson-Gaussian uint16 frame (size, size) in ADU with a known gain, read noise and offset."""
    rng = np.random.default_rng(1000 + seed)
    electrons = rng.poisson(clean_fluorescence((size, size), seed=seed) * photons).astype(np.float64)
    adu = gain * (electrons + rng.normal(0.0, read_noise_e, electrons.shape)) + offset
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    print(f"{args.size}x{args.size} frames, {PHOTONS:g} e- at the brightest pixel, read noise {READ_NOISE_E:g} e-, "
          f"offset {OFFSET:g} ADU (given)")
    print("gain  seed  measured  ratio   +-se   read noise e-  ratio   seconds")
    ratios, rn_ratios = [], []
    for gain in GAINS:
        for seed in range(args.seeds):
            img = camera_frame(args.size, gain, seed)
            t0 = time.perf_counter()
            r = calibrate(img, offset=OFFSET, gain_known=gain)
            dt = time.perf_counter() - t0
            rn = r.read_noise_e if r.read_noise_e is not None else float("nan")
            ratios.append(r.gain_ratio)
            rn_ratios.append(rn / READ_NOISE_E)
            print(f"{gain:4g}  {seed:4d}  {r.gain:8.4f}  {r.gain_ratio:5.3f}  {r.gain_se / gain:5.3f}  "
                  f"{rn:13.3f}  {rn / READ_NOISE_E:5.3f}  {dt:7.2f}")
    ratios, rn_ratios = np.array(ratios), np.array(rn_ratios)
    print(f"gain ratio: min {ratios.min():.3f}, max {ratios.max():.3f}, worst |error| "
          f"{np.abs(ratios - 1).max():.1%}")
    print(f"read-noise ratio: min {np.nanmin(rn_ratios):.3f}, max {np.nanmax(rn_ratios):.3f}")


if __name__ == "__main__":
    main()
