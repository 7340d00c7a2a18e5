"""The benchmark image sets, shared by the subcommands of ``python -m benchmarks``.

Real pairs (W2S, PolyU, CC) are read from ``../shared/datasets``; the synthetic sets are made here
from clean images (W2S 400-frame averages and BSD68) with a fixed seed, so every run scores the
same images:

* ``pg``: Poisson-Gaussian camera noise, uint16, at three gains x two read-noise levels, with a
  camera offset; independent pixels.
* ``corr``: the same noise made spatially correlated (lag-1 correlation 0.6 in x and in y), as some
  widefield cameras deliver it; the per-pixel variance is unchanged.
* ``set12``: the Set12 photographs with white Gaussian noise of a given std (8-bit units).

Every item carries its clean image and, for the synthetic sets, the true per-pixel noise variance
(all in the noisy image's units: ADU for the synthetic sets, 8-bit units for the real ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: the datasets folder, ``../shared/datasets`` beside the repository (its README says what each set is)
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OFFSET = 100.0  # camera offset (ADU) of the synthetic sets
#: (gain ADU/e-, photoelectrons at the brightest clean pixel): low light goes with high gain
GAINS = ((8.0, 20.0), (2.0, 60.0), (0.5, 200.0))
READ_NOISE_E = (1.5, 4.0)  # read noise, electrons
CORR_TAP = 0.392  # [a, 1, a] filter: lag-1 correlation 2a / (1 + 2a^2) = 0.60
CROP = 256


@dataclass
class Item:
    """One benchmark image: ``noisy`` as the user has it, ``clean`` in the same units."""

    name: str
    noisy: np.ndarray
    clean: np.ndarray
    rgb: bool = False
    #: true per-pixel noise variance (noisy units squared), synthetic sets only
    variance: np.ndarray | None = None
    params: dict = field(default_factory=dict)


def affine_fit(out: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``a * out + b`` fitted to ``gt`` by least squares (how W2S outputs are scored: each W2S file was
    stretched to 8 bit on its own)."""
    a = np.stack([out.ravel(), np.ones(out.size)], axis=1)
    return (a @ np.linalg.lstsq(a, gt.ravel(), rcond=None)[0]).reshape(gt.shape)


def centre(im: np.ndarray, size: int = CROP) -> np.ndarray:
    """The centre ``size`` x ``size`` crop of an (H, W) or (H, W, C) image."""
    h, w = im.shape[:2]
    r, c = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return im[r : r + size, c : c + size]


def w2s(data: Path = DATA, limit: int | None = None) -> list[Item]:
    """The 10 W2S pairs (one raw frame, 400-frame average), 512x512, 8-bit units as float64."""
    import tifffile

    items = []
    for f in sorted((data / "w2s" / "noisy_avg1").glob("*.tif"))[:limit]:
        gt = data / "w2s" / "gt_avg400" / f.name.replace("input_avg1", "target_avg400")
        items.append(Item(f.stem.replace("input_avg1_", ""), tifffile.imread(f).astype(np.float64),
                          tifffile.imread(gt).astype(np.float64)))
    return items


def _rgb_pairs(folder: Path, noisy_tag: str, clean_tag: str, limit: int | None, every: int) -> list[Item]:
    import imageio.v3 as iio

    items = []
    for f in sorted(folder.glob(f"*{noisy_tag}*"))[::every][:limit]:
        clean = folder / f.name.replace(noisy_tag, clean_tag)
        items.append(Item(f.stem, centre(iio.imread(f)[..., :3].astype(np.float64)),
                          centre(iio.imread(clean)[..., :3].astype(np.float64)), rgb=True))
    return items


def polyu(data: Path = DATA, limit: int | None = 8, every: int = 12) -> list[Item]:
    """PolyU real camera sRGB pairs, centre 256x256 crops of every ``every``-th pair, 8-bit units."""
    return _rgb_pairs(data / "polyu", "real", "mean", limit, every)


def cc(data: Path = DATA, limit: int | None = None) -> list[Item]:
    """The 15 CC real camera sRGB pairs, centre 256x256 crops, 8-bit units."""
    return _rgb_pairs(data / "cc", "real", "mean", limit, 1)


