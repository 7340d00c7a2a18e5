"""Train the K bias-free blind Gaussian denoisers that serve as ScoreDVI's score priors.

Run ``python training/train_priors.py --data ../shared/datasets/bsd/train --out DIR``.
Stage 1 trains one blind denoiser over the union of all noise ranges; stage 2 fine-tunes a copy of it
for each component's own range, with half of the clean patches band-limited by a random Gaussian PSF
as microscope images are (``--blur-prob``). Noise is Gaussian with a spatially varying std, so the priors accept
non-i.i.d. levels: a constant std, a smooth random map, or a signal-dependent (Poisson-Gaussian-like)
std that grows with the square root of the clean intensity, as in fluorescence. Every stage checkpoints to ``DIR``
and resumes from there when the command is run again; a finished stage is skipped.
PNG/TIFF/JPEG training images; intensities in [0, 1]. ``--channels 3`` trains colour priors on RGB
images (e.g. CBSD432; each channel gets its own noise draw, with the same std map), written to
``color.pt`` instead of ``gray.pt``; ``--holdout N`` keeps the last N training images out of training
as the test set when there is no separate one. The weights file holds the networks in the shipped form
(large kernels as 8-bit integers: ``engine/priors/storage.py``); ``--pack FILE`` converts an older one.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_scoredvi.engine.priors.models import BiasFreeDnCNN, BiasFreeUNet, build_prior
from napari_scoredvi.engine.priors.storage import pack_state, unpack_state

#: Noise-std range of each mixture component, in 8-bit units (std * 255).
RANGES_8BIT: tuple[tuple[float, float], ...] = ((0.0, 20.0), (15.0, 45.0), (35.0, 90.0))


def load_images(data: Path, channels: int = 1) -> list[np.ndarray]:
    """Every image under ``data`` as float32 in [0, 1]: (H, W) grayscale for ``channels=1`` (colour
    images averaged), (3, H, W) RGB for ``channels=3`` (grayscale images repeated)."""
    import imageio.v3 as iio

    files = sorted(p for p in data.iterdir() if p.suffix.lower() in {".png", ".tif", ".tiff", ".jpg"})
    if not files:
        raise SystemExit(f"no training images (png/tif/jpg) found in {data}")
    images = []
    for p in files:
        im = np.asarray(iio.imread(p), dtype=np.float32)
        if channels == 1 and im.ndim == 3:
            im = im[..., :3].mean(axis=-1)
        elif channels == 3:
            im = np.moveaxis(im[..., :3], -1, 0) if im.ndim == 3 else np.repeat(im[None], 3, axis=0)
        images.append(np.ascontiguousarray(im) / (65535.0 if im.max() > 255 else 255.0))
    return images


def sample_batch(images: list[np.ndarray], batch: int, patch: int, gen: np.random.Generator) -> torch.Tensor:
    """Random augmented clean patches, (batch, C, patch, patch), with a random intensity scale, from
    (H, W) or (C, H, W) images."""
    channels = 1 if images[0].ndim == 2 else images[0].shape[0]
    out = np.empty((batch, channels, patch, patch), np.float32)
    for i in range(batch):
        im = images[gen.integers(len(images))]
        r = gen.integers(im.shape[-2] - patch + 1)
        c = gen.integers(im.shape[-1] - patch + 1)
        p = np.rot90(im[..., r : r + patch, c : c + patch], k=int(gen.integers(4)), axes=(-2, -1))
        if gen.random() < 0.5:
            p = p[..., ::-1]
        # fluorescence is often dim after normalisation: teach the prior other intensity scales
        out[i] = p * (gen.uniform(0.25, 1.0) if gen.random() < 0.5 else 1.0)
    return torch.from_numpy(out)


def band_limit(clean: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Blur a random ``prob`` share of the patches (N, C, P, P), every channel alike, with a Gaussian
    PSF of std 0.5-2 px.

    Microscope images are band-limited by the optics (sampled near Nyquist, the PSF spans a few
    pixels), natural photographs are not: without this the priors keep pixel-scale detail that a
    fluorescence image cannot contain, i.e. they leave noise in.
    """
    out = clean.clone()
    pick = torch.rand(clean.shape[0], generator=gen) < prob
    for i in torch.nonzero(pick).flatten().tolist():
        s = 0.5 + 1.5 * float(torch.rand(1, generator=gen))
        r = int(math.ceil(3 * s))
        x = torch.arange(-r, r + 1, dtype=clean.dtype)
        k = torch.exp(-0.5 * (x / s) ** 2)
        k = k / k.sum()
        p = F.pad(clean[i : i + 1].transpose(0, 1), (r, r, r, r), mode="reflect")  # channels as the batch
        p = F.conv2d(p, k.view(1, 1, 1, -1))
        out[i : i + 1] = F.conv2d(p, k.view(1, 1, -1, 1)).transpose(0, 1)
    return out


