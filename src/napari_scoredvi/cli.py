"""Command line: ``napari-scoredvi demo`` (and the batch commands)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._version import __version__
from .engine.devices import DEVICE_CHOICES
from .engine.presets import DEFAULT_PRESET, PRESETS
from .engine.settings import DEFAULT_CONTEXT, MAX_CONTEXT
from .io.errors import Argument, ArgumentRemedy

#: the option that sets each library argument an error or a note may name (:mod:`.io.errors`)
FLAGS = {"resume": "--resume", "overwrite": "--overwrite", "axes": "--axes", "index": "--slice"}


def flag_words(arg: Argument) -> str:
    """A library argument as the command line spells it: ``--resume``, ``--axes TYX``, ``--slice 0 3``."""
    flag = FLAGS.get(arg.name)
    if flag is None:
        return str(arg)
    if arg.value is True:
        return flag
    values = arg.value if isinstance(arg.value, (list, tuple)) else [arg.value]
    return " ".join([flag, *map(str, values)])


class _NoteFormatter(logging.Formatter):
    """The package's log notes, one line each, with the arguments they name spelled as options."""

    def format(self, record: logging.LogRecord) -> str:
        remedy = getattr(record, "remedy", None)  # io.errors.warn's Message
        if remedy is not None:  # a copy: other handlers keep the record as it is
            record = logging.makeLogRecord({**record.__dict__, "msg": remedy.worded(flag_words), "args": ()})
        return super().format(record)


def _write_tiff(path: Path, data: np.ndarray) -> None:
    """Write atomically: a killed run never leaves a truncated TIFF behind."""
    import tifffile

    tmp = path.with_name(path.name + ".part")
    tifffile.imwrite(tmp, data)
    os.replace(tmp, path)