def clean_images(data: Path = DATA, per_source: int = 3) -> list[tuple[str, np.ndarray]]:
    """Clean images in [0, 1]: ``per_source`` W2S 400-frame averages and BSD68 photographs, centre
    256x256 crops (BSD68 at a fixed stride through the set)."""
    import imageio.v3 as iio
    import tifffile

    out = []
    for f in sorted((data / "w2s" / "gt_avg400").glob("*.tif"))[::3][:per_source]:
        out.append((f.stem.replace("target_avg400_", "w2s"), centre(tifffile.imread(f).astype(np.float64)) / 255))
    for f in sorted((data / "bsd" / "Set68").glob("*.png"))[::17][:per_source]:
        out.append((f"bsd{f.stem}", centre(iio.imread(f).astype(np.float64)) / 255))
    return out


def _correlate(noise: np.ndarray, a: float = CORR_TAP) -> np.ndarray:
    """Filter (H, W) noise by the separable unit-energy kernel [a, 1, a]: each pixel keeps its variance."""
    k = np.array([a, 1.0, a]) / np.sqrt(1 + 2 * a * a)
    p = np.pad(noise, 1, mode="reflect")
    p = k[0] * p[:, :-2] + k[1] * p[:, 1:-1] + k[2] * p[:, 2:]
    return k[0] * p[:-2] + k[1] * p[1:-1] + k[2] * p[2:]


def camera_noise(clean01: np.ndarray, gain: float, photons: float, read_e: float, correlated: bool,
                 seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy uint16, clean ADU, true variance ADU^2) for a clean image in [0, 1].

    ``noisy = gain * Poisson(photons * clean01) + N(0, (gain * read_e)^2) + OFFSET``, rounded; with
    ``correlated`` the zero-mean noise is filtered so its lag-1 correlation is 0.6 (variance kept).
    """
    rng = np.random.default_rng(seed)
    electrons = photons * clean01
    clean = gain * electrons + OFFSET
    shot = gain * (rng.poisson(electrons) - electrons)
    noise = shot + rng.normal(0.0, gain * read_e, clean01.shape)
    if correlated:
        noise = _correlate(noise)
    noisy = np.clip(np.round(clean + noise), 0, 65535).astype(np.uint16)
    variance = gain * gain * electrons + (gain * read_e) ** 2 + 1 / 12  # + rounding
    return noisy, clean, variance


def synthetic(kind: str = "pg", data: Path = DATA, per_source: int = 3, conditions: int | None = None) -> list[Item]:
    """The synthetic Poisson-Gaussian set (``kind="pg"``) or its correlated twin (``"corr"``):
    every clean image at every (gain, read noise) condition (the first ``conditions`` of them)."""
    items = []
    conds = [(g, p, r) for g, p in GAINS for r in READ_NOISE_E][:conditions]
    for i, (name, clean01) in enumerate(clean_images(data, per_source)):
        for j, (gain, photons, read_e) in enumerate(conds):
            noisy, clean, var = camera_noise(clean01, gain, photons, read_e, kind == "corr", 1000 * i + j)
            items.append(Item(f"{name}_g{gain:g}_r{read_e:g}", noisy, clean, variance=var,
                              params={"gain": gain, "photons": photons, "read_noise_e": read_e,
                                      "offset": OFFSET, "correlated": kind == "corr"}))
    return items


def set12(data: Path = DATA, limit: int | None = None, sigma: float = 25.0) -> list[Item]:
    """Set12 (grey 8-bit photographs) with white Gaussian noise of std ``sigma`` (8-bit), seed 0."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    items = []
    for f in sorted((data / "bsd" / "Set12").glob("*.png"))[:limit]:
        gt = iio.imread(f).astype(np.float64)
        items.append(Item(f.stem, gt + rng.normal(0, sigma, gt.shape), gt))
    return items


SETS = ("w2s", "pg", "corr", "polyu", "cc", "set12")


def load(which: str, data: Path = DATA, limit: int | None = None, per_source: int = 2, conditions: int | None = None,
         sigma: float = 25.0) -> list[Item]:
    """The images of set ``which`` (one of :data:`SETS`). ``limit``: only the first N images of the
    real sets and Set12 (PolyU: at most 8); ``per_source`` / ``conditions``: the size of the synthetic
    sets (:func:`synthetic`); ``sigma``: Set12's noise std. SystemExit when the folder has none."""
    if which == "w2s":
        items = w2s(data, limit)
    elif which in ("pg", "corr"):
        items = synthetic(which, data, per_source, conditions)
    elif which == "polyu":
        items = polyu(data, min(limit, 8) if limit else 8)
    elif which == "cc":
        items = cc(data, limit)
    elif which == "set12":
        items = set12(data, limit, sigma)
    else:
        raise ValueError(f"unknown set {which!r}: one of {', '.join(SETS)}")
    if not items:
        raise SystemExit(f"no {which} images under {data}: check --data (the datasets' README: ../shared/datasets)")
    return items
