"""Does the package compute, bit for bit, what it computed at an earlier revision? (For moves and
renames, such as the package's reorganisation into subpackages.)

Checks out ``--against`` into a temporary ``git worktree`` and runs two child processes, one importing
``napari_scoredvi`` from that worktree's ``src`` and one from this checkout's ``src`` (uncommitted
changes included; ``PYTHONPATH``, and each child prints and checks where it imported the package
from). Each child, with one torch thread on the CPU, runs ``denoise`` (seed 0) with each preset of
``--presets`` on the first ``--limit`` images of each set of ``sets.py`` (w2s, pg, corr, polyu, cc and
``quality.py``'s set12: the items and crops those loaders give; a set whose data is missing under
``--data`` is skipped, saying why), then a ``--stack-slices``-slice warm-started stack (the napari
sample stack, a TIFF in the temporary folder, preset ``fast``, posterior std on) through the batch
pipeline: ``napari_scoredvi.batch.denoise_volume`` in the layout before the subpackages,
``napari_scoredvi.pipeline.run.denoise_volume`` after (``--old-api``/``--new-api`` pick per side;
``auto`` by which exists). The outputs (denoised, noise_variance, posterior_std) go to ``.npz`` files
in the temporary folder; the parent then prints per image and preset whether each array is identical
(``np.array_equal``, NaNs equal) and the largest absolute difference, whether the ``info`` fields the
two versions share are equal (``seconds`` left out; the earlier ``normalisation`` dict compared as
``normalisation_offset`` / ``normalisation_scale``), and a summary line.

    python benchmarks/layout_equivalence.py --against 52c9d5d | tee benchmarks/results/layout_equivalence.log
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETS = ("w2s", "pg", "corr", "polyu", "cc", "set12")
OUTPUTS = ("denoised", "noise_variance", "posterior_std")
#: folders under the data folder each set is read from
NEEDS = {"w2s": ("w2s/noisy_avg1", "w2s/gt_avg400"), "pg": ("w2s/gt_avg400", "bsd/Set68"),
         "corr": ("w2s/gt_avg400", "bsd/Set68"), "polyu": ("polyu",), "cc": ("cc",), "set12": ("bsd/Set12",)}
STACK_PRESET = "fast"
INFO_SKIP = {"seconds"}  # info fields that differ between any two runs


# -- child side: runs under one version of the package ---------------------------------------------------
def _plain(value):
    """JSON-ready copy of an info value (numpy scalars and tuples included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _info_dict(info) -> dict:
    """The engine's ``info``: a dict before the typed result, a ``DenoiseInfo`` after (whose
    ``normalisation_offset`` / ``normalisation_scale`` were ``normalisation``'s ``offset`` / ``scale``)."""
    out = _plain(info if isinstance(info, dict) else info.as_dict())
    norm = out.pop("normalisation", None)
    if isinstance(norm, dict):
        out.update({f"normalisation_{k}": v for k, v in norm.items()})
    return out


def child(spec: dict) -> None:
    import torch

    torch.set_num_threads(1)
    import napari_scoredvi

    side, src = spec["side"], Path(spec["src"]).resolve()
    where = Path(napari_scoredvi.__file__).resolve()
    print(f"[{side}] napari_scoredvi {napari_scoredvi.__version__} imported from {where}", flush=True)
    if not where.is_relative_to(src):
        raise SystemExit(f"[{side}] napari_scoredvi was not imported from {src}")
    api = spec["api"]
    if api == "auto":
        api = "new" if (src / "napari_scoredvi" / "pipeline" / "run.py").exists() else "old"
    if api == "old":  # one module per layer, before the subpackages
        from napari_scoredvi.batch import denoise_volume
        from napari_scoredvi.settings import DenoiseSettings
    else:
        from napari_scoredvi.engine.settings import DenoiseSettings
        from napari_scoredvi.pipeline.run import denoise_volume
    from napari_scoredvi import denoise  # both layouts export it at the top

    print(f"[{side}] stack through {denoise_volume.__module__}.denoise_volume, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread", flush=True)
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    inputs = np.load(spec["inputs"])
    infos = {}
    for row in spec["images"]:
        for preset in spec["presets"]:
            t0 = time.perf_counter()
            r = denoise(inputs[row["key"]], channel_axis=-1 if row["rgb"] else None, preset=preset, device="cpu",
                        seed=0)
            key = f"{row['key']}__{preset}"
            np.savez(out / f"{key}.npz", **{name: getattr(r, name) for name in OUTPUTS})
            infos[key] = _info_dict(r.info)
            print(f"[{side}] {row['set']} {row['name']} {preset}: {time.perf_counter() - t0:.1f} s", flush=True)
    if spec["stack"]:
        import zarr

        t0 = time.perf_counter()
        path = denoise_volume(spec["stack"], out / "stack.zarr", DenoiseSettings(STACK_PRESET, "cpu", seed=0),
                              axes="ZYX", posterior_std=True)
        group = zarr.open_group(str(path), mode="r")
        np.savez(out / f"stack__{STACK_PRESET}.npz", **{name: group[f"{name}/0"][:] for name in OUTPUTS})
        print(f"[{side}] stack of {spec['stack_slices']} slices {STACK_PRESET}: {time.perf_counter() - t0:.1f} s",
              flush=True)
    (out / "info.json").write_text(json.dumps(infos, indent=1))


# -- parent side ---------------------------------------------------------------------------------------
def git(*cmd: str) -> str:
    return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def load_images(which: str, data: Path, limit: int) -> tuple[list, str | None]:
    """The first ``limit`` items of set ``which`` as ``quality.py`` loads them, or ([], why not)."""
    missing = [d for d in NEEDS[which] if not (data / d).is_dir() or not any((data / d).iterdir())]
    if missing:
        return [], f"missing or empty under {data}: {', '.join(missing)}"
    import quality
    import sets

    if which == "w2s":
        items = sets.w2s(data, limit)
    elif which in ("pg", "corr"):
        items = sets.synthetic(which, data, per_source=2)[:limit]  # quality.py's default set
    elif which == "polyu":
        items = sets.polyu(data, limit)
    elif which == "cc":
        items = sets.cc(data, limit)
    else:
        items = quality.set12(data, limit, 25.0)
    return items, (None if items else f"no images found under {data}")


def stack_tiff(path: Path, slices: int, size: int) -> None:
    """The napari sample stack (uint16, Z x size x size; made by this checkout's package) as a TIFF."""
    import tifffile

    from napari_scoredvi.io.synthetic import noisy_fluorescence_stack

    noisy, _ = noisy_fluorescence_stack(slices, (size, size), seed=0)
    tifffile.imwrite(path, noisy)


def compare(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    """(identical, max abs difference) of two outputs; NaNs at the same places count as equal."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, float("inf")
    same = bool(np.array_equal(a, b, equal_nan=True))
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff = diff[~np.isnan(diff)]
    return same, float(diff.max()) if diff.size else 0.0


def compare_info(then: dict, now: dict) -> tuple[int, list[str]]:
    """(fields compared, ``name (then vs now)`` of those that differ) among the info fields both
    versions report."""
    common = sorted((set(then) & set(now)) - INFO_SKIP)

    def short(v) -> str:
        text = repr(v)
        return text if len(text) <= 40 else text[:37] + "..."

    return len(common), [f"{k} ({short(then[k])} vs {short(now[k])})" for k in common if then[k] != now[k]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", help="a git revision to compare with (e.g. 52c9d5d); required")
    p.add_argument("--data", type=Path, default=None, help="datasets folder (default: sets.py's, ../shared/datasets)")
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--presets", nargs="+", default=["fast", "balanced"])
    p.add_argument("--limit", type=int, default=2, help="images per set")
    p.add_argument("--stack-slices", type=int, default=3, help="0: no stack")
    p.add_argument("--stack-size", type=int, default=256)
    p.add_argument("--old-api", choices=["auto", "old", "new"], default="auto",
                   help="the layout of --against's package (auto: by whether pipeline/run.py exists)")
    p.add_argument("--new-api", choices=["auto", "old", "new"], default="auto", help="the layout of this checkout's")
    p.add_argument("--jobs", type=int, choices=[1, 2], default=2, help="2: both children at once")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (worktree removed all the same)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return
    if not args.against:
        p.error("the following argument is required: --against")
    import sets

    data = args.data or sets.DATA
    rev = git("rev-parse", "--verify", f"{args.against}^{{commit}}")
    head = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "src")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}: layout equivalence, {rev[:12]} ({args.against}) against this checkout "
          f"(HEAD {head[:12]}{', src/ with uncommitted changes' if dirty else ''}); denoise seed 0, device cpu, "
          f"1 torch thread, presets {' '.join(args.presets)}", flush=True)
    if dirty:
        print("  uncommitted in src/: " + "; ".join(line.strip() for line in dirty.splitlines()), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="layout_equivalence-"))
    worktree = tmp / "worktree"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(worktree), rev], cwd=ROOT, check=True)
        images, arrays = [], {}
        for which in args.sets:
            items, why = load_images(which, data, args.limit)
            if why:
                print(f"skipping {which}: {why}", flush=True)
                continue
            for item in items:
                key = f"{which}__{item.name}"
                arrays[key] = item.noisy
                images.append({"key": key, "set": which, "name": item.name, "rgb": bool(item.rgb)})
        np.savez(tmp / "inputs.npz", **arrays)
        stack = None
        if args.stack_slices:
            stack = tmp / "stack.tif"
            stack_tiff(stack, args.stack_slices, args.stack_size)
        print(f"{len(images)} images x {len(args.presets)} presets"
              + (f", and a {args.stack_slices} x {args.stack_size} x {args.stack_size} stack" if stack else "")
              + f"; outputs under {tmp}", flush=True)
        sides = {"then": (worktree / "src", args.old_api), "now": (ROOT / "src", args.new_api)}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        procs = {}
        for side, (src, api) in sides.items():
            spec = {"side": side, "src": str(src), "api": api, "out": str(tmp / side),
                    "inputs": str(tmp / "inputs.npz"), "images": images, "presets": args.presets,
                    "stack": str(stack) if stack else None, "stack_slices": args.stack_slices}
            procs[side] = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                                           env={**env, "PYTHONPATH": str(src)}, cwd=tmp)
            if args.jobs == 1:
                procs[side].wait()
        failed = [side for side, proc in procs.items() if proc.wait() != 0]
        if failed:
            raise SystemExit(f"child process(es) failed: {', '.join(failed)}")
        report(images, args.presets, bool(stack), tmp, rev)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(images: list[dict], presets: list[str], stack: bool, tmp: Path, rev: str) -> None:
    runs = [(f"{r['set']:6s} {r['name'][:36]:36s}", f"{r['key']}__{p}", p) for r in images for p in presets]
    if stack:
        runs.append((f"{'stack':6s} {'warm-started, denoise_volume':36s}", f"stack__{STACK_PRESET}", STACK_PRESET))
    infos = {side: json.loads((tmp / side / "info.json").read_text()) for side in ("then", "now")}
    print(f"\n{'set':6s} {'image':36s} {'preset':8s} {'result':10s} max |diff| (denoised, noise_variance, "
          "posterior_std); info fields")
    same_runs = same_arrays = n_arrays = 0
    worst = 0.0
    info_runs = info_same = 0
    for label, key, preset in runs:
        then, now = (np.load(tmp / side / f"{key}.npz") for side in ("then", "now"))
        results = [compare(then[name], now[name]) for name in OUTPUTS]
        identical = all(same for same, _ in results)
        same_runs += identical
        same_arrays += sum(same for same, _ in results)
        n_arrays += len(results)
        worst = max([worst] + [d for _, d in results])
        line = (f"{label} {preset:8s} {'identical' if identical else 'DIFFERENT':10s} "
                + " ".join(f"{d:.3g}" for _, d in results))
        if key in infos["then"]:
            n, differ = compare_info(infos["then"][key], infos["now"][key])
            info_runs += 1
            info_same += not differ
            line += f"; info: {n} shared fields " + ("equal" if not differ else f"DIFFER: {', '.join(differ)}")
        print(line, flush=True)
    print(f"\nsummary: {same_runs} of {len(runs)} runs bit-for-bit identical ({same_arrays} of {n_arrays} arrays), "
          f"max abs difference {worst:.3g}; info equal in {info_same} of {info_runs} single-image runs "
          f"(this checkout against {rev[:12]})")


if __name__ == "__main__":
    main()