def noise_std_map(clean: torch.Tensor, lo: float, hi: float, gen: torch.Generator,
                  constant_prob: float | None = None) -> torch.Tensor:
    """Per-pixel noise std for ``clean`` (N, C, P, P), units of [0, 1] data, one mode per patch:
    a constant in [lo, hi] (1/3 of the batch), a smooth bilinear field from a 3x3 random grid in
    [lo, hi] (1/3), or signal dependent, ``s * sqrt(f * clean / mean(clean) + 1 - f)`` with ``s`` in
    [lo, hi] and a Poisson fraction ``f`` in [0.5, 1] (1/3): bright structures get more noise.
    ``constant_prob``: the share of constant-std patches instead (the other two modes share the rest)."""
    n, _, h, w = clean.shape
    grid = torch.rand(n, 1, 3, 3, generator=gen)
    mode = torch.randint(0, 3, (n, 1, 1, 1), generator=gen)
    if constant_prob is not None:  # mode 0 with that probability, else 1 or 2
        other = 1 + (mode % 2)
        mode = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < constant_prob, torch.zeros_like(mode), other)
    grid = torch.where(mode == 1, grid, grid[:, :, :1, :1].expand(-1, -1, 3, 3))
    field = lo + (hi - lo) * F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
    f = 0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=gen)
    rel = clean / clean.mean(dim=(2, 3), keepdim=True).clamp_min(1e-3)
    shot = field * torch.sqrt(f * rel + 1 - f)
    return torch.where(mode == 2, shot, field)


def mix_channels(z: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Correlate unit-variance noise ``z`` (N, C, P, P) across its channels in a random ``prob`` share
    of the patches, as a camera's demosaicking and colour matrix do to sRGB noise: each picked patch's
    noise becomes ``M z`` per pixel, ``M = I + s G`` with ``G`` standard normal (C x C) and ``s`` in
    [0, 1.5], its rows normalised to unit length so every channel keeps unit variance; correlations of
    either sign, up to nearly +-1."""
    out = z.clone()
    c = z.shape[1]
    pick = torch.nonzero(torch.rand(z.shape[0], generator=gen) < prob).flatten().tolist()
    for i in pick:
        m = torch.eye(c) + 1.5 * torch.rand(1, generator=gen) * torch.randn(c, c, generator=gen)
        m = m / m.norm(dim=1, keepdim=True).clamp_min(1e-6)
        out[i] = torch.einsum("cd,dhw->chw", m.to(z.dtype), z[i])
    return out


def correlate(noise: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Make the noise (N, C, P, P) of a random ``prob`` share of the patches spatially correlated, as
    camera pipelines (demosaicking, on-chip binning/filtering) and some microscope cameras deliver it.

    Each picked patch is filtered by a separable 3-tap kernel ``[a, 1, a]`` (``a`` drawn per axis in
    [0.05, 0.5], i.e. a lag-1 correlation of 0.1-0.67 in x and in y, so anisotropic too), normalised
    to unit energy so every pixel keeps its variance (and a signal-dependent std keeps its level).
    """
    out = noise.clone()
    pick = torch.nonzero(torch.rand(noise.shape[0], generator=gen) < prob).flatten().tolist()
    for i in pick:
        ay, ax = (0.05 + 0.45 * torch.rand(2, generator=gen)).tolist()
        ky = torch.tensor([ay, 1.0, ay]) / math.sqrt(1 + 2 * ay * ay)
        kx = torch.tensor([ax, 1.0, ax]) / math.sqrt(1 + 2 * ax * ax)
        p = F.pad(noise[i : i + 1].transpose(0, 1), (1, 1, 1, 1), mode="reflect")  # channels as the batch
        p = F.conv2d(p, kx.view(1, 1, 1, 3).to(noise.dtype))
        out[i : i + 1] = F.conv2d(p, ky.view(1, 1, 3, 1).to(noise.dtype)).transpose(0, 1)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, test: Path | list[np.ndarray],
             sigmas: tuple[int, ...] = (15, 25, 50)) -> dict[str, float]:
    """Mean PSNR (dB) on the images in the folder ``test`` (or the (H, W) / (C, H, W) images given)
    with i.i.d. Gaussian noise, fixed seed per image."""
    images = load_images(test, getattr(model, "channels", 1)) if isinstance(test, Path) else test
    model.eval()
    out = {}
    for s in sigmas:
        vals = []
        for i, im in enumerate(images):
            g = torch.Generator().manual_seed(1000 * s + i)
            clean = torch.from_numpy(im)[None] if im.ndim == 3 else torch.from_numpy(im)[None, None]
            noisy = clean + (s / 255.0) * torch.randn(clean.shape, generator=g)
            vals.append(psnr(model(noisy).clamp(0, 1)[0].numpy().reshape(im.shape), im))
        out[f"sigma{s}"] = round(float(np.mean(vals)), 3)
    return out