def _psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return float(10 * np.log10(data_range**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def _require_input(path: str) -> None:
    """A missing input is reported at once, before torch, zarr and dask load (seconds)."""
    if not os.path.exists(path):
        where = "" if os.path.isabs(path) else f" (looked in {os.getcwd()})"
        raise FileNotFoundError(f"input {path!r} does not exist{where}; check the path")


#: the files the demo writes into its folder
DEMO_FILES = ("noisy", "clean", "denoised", "noise_variance", "posterior_std")


def _demo_folder(out: Path, overwrite: bool) -> None:
    """Refuse a folder that already holds something unless --overwrite (which replaces only the demo's TIFFs)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{str(out)!r} is a file, not a folder; give the demo another folder, "
                              "e.g. napari-scoredvi demo my-demo")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        count = f"{len(held)} entr{'y' if len(held) == 1 else 'ies'}"
        raise FileExistsError(f"the demo folder {str(out)!r} is not empty ({count}: {shown}); pass --overwrite "
                              "to replace the demo's TIFF files in it, or give another folder, e.g. "
                              "napari-scoredvi demo my-demo")


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.output)
    _demo_folder(out, args.overwrite)  # before the seconds torch takes to load
    from .engine.api import denoise
    from .io.synthetic import noisy_fluorescence

    out.mkdir(parents=True, exist_ok=True)
    noisy, clean = noisy_fluorescence((args.size, args.size), seed=args.seed)
    print(f"napari-scoredvi {__version__}: denoising a synthetic {args.size}x{args.size} uint16 fluorescence image "
          f"(Poisson-Gaussian noise, camera offset 100) with preset '{args.preset}'")
    t0 = time.perf_counter()
    last = [0.0]
    unit = "fit steps" if PRESETS[args.preset].kind == "variational" else "prior passes"

    def progress(step: int, total: int) -> None:
        now = time.perf_counter() - t0
        if now - last[0] > 2 or step == total:
            left = f", about {now / step * (total - step):.0f} s left" if step < total else ""
            print(f"  {step}/{total} {unit}  {now:.1f} s{left}", flush=True)
            last[0] = now

    r = denoise(noisy, preset=args.preset, device=args.device, seed=args.seed, progress=progress)
    rng = float(clean.max() - clean.min())
    for name, data in zip(DEMO_FILES, (noisy, clean, r.denoised, r.noise_variance, r.posterior_std)):
        _write_tiff(out / f"{name}.tif", data)
    fit = f"fit steps: {r.info.iterations}; prior weight lam: {r.info.lam:.3g}; " if r.info.lam is not None else ""
    print(f"device: {r.info.device}; {fit}estimated noise std: {r.info.noise_std:.2f} counts")
    print(f"PSNR vs clean: noisy {_psnr(noisy, clean, rng):.2f} dB -> denoised {_psnr(r.denoised, clean, rng):.2f} dB")
    print(f"took {r.info.seconds:.1f} s; wrote noisy, clean, denoised, noise_variance, posterior_std .tif to {out}/")
    return 0


def cmd_denoise(args: argparse.Namespace) -> int:
    _require_input(args.input)
    from tqdm import tqdm

    from .engine.settings import DenoiseSettings
    from .pipeline.events import RunStarted, SliceDone, SliceStep
    from .pipeline.job import slice_text
    from .pipeline.run import denoise_volume

    bar = None
    finished = 0  # slices done, the bar's whole part
    last_draw = 0.0
    correlated: list[tuple[float, float]] = []  # lag-1 (y, x) of the slices whose noise was correlated

    def progress(event) -> None:
        nonlocal bar, finished, last_draw
        if isinstance(event, RunStarted):
            finished = event.done
            print(f"napari-scoredvi {__version__}: denoising {event.total} slice(s) of {args.input} -> {args.output}"
                  + (f" ({event.done} already done)" if event.done else ""), file=sys.stderr)
            # the count moves by fractions of a slice as its prior passes or fit steps go
            bar = tqdm(total=event.total, initial=event.done, unit="slice", dynamic_ncols=True, file=sys.stderr,
                       bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} slices [{elapsed}<{remaining}{postfix}]")
        elif isinstance(event, SliceDone) and bar is not None:
            if event.record.get("noise_correlated"):
                correlated.append(tuple(event.record.get("noise_lag1", (0.0, 0.0))))
            finished = event.done
            bar.n = event.done
            where = slice_text(event.record.get("slice", {})).lower()
            bar.set_postfix_str(f"last: {where} {event.record.get('seconds', 0):.1f} s")
        elif isinstance(event, SliceStep) and bar is not None:
            if event.step > 1 and time.monotonic() - last_draw < 0.5:  # tqdm limits only update()
                return
            last_draw = time.monotonic()
            bar.n = finished + event.step / max(event.steps, 1)
            where = slice_text(event.label).lower() or "image"
            bar.set_postfix_str(f"{where}: {event.unit} {event.step}/{event.steps}")

    if args.no_warm_start and PRESETS[args.preset].kind != "variational":
        print(f"napari-scoredvi: --no-warm-start applies to --preset variational only: {args.preset} fits nothing to "
              "start from; leave the option out", file=sys.stderr)
        return 2
    ensemble = PRESETS[args.preset].kind == "ensemble"
    if not ensemble and (args.context or args.context_axis):
        print(f"napari-scoredvi: --context and --context-axis apply to --preset fast and balanced: {args.preset} "
              "denoises every slice on its own; leave them out", file=sys.stderr)
        return 2
    context = (DEFAULT_CONTEXT if args.context is None else args.context) if ensemble else 0
    try:
        settings = DenoiseSettings(args.preset, args.device, args.seed, warm_start=not args.no_warm_start,
                                   context=context)
        out = denoise_volume(args.input, args.output, settings, axes=args.axes, channel_axis=args.channel_axis,
                             posterior_std=args.posterior_std, resume=args.resume, overwrite=args.overwrite,
                             scheduler=args.scheduler, progress=progress, context_axis=args.context_axis)
    except KeyboardInterrupt:
        print("\nnapari-scoredvi: stopped; the finished slices are kept in the output: run the same command "
              "with --resume to do the rest", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    names = "denoised, noise_variance" + (", posterior_std" if args.posterior_std else "")
    print(f"done: wrote {names} to {out} (OME-Zarr; open e.g. {out}/denoised in napari)")
    if correlated:
        from .engine.noise_estimate import correlation_text

        text = correlation_text(*(float(np.mean(v)) for v in zip(*correlated)))
        print(f"note: the noise of {len(correlated)} slice(s) is spatially correlated (mean {text}; per slice in "
              "the provenance); noise_variance is each pixel's own")
    return 0


def _add_denoise_parser(sub) -> None:
    d = sub.add_parser(
        "denoise",
        help="denoise every 2D slice of a TIFF or Zarr stack into an OME-Zarr folder",
        description=(
            "Denoise every 2D (Y, X) slice of a TIFF, OME-TIFF, ImageJ TIFF, Zarr or OME-Zarr image, one slice at "
            "a time, and write the denoised image, the noise-variance map (and optionally the posterior standard "
            "deviation) to an OME-Zarr folder with the same shape and pixel sizes. An interrupted run can be "
            "finished with --resume. Example: napari-scoredvi denoise stack.tif stack-denoised.zarr --axes ZYX"
        ),
    )
    d.add_argument("input", help="the noisy image: a .tif/.tiff file, a Zarr folder or an OME-Zarr folder")
    d.add_argument("output", help="the OME-Zarr folder to create, e.g. result.zarr (never the input)")
    d.add_argument("--axes", help="what each dimension is, one letter per dimension, the last two Y and X "
                                  "(e.g. ZYX, TYX, TZCYX); needed only if the file does not say")
    d.add_argument("--channel-axis", type=int, default=None, metavar="N",
                   help="denoise the channels along dimension N (counted from 0) together as one multichannel "
                        "image; by default every channel is denoised on its own, except the R, G, B of an RGB "
                        "TIFF, which go together through the colour priors")
    d.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                   help="fast and balanced: the prior ensemble, seconds per slice (balanced averages 8 flips and "
                        "rotations: slower, a little better); variational: ScoreDVI's fit, minutes per slice "
                        "(default: %(default)s)")
    d.add_argument("--device", choices=list(DEVICE_CHOICES), default="auto",
                   help="where to compute; auto picks a GPU if there is one (default: %(default)s)")
    again = d.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="finish an interrupted run: keep the slices already in OUTPUT and do the rest")
    again.add_argument("--overwrite", action="store_true", help="delete an existing OUTPUT and start again")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the slices on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786 (needs "
                        "'pip install napari-scoredvi[cluster]' and a filesystem shared with the workers)")
    d.add_argument("--seed", type=int, default=0, help="random seed; slice k uses seed+k (default: %(default)s)")
    d.add_argument("--posterior-std", action="store_true",
                   help="also write the per-pixel posterior standard deviation")
    d.add_argument("--no-warm-start", action="store_true",
                   help="--preset variational only: fit every slice from scratch instead of starting from the "
                        "previous slice's fit (slower; for stacks whose neighbouring slices do not look alike)")
    d.add_argument("--context", type=int, choices=range(MAX_CONTEXT + 1), default=None, metavar="K",
                   help=f"fast and balanced: denoise each slice with its K neighbouring slices on each side of the "
                        f"stack (0 to {MAX_CONTEXT}; 0 = every slice on its own; default: {DEFAULT_CONTEXT})")
    d.add_argument("--context-axis", metavar="LETTER",
                   help="the axis the neighbours are taken along, e.g. Z or T of a TZYX time-lapse (default: the "
                        "last axis before Y and X that is not the channel axis: Z of TZYX, T of TYX)")
    d.set_defaults(func=cmd_denoise)


def cmd_calibrate(args: argparse.Namespace) -> int:
    _require_input(args.input)
    from .calibration.photon_transfer import calibrate, read_plane
    from .calibration.plot import require_matplotlib, save_plot

    for flag, out in (("--plot", args.plot), ("--json", args.json), ("--csv", args.csv)):
        if out and Path(out).resolve() == Path(args.input).resolve():
            raise ValueError(f"{flag} {out} is the input image; give the output another name")
    if args.plot:
        try:
            require_matplotlib()  # before the work, not after it
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}, or leave out --plot") from None
    plane, where = read_plane(args.input, args.slice, args.axes)
    if where.endswith("(the middle)"):
        where = where[:-1] + "; choose another with --slice)"
    r = calibrate(plane, offset=args.offset, read_noise_e=args.read_noise, gain_known=args.gain_known)
    print(f"napari-scoredvi {__version__}: photon transfer of {args.input}, {where} ({plane.shape[0]} x "
          f"{plane.shape[1]} pixels); fit variance = gain * intensity + intercept over {len(r.measured.intensity)} "
          "intensity bins")
    print("\n".join(r.summary()))
    title = f"{Path(args.input).name}, {where.split(' (')[0]}"
    for path, write in ((args.json, r.write_json), (args.csv, r.write_csv),
                        (args.plot, lambda p: save_plot(r, p, title=title))):
        if path:
            print(f"wrote {write(path)}")
    return 0


def _add_calibrate_parser(sub) -> None:
    c = sub.add_parser(
        "calibrate",
        help="measure the camera gain (ADU per photoelectron) from one raw image (photon transfer)",
        description=(
            "Measure the noise variance against intensity in one raw 2D image (one slice of a stack) and fit "
            "variance = gain * intensity + intercept: gain in ADU per photoelectron, intercept in ADU^2. Give the "
            "camera offset (dark level) to get the read noise, or the read noise to get the offset. Also reports "
            "the noise's lag-1 spatial correlation in y and x (0: independent pixels). Needs flat "
            "regions at several intensities. Example: napari-scoredvi calibrate frame.tif --offset 100 --plot ptc.png"
        ),
    )
    c.add_argument("input", help="a raw camera image: a .tif/.tiff file, a Zarr folder or an OME-Zarr folder")
    c.add_argument("--slice", type=int, nargs="+", metavar="N",
                   help="index of the 2D slice along each axis before Y, X (e.g. --slice 3 for a z-stack, "
                        "--slice 0 3 for T, Z); default: the middle of each")
    c.add_argument("--axes", help="what each dimension is (e.g. ZYX), needed only if the file does not say")
    known = c.add_mutually_exclusive_group()
    known.add_argument("--offset", type=float, metavar="ADU",
                       help="the camera's dark level (offset) in ADU: gives the read noise")
    known.add_argument("--read-noise", type=float, metavar="E",
                       help="the camera's read noise in electrons (camera data sheet): gives the offset")
    c.add_argument("--gain-known", type=float, metavar="G", help="a known gain (ADU/e-) to compare with")
    c.add_argument("--plot", metavar="PNG", help="write the variance-vs-intensity plot to this PNG file")
    c.add_argument("--json", metavar="FILE", help="write the numbers and the bins as JSON")
    c.add_argument("--csv", metavar="FILE", help="write the bins as CSV rows")
    c.set_defaults(func=cmd_calibrate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="napari-scoredvi",
        description="Denoise fluorescence microscopy images with ScoreDVI, from the single noisy image.",
    )
    p.add_argument("--version", action="version", version=f"napari-scoredvi {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser(
        "demo", help="denoise a built-in synthetic sample and write the results as TIFF files",
        description=(
            "Denoise a built-in synthetic 16-bit fluorescence image and write noisy, clean, denoised, noise_variance "
            "and posterior_std TIFFs to a folder, with the 'fast' preset unless --preset says otherwise."
        ),
    )
    d.add_argument("output", nargs="?", default="scoredvi-demo",
                   help="folder for the TIFF files (default: %(default)s); a folder that is not empty is refused "
                        "unless --overwrite")
    d.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                   help="fast, balanced or variational, as for 'denoise' (default: %(default)s)")
    d.add_argument("--overwrite", action="store_true",
                   help="write into an output folder that is not empty (replacing the demo's TIFF files there)")
    d.add_argument("--device", choices=list(DEVICE_CHOICES), default="auto", help="default: %(default)s")
    d.add_argument("--size", type=int, default=256, help="image side in pixels (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    _add_denoise_parser(sub)
    _add_calibrate_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the package's log warnings (e.g. an assumed axis order) as one line each on stderr
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(_NoteFormatter("napari-scoredvi: note: %(message)s"))
    logging.getLogger("napari_scoredvi").addHandler(notes)
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        text = exc.worded(flag_words) if isinstance(exc, ArgumentRemedy) else exc
        print(f"napari-scoredvi: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-scoredvi: interrupted", file=sys.stderr)
        return 130
    finally:
        logging.getLogger("napari_scoredvi").removeHandler(notes)


if __name__ == "__main__":
    sys.exit(main())
