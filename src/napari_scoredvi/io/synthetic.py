"""Synthetic fluorescence images with known ground truth, generated offline.

Used by the demo command, the tests and the napari sample-data entry. Clean images hold Gaussian
blobs (vesicles, nuclei) and smooth filaments (cytoskeleton) on a dim background; the noisy version
is Poisson (shot noise, ``photons`` at the brightest clean pixel) plus Gaussian read noise
(``read_noise`` in camera counts, i.e. ADU at gain 1), plus a camera ``offset``, stored as uint16.
"""

from __future__ import annotations

import numpy as np


def clean_fluorescence(shape: tuple[int, int] = (256, 256), seed: int = 0, n_blobs: int = 40,
                       n_filaments: int = 12) -> np.ndarray:
    """Clean image in [0, 1], float32, shape ``shape`` (H, W)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full(shape, 0.05, np.float32)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(1.5, 0.04 * min(h, w) + 2)
        img += rng.uniform(0.2, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    for _ in range(n_filaments):
        # a random smooth curve, drawn as a sum of small Gaussian dots along it
        p = np.array([rng.uniform(0, h), rng.uniform(0, w)])
        angle = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.2, 0.6)
        for _ in range(int(0.6 * max(h, w))):
            angle += rng.normal(0, 0.08)
            p = p + np.array([np.sin(angle), np.cos(angle)])
            if not (0 <= p[0] < h and 0 <= p[1] < w):
                break
            r0, c0 = int(p[0]), int(p[1])
            sl = (slice(max(r0 - 3, 0), r0 + 4), slice(max(c0 - 3, 0), c0 + 4))
            img[sl] += amp * 0.5 * np.exp(-((yy[sl] - p[0]) ** 2 + (xx[sl] - p[1]) ** 2) / (2 * 0.8**2))
    return (img / img.max()).astype(np.float32)


def add_camera_noise(clean: np.ndarray, photons: float = 60.0, read_noise: float = 3.0, offset: int = 100,
                     seed: int = 0) -> np.ndarray:
    """Poisson-Gaussian noisy uint16 version of a clean image in [0, 1] (any shape)."""
    rng = np.random.default_rng(seed + 1)
    counts = rng.poisson(clean * photons).astype(np.float64)
    counts += rng.normal(0.0, read_noise, clean.shape) + offset
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)


def noisy_fluorescence(shape: tuple[int, int] = (256, 256), seed: int = 0, photons: float = 60.0,
                       read_noise: float = 3.0, offset: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint16, clean in the same units as float32): clean is ``photons * clean01 + offset``."""
    clean01 = clean_fluorescence(shape, seed)
    noisy = add_camera_noise(clean01, photons, read_noise, offset, seed)
    return noisy, (clean01 * photons + offset).astype(np.float32)


def noisy_fluorescence_stack(n_slices: int = 5, shape: tuple[int, int] = (256, 256), seed: int = 0,
                             photons: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """A (Z, H, W) uint16 stack whose slices drift slowly, and its clean float32 version."""
    base = clean_fluorescence((shape[0] + 2 * n_slices, shape[1] + 2 * n_slices), seed)
    clean = np.stack([base[z : z + shape[0], z : z + shape[1]] for z in range(n_slices)])
    noisy = add_camera_noise(clean, photons, 3.0, 100, seed)
    return noisy, (clean * photons + 100).astype(np.float32)


def step_wedge(shape: tuple[int, int] = (256, 256), seed: int = 0, photons: float = 400.0,
               background: float = 2.0, steps: int = 4) -> np.ndarray:
    """Clean photon-transfer target in photoelectrons, float64 (H, W): ``steps x steps`` flat squares at
    geometrically spaced levels from 5 to ``photons`` (in random order) on a flat ``background``."""
    rng = np.random.default_rng(seed)
    img = np.full(shape, float(background))
    levels = rng.permutation(np.geomspace(5.0, photons, steps * steps))
    sh, sw = shape[0] // steps, shape[1] // steps
    for k, level in enumerate(levels):
        i, j = divmod(k, steps)
        img[i * sh + sh // 8 : (i + 1) * sh - sh // 8, j * sw + sw // 8 : (j + 1) * sw - sw // 8] = level
    return img


def camera_frame(electrons: np.ndarray, gain: float, read_noise_e: float = 2.0, offset: float = 100.0,
                 seed: int = 0) -> np.ndarray:
    """What a linear camera records for a clean image in photoelectrons: Poisson shot noise, Gaussian
    read noise (``read_noise_e`` electrons), times ``gain`` (ADU per electron), plus ``offset`` (ADU),
    rounded to uint16. Its noise variance is ``gain * (I - offset) + (gain * read_noise_e)**2`` (+1/12
    from the rounding)."""
    rng = np.random.default_rng(seed + 1000)
    e = rng.poisson(np.asarray(electrons, dtype=np.float64)).astype(np.float64)
    adu = gain * (e + rng.normal(0.0, read_noise_e, e.shape)) + offset
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16)