def write_portable(ckpt: Path) -> Path:
    """A small copy of a checkpoint to commit (float16 weights and the step, no optimizer state, a
    third of the size): ``train_stage`` resumes from it where the full checkpoint is missing."""
    state = torch.load(ckpt, weights_only=True)
    out = ckpt.with_suffix(".portable.pt")
    tmp = out.with_suffix(".tmp")
    torch.save({"model": {n: v.half() for n, v in state["model"].items()}, "step": state["step"]}, tmp)
    tmp.replace(out)
    return out


def pack_file(path: Path) -> int:
    """Rewrite the weights file ``path`` in place (atomically) in the shipped form; its new size in bytes."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.update({k: pack_state(unpack_state(v)) for k, v in state.items() if k.startswith("prior")})
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path.stat().st_size


def record_curve(out: Path, name: str, step: int, psnr_db: dict[str, float], log) -> None:
    """Append one point of the learning curve (Set PSNR in dB against Adam steps) to ``out/curve.jsonl``."""
    log(f"{name}: step {step} Set PSNR {psnr_db}")
    with open(out / "curve.jsonl", "a") as f:
        f.write(json.dumps({"stage": name, "step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"), **psnr_db}) + "\n")


def train_stage(
    name: str,
    model: torch.nn.Module,
    images: list[np.ndarray],
    rng_8bit: tuple[float, float],
    steps: int,
    args: argparse.Namespace,
    log,
    blur_prob: float = 0.0,
    corr_prob: float = 0.0,
    stage_lr: float | None = None,
    cross_prob: float = 0.0,
    constant_prob: float | None = None,
) -> None:
    """Train ``model`` for ``steps`` Adam steps on noise in ``rng_8bit`` (a ``blur_prob`` share of
    the clean patches band-limited, see :func:`band_limit`, and a ``corr_prob`` share with spatially
    correlated noise, see :func:`correlate`, and a ``cross_prob`` share with noise correlated across
    colour channels, see :func:`mix_channels`; ``constant_prob``: the share of constant-std noise,
    see :func:`noise_std_map`); checkpoint and resume."""
    ckpt = args.out / f"{name}.ckpt"
    opt = torch.optim.Adam(model.parameters(), lr=stage_lr or args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t / steps)))
    start = 0
    portable = ckpt.with_suffix(".portable.pt")
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = int(state["step"])
        log(f"{name}: resumed at step {start}")
    elif portable.exists():  # another machine: the committed weights, Adam's moments start afresh
        state = torch.load(portable, weights_only=True)
        model.load_state_dict({n: v.float() for n, v in state["model"].items()})
        start = int(state["step"])
        for _ in range(start):
            sched.step()
        log(f"{name}: resumed at step {start} from {portable.name} (weights only; Adam's moments reset)")
    if start >= steps:
        return
    gen = np.random.default_rng([args.seed, start, len(name)])
    tgen = torch.Generator().manual_seed(args.seed * 7919 + start)
    lo, hi = rng_8bit[0] / 255.0, rng_8bit[1] / 255.0
    model.train()
    t0, running = time.perf_counter(), 0.0
    for step in range(start, steps):
        clean = sample_batch(images, args.batch, args.patch, gen)
        if blur_prob > 0:
            clean = band_limit(clean, blur_prob, tgen)
        std = noise_std_map(clean, lo, hi, tgen, constant_prob)
        z = torch.randn(clean.shape, generator=tgen)
        if cross_prob > 0:
            z = mix_channels(z, cross_prob, tgen)
        noise = std * z
        if corr_prob > 0:
            noise = correlate(noise, corr_prob, tgen)
        noisy = clean + noise
        loss = F.mse_loss(model(noisy), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == steps:
            n = (step + 1 - start) if step + 1 - start < args.log_every else args.log_every
            log(f"{name}: step {step + 1}/{steps} mse {running / n:.3e} lr {sched.get_last_lr()[0]:.2e} "
                f"{(time.perf_counter() - t0) / (step + 1 - start):.3f} s/step")
            running = 0.0
        if args._eval and args.eval_every and ((step + 1) % args.eval_every == 0 or step + 1 == steps):
            record_curve(args.out, name, step + 1, evaluate(model, args._eval), log)
            model.train()
        if (step + 1) % args.ckpt_every == 0 or step + 1 == steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step + 1}, tmp)
            tmp.replace(ckpt)  # atomic: a kill never leaves a half-written checkpoint


def new_network(args: argparse.Namespace) -> torch.nn.Module:
    """The untrained prior network that ``--arch``, ``--channels``, ``--width``, ``--levels``,
    ``--convs`` and ``--depth`` describe."""
    if args.arch == "unet":
        return BiasFreeUNet(args.channels, args.width, args.levels, args.convs)
    return BiasFreeDnCNN(args.channels, args.depth, args.width)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="folder of clean training images")
    p.add_argument("--channels", type=int, choices=[1, 3], default=1,
                   help="1: grayscale priors (gray.pt); 3: colour priors on RGB images (color.pt)")
    p.add_argument("--holdout", type=int, default=0,
                   help="keep the last N images of --data out of training as the test set (when no --test)")
    p.add_argument("--test", type=Path, default=None, help="folder of test images (e.g. Set12) for PSNR")
    p.add_argument("--out", type=Path, required=True, help="folder for checkpoints, log and weights")
    p.add_argument("--arch", choices=["unet", "dncnn"], default="unet")
    p.add_argument("--depth", type=int, default=10, help="dncnn: convolutions")
    p.add_argument("--width", type=int, default=32, help="channels (unet: of the first level)")
    p.add_argument("--levels", type=int, default=3, help="unet: scales")
    p.add_argument("--convs", type=int, default=2, help="unet: 3x3 convolutions per block")
    p.add_argument("--steps-shared", type=int, default=4000, help="Adam steps of the union-range stage")
    p.add_argument("--steps-each", type=int, default=1500, help="Adam steps of each range's fine-tuning")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--blur-prob", type=float, default=0.5,
                   help="share of band-limited (PSF-blurred) clean patches in the per-range stage")
    p.add_argument("--corr-prob", type=float, default=0.0,
                   help="share of patches with spatially correlated noise in the per-range stage")
    p.add_argument("--cross-prob", type=float, default=0.0,
                   help="colour (--channels 3): share of patches in the per-range stage whose noise is correlated "
                        "across R, G, B (camera sRGB)")
    p.add_argument("--constant-prob", type=float, default=None,
                   help="share of patches in the per-range stage whose noise std is constant (i.i.d. Gaussian, "
                        "what the variance-stabilised presets give the priors); default: a third, like the "
                        "smooth-field and signal-dependent modes")
    p.add_argument("--init", type=Path, default=None,
                   help="a weights file (e.g. the shipped gray.pt), or a stage checkpoint of a run with the same "
                        "--arch/--width/--levels (e.g. its shared.portable.pt, then every component starts from "
                        "it): skip stage 1 and fine-tune the components")
    p.add_argument("--init-lr", type=float, default=3e-4, help="Adam step size of the fine-tuning from --init")
    p.add_argument("--lr-each", type=float, default=None,
                   help="peak Adam step size of each range's fine-tuning after stage 1 (default: --lr)")
    p.add_argument("--export-now", action="store_true",
                   help="train nothing: write the weights file from the per-range checkpoints as they are "
                        "(a component without one keeps the --init or stage-1 weights) and report the steps")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=0,
                   help="Adam steps between Set PSNR evaluations written to OUT/curve.jsonl (0: none)")
    p.add_argument("--portable-only", action="store_true",
                   help="train nothing: write OUT/<stage>.portable.pt (float16 weights, step) from each checkpoint "
                        "in OUT, small enough to commit, and exit")
    p.add_argument("--pack", type=Path, nargs="+", default=None, metavar="FILE",
                   help="train nothing: rewrite these weights files (written before packing, float16) in the "
                        "shipped form, large kernels as 8-bit integers (engine/priors/storage.py), and exit")
    args = p.parse_args(argv)
    if args.pack:
        for path in args.pack:
            print(f"packed {path}: {pack_file(path)} bytes")
        return
    if args.portable_only:
        for ckpt in sorted(args.out.glob("*.ckpt")):
            print(f"wrote {write_portable(ckpt)}")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.out / "train.log", "a")

    def log(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    log(f"start: {vars(args)} torch {torch.__version__} threads {torch.get_num_threads()} "
        f"machine {platform.processor() or platform.machine()}")
    t_start = time.perf_counter()
    images = load_images(args.data, args.channels)
    if args.holdout:
        images, held = images[: -args.holdout], images[-args.holdout :]
    args._eval = args.test or (held if args.holdout else None)  # where the Set PSNR is measured
    init = torch.load(args.init, map_location="cpu", weights_only=True) if args.init else None
    if init is not None and "model" in init:  # a stage checkpoint (e.g. shared.portable.pt): every component
        config = new_network(args).config()  # as its run's arguments say
        init = {"config": config, **{f"prior{k}": init["model"] for k in range(len(RANGES_8BIT))}}
    if init is not None:
        shared = build_prior(init["config"])
        report = {"init": str(args.init)}
    else:
        union = (min(r[0] for r in RANGES_8BIT), max(r[1] for r in RANGES_8BIT))
        shared = new_network(args)
        train_stage("shared", shared, images, union, args.steps_shared, args, log)
        report = {}
        if args._eval:
            report["shared_psnr"] = evaluate(shared, args._eval)
            log(f"shared: Set PSNR {report['shared_psnr']}")
    report.update({"ranges_8bit": [list(r) for r in RANGES_8BIT], "config": shared.config(), "args": {
        k: str(v) for k, v in vars(args).items() if not k.startswith("_")}})
    weights = {}
    for k, rng in enumerate(RANGES_8BIT):
        model = build_prior(shared.config())
        if init is not None:
            model.load_state_dict(unpack_state(init[f"prior{k}"]))
        else:
            model.load_state_dict(shared.state_dict())
        ckpt = args.out / f"prior{k}.ckpt"
        if args.export_now:  # the weights as the checkpoints hold them now (a run stopped early)
            steps = 0
            if ckpt.exists():
                state = torch.load(ckpt, weights_only=True)
                model.load_state_dict(state["model"])
                steps = int(state["step"])
            log(f"prior{k}: exported after {steps} of {args.steps_each} steps")
        else:
            train_stage(f"prior{k}", model, images, rng, args.steps_each, args, log, args.blur_prob,
                        args.corr_prob, args.init_lr if init is not None else args.lr_each, args.cross_prob,
                        args.constant_prob)
            steps = args.steps_each
        report[f"prior{k}_steps"] = steps
        weights[f"prior{k}"] = pack_state(model.state_dict())  # the shipped form (engine/priors/storage.py)
        model.load_state_dict(unpack_state(weights[f"prior{k}"]))  # report the weights as shipped
        if args._eval:
            report[f"prior{k}_psnr"] = evaluate(model, args._eval)
            log(f"prior{k} {rng}: Set PSNR {report[f'prior{k}_psnr']}")
    payload = {"config": shared.config(), "ranges_8bit": torch.tensor(RANGES_8BIT), **weights}
    weights_file = args.out / ("gray.pt" if args.channels == 1 else "color.pt")
    torch.save(payload, weights_file)
    report["seconds_this_run"] = round(time.perf_counter() - t_start, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    log(f"done: weights {weights_file}; report {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
