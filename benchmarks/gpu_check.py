"""``gpu``: the GPU check (issue 39): the CUDA tests, then every preset timed on the GPU against the CPU.

Made to be started once on a GPU machine, bare or not (``bash benchmarks/gpu_check.sh``: it finds or
installs torch, then runs ``python -m benchmarks gpu``), and to end within ``--budget`` seconds (420 by
default: under 8 minutes on one H100, the tests included). In order:

1. the machine: ``nvidia-smi``, the CPU's cores, torch, CUDA and cuDNN versions, the TF32 settings;
2. the CUDA tests: ``pytest -q -k cuda`` on ``--tests`` (the test files that exercise CUDA, the new
   ``tests/engine/test_cuda_matches_cpu.py`` among them): their summary and exit status
   (``--no-tests`` skips them);
3. a warm-up of each preset on a 64 x 64 slice on ``--device`` (not timed);
4. the rows, on ``--device``: each preset of ``--presets`` on square synthetic slices of ``--sizes``
   (``io.synthetic.noisy_fluorescence``; ``denoise`` with its defaults, the posterior std included) and
   on a ``--stack`` x ``--stack-size`` x ``--stack-size`` synthetic stack
   (``io.synthetic.noisy_fluorescence_stack``) through the stack loop (``pipeline.slices.denoise_slices``
   into memory, no posterior std, as the widget runs it). Each: seconds (a slice of under 10 s: the
   median of ``--repeat`` runs), seconds per slice, PSNR against the clean truth, peak GPU memory
   (``torch.cuda.max_memory_allocated``, reset per run), seconds per iteration (``variational``);
5. the CPU references: each row's preset on the CPU at the same seed, on the whole input where that fits
   in ``--ref-seconds`` (a stack: its first 2 slices, a stack of their own, which the device denoises
   again: a slice's neighbours differ from the whole stack's), else on the largest centre crop (1024,
   512, 256, 128, 64 or 32 pixels a side) that does, then denoised on ``--device`` too: the PSNR of the
   device's result against the CPU's (none where they are identical), their largest absolute
   difference, and the difference of their PSNRs against the truth (dPSNR);
6. the targets of issue 39: ``fast`` under 0.2 s per 512 x 512 slice, ``variational`` under 60 s per
   512 x 512 slice, the device within 0.05 dB of the CPU (dPSNR), each PASS, FAIL or not measured.

The budget: 30 % of what is left when the rows start is kept for the references. Each row gets at most
``--row-seconds`` and its share of the rest (shared over the rows still to run: the ensemble presets
first, at the first size, on the stack, at the larger sizes; then ``variational`` in the same order),
each reference at most ``--ref-seconds`` and its share. A run projected past its limit (from its
prior passes or fit steps so far) is stopped: the row gives the seconds it ran, the whole run's
projected seconds, the seconds per iteration and the peak GPU memory so far, no PSNR; a stack stops
after the last slice that fits and reports those slices. A row whose share is under 5 s is skipped,
saying so; an error in a row (e.g. out of GPU memory) is recorded in it and the next row runs. The
figures so far are written to ``gpu.json.tmp`` after each row.

``--device cpu`` runs the same on the CPU (no GPU memory; the reference is then the same device:
identical results, dPSNR 0); ``--smoke`` picks tiny sizes for that: 32 and 64 pixel slices, a 3 x 32 x 32
stack, ``variational:iterations=3,warm_iterations=2``, one run per slice (seconds with ``--threads 1``).
Writes ``gpu.json`` (the machine, the tests, the rows with their references, the targets) and
``gpu.log`` (everything printed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from . import measure
from .common import ROOT, Report, preset_arg, preset_config, write_json

PRESETS = ("fast", "balanced", "variational")
SIZES = (512, 2048)
STACK, STACK_SIZE = 32, 512
SMOKE = {"sizes": [32, 64], "stack": 3, "stack_size": 32, "repeat": 1,
         "presets": ["fast", "balanced", "variational:iterations=3,warm_iterations=2"]}
#: the test files that exercise CUDA (``-k cuda`` picks their CUDA tests)
TESTS = ("tests/engine/test_cuda_matches_cpu.py", "tests/engine/test_devices.py", "tests/engine/test_priors.py",
         "tests/engine/test_api.py", "tests/test_cli.py")
CROPS = (1024, 512, 256, 128, 64, 32)  # the CPU reference's centre crops, largest first
REF_SLICES = 2  # a stack's CPU reference: its first slices
WARM_UP = 64  # the warm-up slice's size
SEED = 0  # the denoising seed (slice k of a stack: SEED + k)
MIN_SHARE = 5.0  # seconds: a row with less is skipped
REF_SHARE = 0.3  # of the budget left once the rows start: kept for the CPU references
RESERVE = 10.0  # seconds of the budget kept for the summary and the files
REPEAT_UNDER = 10.0  # seconds: a slice faster than this is timed --repeat times
TARGETS = {"fast_512_seconds": 0.2, "variational_512_seconds": 60.0, "dpsnr_db": 0.05}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks gpu``."""
    p.add_argument("--device", default="cuda", help="the device to check (default: %(default)s; cpu for a smoke run)")
    p.add_argument("--presets", nargs="+", type=preset_arg, help=f"default: {' '.join(PRESETS)}")
    p.add_argument("--sizes", nargs="+", type=int, help=f"square slices (default: {' '.join(map(str, SIZES))})")
    p.add_argument("--stack", type=int, help=f"slices of the stack (default: {STACK}; 0: no stack rows)")
    p.add_argument("--stack-size", type=int, help=f"the stack's slice size (default: {STACK_SIZE})")
    p.add_argument("--repeat", type=int, help="runs of a slice under 10 s; the median is reported (default: 3)")
    p.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run (default: %(default)s)")
    p.add_argument("--row-seconds", type=float, default=90.0,
                   help="the most one run on the device may take (default: %(default)s)")
    p.add_argument("--ref-seconds", type=float, default=30.0,
                   help="the most one CPU reference may take (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--tests", nargs="+", default=list(TESTS), help="test files run with -k cuda (default: %(default)s)")
    p.add_argument("--no-tests", action="store_true", help="skip the CUDA tests")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (with --device cpu: a run of seconds)")


class _Stop(Exception):
    """A run projected, or ran, past its time limit."""


@dataclass
class Clock:
    """Times one run from its work-unit events (prior passes, fit steps) and stops it (:class:`_Stop`)
    once it runs past ``limit`` seconds or is projected to: from the rate of the units after the first,
    5 of them, or 2 where the projection is over 3 times the limit."""

    limit: float
    t0: float = field(default_factory=time.perf_counter)
    first: tuple[float, int] | None = None  # (seconds, units done) at the first event
    done: int = 0
    total: int = 0
    rate: float | None = None  # seconds per unit after the first
    projected: float | None = None  # seconds of the whole run, projected

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.t0

    def tick(self, done: int, total: int) -> None:
        """``done`` of ``total`` units are done; raises :class:`_Stop` past the limit."""
        now = self.elapsed()
        self.done, self.total = done, total
        if self.first is None:
            self.first = (now, done)
        elif done - self.first[1] >= 2 and now > self.first[0]:
            self.rate = (now - self.first[0]) / (done - self.first[1])
            self.projected = now + self.rate * (total - done)
            sure = done - self.first[1] >= 5 or self.projected > 3 * self.limit
            if sure and self.projected > self.limit:
                raise _Stop(f"projected {self.projected:.1f} s > {self.limit:.1f} s")
        if now > self.limit:
            raise _Stop(f"ran past {self.limit:.1f} s")

    def restart(self) -> None:
        """A new piece of work (the next slice of a stack) begins: project its units on their own."""
        self.first = None

    def setup(self) -> float:
        """Seconds before the first unit of work (what a shorter run of the same input still costs)."""
        if self.first is None:
            return self.elapsed()
        return max(0.0, self.first[0] - (self.rate or 0.0) * self.first[1])


@dataclass
class Run:
    """One run on one device: its outputs (``denoised`` (Z, H, W) for a stack) or None if stopped."""

    seconds: float
    denoised: np.ndarray | None
    clock: Clock
    stopped: str | None = None
    peak_mb: float | None = None
    slices: int = 1  # slices finished (a stack)
    slice_seconds: list[float] = field(default_factory=list)  # seconds of each finished slice (a stack)
    info: dict = field(default_factory=dict)


def _torch():
    import torch

    return torch


def _sync_reset(device: str) -> None:
    torch = _torch()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: str) -> float | None:
    torch = _torch()
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def run_image(image: np.ndarray, cfg, device: str, limit: float) -> Run:
    """``denoise`` (its defaults, seed :data:`SEED`) of one slice on ``device``, stopped past ``limit``."""
    from napari_scoredvi.engine.api import denoise_steps, finish
    from napari_scoredvi.engine.settings import DenoiseSettings

    _sync_reset(device)
    clock = Clock(limit)
    steps = denoise_steps(image, DenoiseSettings(cfg, device, SEED))
    try:
        result = finish(steps, lambda event: clock.tick(event.step, event.total))
    except _Stop as stop:
        return Run(clock.elapsed(), None, clock, str(stop), _peak_mb(device))
    info = {"device": result.info.device, "iterations": result.info.iterations, "retries": result.info.retries,
            "prior_passes": clock.total if cfg.kind == "ensemble" else None}
    return Run(clock.elapsed(), result.denoised, clock, None, _peak_mb(device), info=info)


def _slice_estimate(k: int, cfg, seconds: list[float]) -> float:
    """Seconds that slice ``k`` of a stack is expected to take, from the slices finished before it."""
    from napari_scoredvi.pipeline.slices import CHAIN

    if cfg.kind != "variational":
        return float(np.mean(seconds))
    cold = [s for j, s in enumerate(seconds) if j % CHAIN == 0]
    warm = [s for j, s in enumerate(seconds) if j % CHAIN != 0]
    if k % CHAIN == 0:
        return float(np.mean(cold))
    return float(np.mean(warm)) if warm else float(np.mean(cold)) * cfg.warm_iterations / max(cfg.iterations, 1)


def run_stack(stack: np.ndarray, cfg, device: str, limit: float) -> Run:
    """The stack loop (``denoise_slices`` into memory, no posterior std) on ``device``: it stops after the
    last slice projected to end within ``limit`` (the finished slices are kept), or past it."""
    from napari_scoredvi.engine.settings import DenoiseSettings
    from napari_scoredvi.io.slice_grid import SliceGrid
    from napari_scoredvi.pipeline.events import SliceDone
    from napari_scoredvi.pipeline.slices import denoise_slices

    n = len(stack)
    outputs = {"denoised": np.full(stack.shape, np.nan, np.float32),
               "noise_variance": np.full(stack.shape, np.nan, np.float32)}
    _sync_reset(device)
    clock = Clock(limit)
    ends: list[float] = []
    stopped = None
    events = denoise_slices(stack, SliceGrid.leading(stack.shape, 1), list(range(n)), outputs,
                            DenoiseSettings(cfg, device, SEED))
    try:
        while True:
            event = next(events)
            if not isinstance(event, SliceDone):
                if event.step == 1:
                    clock.restart()
                clock.tick(event.step, event.steps)
                continue
            ends.append(clock.elapsed())
            seconds = list(np.diff([0.0, *ends]))
            if len(ends) < n and ends[-1] + _slice_estimate(len(ends), cfg, seconds) > limit:
                stopped = f"stopped after {len(ends)} of {n} slices: the next was projected past {limit:.1f} s"
                break
    except StopIteration as stop:
        if stop.value.failed is not None:
            raise RuntimeError(f"slice {stop.value.failed.number}: {stop.value.failed.message}") from None
    except _Stop as stop:
        stopped = f"{stop} in slice {len(ends)}; stopped after {len(ends)} of {n} slices"
    finally:
        events.close()
    peak = _peak_mb(device)
    m = len(ends)
    seconds = list(np.diff([0.0, *ends]))
    return Run(ends[-1] if ends else clock.elapsed(), outputs["denoised"][:m] if m else None, clock, stopped, peak,
               slices=m, slice_seconds=[float(s) for s in seconds])


def centre(a: np.ndarray, c: int | None) -> np.ndarray:
    """The centre ``c`` x ``c`` crop of the last two axes (``c=None``: ``a`` itself)."""
    if c is None:
        return a
    h, w = a.shape[-2:]
    y, x = (h - c) // 2, (w - c) // 2
    return a[..., y : y + c, x : x + c]


def psnr_db(out: np.ndarray, clean: np.ndarray) -> float:
    """PSNR against the truth, peak = the truth's range; a stack: the mean over its slices."""
    peak = float(clean.max() - clean.min())
    if out.ndim == 3:
        return float(np.mean([measure.psnr(o, c, peak) for o, c in zip(out, clean)]))
    return measure.psnr(out, clean, peak)


def agreement(dev_out: np.ndarray, cpu_out: np.ndarray, clean: np.ndarray) -> dict:
    """How the device's result compares with the CPU's on the same input: PSNR of one against the other
    (peak = the truth's range; None where identical), the largest |difference|, PSNRs against the truth."""
    diff = np.abs(dev_out.astype(np.float64) - cpu_out.astype(np.float64))
    peak = float(clean.max() - clean.min())
    mse = float(np.mean(diff**2))
    dev_db, cpu_db = psnr_db(dev_out, clean), psnr_db(cpu_out, clean)
    return {"psnr_device_vs_cpu_db": None if mse == 0 else float(10 * np.log10(peak**2 / mse)),
            "identical": mse == 0, "max_abs_diff": float(diff.max()), "psnr_device_db": dev_db,
            "psnr_cpu_db": cpu_db, "dpsnr_db": dev_db - cpu_db}


def _work(cfg, slices: int) -> float:
    """Units of work of ``slices`` slices, for the seconds-per-pixel model: 1 per slice of the ensemble;
    a fit's iterations (cold at each chain start, warm otherwise)."""
    from napari_scoredvi.pipeline.slices import CHAIN

    if cfg.kind != "variational":
        return float(slices)
    return float(sum(cfg.iterations if k % CHAIN == 0 else cfg.warm_iterations for k in range(slices)))


def _rate_key(cfg) -> tuple:
    """The seconds-per-pixel model's key of a preset: its fields but its name and iterations."""
    if cfg.kind == "variational":
        return ("variational", *dataclasses.astuple(dataclasses.replace(cfg, name="", iterations=0,
                                                                        warm_iterations=0)))
    return ("ensemble", *dataclasses.astuple(dataclasses.replace(cfg, name="")))


def row_name(spec: str, kind: str, size: int, slices: int) -> str:
    """A row's name, e.g. ``fast, 512x512`` or ``fast, stack 32 x 512x512``."""
    return f"{spec}, {f'stack {slices} x ' if kind == 'stack' else ''}{size}x{size}"


def make_input(kind: str, size: int, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """A row's synthetic input and its truth: one slice (seed = its size) or a drifting stack."""
    from napari_scoredvi.io.synthetic import noisy_fluorescence, noisy_fluorescence_stack

    if kind == "stack":
        return noisy_fluorescence_stack(slices, (size, size), seed=11, photons=40.0)
    return noisy_fluorescence((size, size), seed=size)


class Check:
    """One run of the check: the budget, the seconds-per-pixel model of each preset and device, the
    rows' inputs and device outputs (kept for their CPU references)."""

    def __init__(self, args: argparse.Namespace, start: float) -> None:
        self.args, self.start = args, start
        self.device = args.device
        self.rates: dict[tuple, float] = {}  # (preset key, device) -> seconds per pixel and unit of work
        self.kept: dict[int, tuple[np.ndarray, np.ndarray, object, Run]] = {}  # row -> noisy, clean, preset, run

    def left(self) -> float:
        """Seconds of the budget left (less what the summary and the files keep)."""
        return self.args.budget - RESERVE - (time.perf_counter() - self.start)

    def rate(self, cfg, device: str) -> float | None:
        """Seconds per pixel and unit of work (:func:`_work`) of the last run of this preset on ``device``."""
        return self.rates.get((_rate_key(cfg), device))

    def _run(self, kind: str, data: np.ndarray, cfg, device: str, limit: float) -> Run:
        """A run (:func:`run_image` or :func:`run_stack`) that also updates the seconds-per-pixel model."""
        run = (run_image if kind == "slice" else run_stack)(data, cfg, device, limit)
        if kind == "stack" and run.slices:
            seconds, slices = run.seconds, run.slices
        elif run.stopped is None:
            seconds, slices = run.seconds, 1
        else:  # the whole run (one slice), projected
            seconds, slices = run.clock.projected or run.clock.elapsed(), 1
        pixels = data.shape[-1] * data.shape[-2]
        self.rates[(_rate_key(cfg), device)] = seconds / max(pixels * _work(cfg, slices), 1.0)
        return run

    def measure(self, i: int, row: dict, limit: float) -> None:
        """Row ``i`` on the device within ``limit`` seconds (a slice under 10 s: ``--repeat`` runs, the
        median), into ``row``; its input and output are kept for its reference."""
        cfg = preset_config(row["preset"])
        kind = row["kind"]
        noisy, clean = make_input(kind, row["size"], row["slices"])
        run = self._run(kind, noisy, cfg, self.device, limit - (time.perf_counter() - row.pop("_t0")))
        if kind == "slice" and run.stopped is None and run.seconds < REPEAT_UNDER:
            times, peaks = [run.seconds], [run.peak_mb]
            while len(times) < self.args.repeat and sum(times) + run.seconds < min(limit, self.left()):
                again = run_image(noisy, cfg, self.device, limit)
                if again.stopped is not None:
                    break
                times.append(again.seconds)
                peaks.append(again.peak_mb)
            row.update(seconds_runs=times, first_run_seconds=times[0])
            run.seconds = float(np.median(times))
            run.peak_mb = None if run.peak_mb is None else max(peaks)
        row.update(seconds=run.seconds, peak_gpu_mb=run.peak_mb, info=run.info)
        if kind == "stack":
            row.update(slices_done=run.slices, slice_seconds=run.slice_seconds,
                       seconds_per_slice=run.seconds / run.slices if run.slices else None)
        elif run.stopped is None:
            row["seconds_per_slice"] = run.seconds
        if cfg.kind == "variational":  # a finished fit: all its seconds over its iterations; else the live rate
            done = run.stopped is None and kind == "slice" and run.info.get("iterations")
            row["seconds_per_iteration"] = run.seconds / run.info["iterations"] if done else run.clock.rate
        if run.stopped is not None:
            retried = cfg.kind == "variational" and run.clock.total > cfg.iterations  # a redone fit adds a cold one
            row["stopped"] = run.stopped + ("; the engine had redone the fit (it had not converged)" if retried else "")
            if run.denoised is None and run.clock.projected:
                row["projected_seconds"] = run.clock.projected
        if run.denoised is not None:
            row["psnr_db"] = psnr_db(run.denoised, clean[: len(run.denoised)] if kind == "stack" else clean)
        self.kept[i] = (noisy, clean, cfg, run)

    def reference(self, i: int, limit: float) -> dict:
        """The CPU reference of row ``i`` at the same seed: the whole input where it fits ``limit`` (a
        stack: its first slices), else the largest centre crop that does, then the device on that crop."""
        noisy, clean, cfg, run = self.kept[i]
        kind = "stack" if noisy.ndim == 3 else "slice"
        if kind == "stack":
            m = min(REF_SLICES, run.slices) or min(REF_SLICES, len(noisy))
            noisy, clean = noisy[:m], clean[:m]
            dev_full = run.denoised[:m] if run.slices else None
        else:
            m, dev_full = 1, run.denoised
        size = noisy.shape[-1]
        t0 = time.perf_counter()

        def budget() -> float:
            return min(limit - (time.perf_counter() - t0), self.left())

        tried: list[str] = [] if dev_full is not None else [f"{size}x{size}: not finished on the device"]
        cpu = chosen = None
        candidates = [*([None] if dev_full is not None else []), *(c for c in CROPS if c < size)]
        for c in candidates:
            if budget() <= 0.05:
                break
            side, rate, last = (size if c is None else c), self.rate(cfg, "cpu"), c == candidates[-1]
            allowed = budget() * (1.0 if last else 0.7)  # a larger input leaves 30 % to the smaller ones
            estimate = None if rate is None else rate * side * side * _work(cfg, m)
            if estimate is not None and estimate > 1.2 * allowed and not last:
                tried.append(f"{side}x{side}: projected {estimate:.1f} s")
                continue
            cpu = self._run(kind, centre(noisy, c), cfg, "cpu", allowed)
            if cpu.stopped is None:
                chosen = c
                break
            tried.append(f"{side}x{side}: {cpu.stopped}")
            cpu = None
        if cpu is None:
            return {"input": None, "skipped": "no CPU reference fits: " + "; ".join(tried or ["no time left"])}
        side = size if chosen is None else chosen
        label = (f"first {m} slices, " if kind == "stack" else "") + ("whole" if chosen is None else "centre crop")
        ref = {"input": f"{label} {side}x{side}", "crop": chosen, "slices": m, "cpu_seconds": cpu.seconds}
        if tried:
            ref["larger_inputs_not_fitting"] = tried
        if chosen is None and kind != "stack":
            dev_out = dev_full
        else:  # the device denoises the same crop (a stack's first slices: their own neighbours)
            dev = self._run(kind, centre(noisy, chosen), cfg, self.device, max(budget(), 0.1) + cpu.seconds)
            if dev.stopped is not None:
                return {**ref, "skipped": f"the device on the reference input: {dev.stopped}"}
            ref.update(device_seconds=dev.seconds, device_peak_mb=dev.peak_mb)
            dev_out = dev.denoised
        return {**ref, **agreement(dev_out, cpu.denoised, centre(clean, chosen))}


def _cmd(args: list[str], timeout: float = 30) -> str | None:
    """The output of a command, or None where it is absent or fails."""
    if shutil.which(args[0]) is None:
        return None
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info(device: str) -> dict:
    """The GPU (``nvidia-smi``, torch's view of it), the CPU's cores, torch, CUDA and cuDNN versions."""
    torch = _torch()
    smi = _cmd(["nvidia-smi"])
    print("nvidia-smi:", "not found (or it failed)" if smi is None else "\n" + smi)
    info: dict = {"nvidia_smi": smi, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                  "torch": torch.__version__, "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                  "cuda_available": torch.cuda.is_available(),
                  "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                  "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                  "cudnn_benchmark": torch.backends.cudnn.benchmark}
    query = _cmd(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"])
    info["nvidia_smi_query"] = query
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_gib=p.total_memory / 2**30, capability=f"{p.major}.{p.minor}",
                    multiprocessors=p.multi_processor_count)
    print(f"CPU: {os.cpu_count()} cores, {info['torch_threads']} torch threads; torch {info['torch']}, CUDA "
          f"{info['cuda']}, cuDNN {info['cudnn']}, CUDA available: {info['cuda_available']} ({info['gpus']} GPU(s))"
          + (f"; {info['gpu']}, {info['gpu_memory_gib']:.1f} GiB, compute capability {info['capability']}, "
             f"{info['multiprocessors']} SMs" if "gpu" in info else "")
          + f"; TF32 matmul {info['tf32_matmul']}, cuDNN TF32 {info['tf32_cudnn']}", flush=True)
    return info


def run_tests(files: list[str], timeout: float) -> dict:
    """``pytest -q -k cuda`` on ``files`` in a child process: its output printed, its summary returned."""
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        print(f"\nCUDA tests: not run: pytest is not installed for {sys.executable}", flush=True)
        return {"command": None, "returncode": None, "summary": "not run: pytest is not installed", "seconds": 0.0,
                "output_tail": ""}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xvfb", "--disable-warnings",
           "-k", "cuda", *files]
    print(f"\nCUDA tests: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(timeout, 1.0))
        text, rc = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired as error:
        text = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        text, rc = text + f"\ntimed out after {timeout:.0f} s", None
    print(text.rstrip(), flush=True)
    lines = [line.strip("= ") for line in text.splitlines() if line.strip()]
    words = ("passed", "failed", "skipped", "error", "deselected", "no tests ran", "timed out")
    summary = next((line for line in reversed(lines) if any(w in line for w in words)), "no summary line")
    return {"command": " ".join(cmd[1:]), "returncode": rc, "summary": summary,
            "seconds": time.perf_counter() - t0, "output_tail": text[-6000:]}


def plan(presets: list[str], sizes: list[int], stack: int, stack_size: int) -> list[tuple[str, str, int, int]]:
    """The rows in order: (preset, ``slice`` or ``stack``, size, slices): the ensemble presets first (the
    first size, the stack, the larger sizes), then the variational ones in the same order."""
    cases = [("slice", sizes[0], 1)] if sizes else []
    cases += [("stack", stack_size, stack)] if stack > 0 else []
    cases += [("slice", s, 1) for s in sizes[1:]]
    ensemble = [p for p in presets if preset_config(p).kind != "variational"]
    fits = [p for p in presets if preset_config(p).kind == "variational"]
    return [(p, kind, size, n) for group in (ensemble, fits) for kind, size, n in cases for p in group]


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_row(row: dict) -> None:
    """One row of the device table as printed."""
    if "skipped" in row:
        print(f"{row['name']:44s} skipped: {row['skipped']}", flush=True)
        return
    print(f"{row['name']:44s} {row['seconds']:9.3f} {_fmt(row.get('seconds_per_slice'), '9.3f'):>9s} "
          f"{_fmt(row.get('psnr_db'), '7.2f'):>7s} {_fmt(row.get('peak_gpu_mb'), '9.0f'):>9s} "
          f"{_fmt(row.get('seconds_per_iteration'), '8.4f'):>8s}", flush=True)
    if "stopped" in row:
        print(f"    stopped: {row['stopped']}", flush=True)


def print_reference(row: dict) -> None:
    """One row's CPU reference as printed."""
    ref = row.get("reference") or {}
    if not ref or "skipped" in ref:
        print(f"{row['name']:44s} {ref.get('input') or ''} skipped: {ref.get('skipped', 'no device result')}",
              flush=True)
        return
    vs = "identical" if ref["identical"] else f"{ref['psnr_device_vs_cpu_db']:.2f}"
    dev = _fmt(ref.get("device_seconds"), ".2f", "(row)")
    print(f"{row['name']:44s} {ref['input']:28s} {ref['cpu_seconds']:7.2f} {dev:>7s} {vs:>9s} "
          f"{ref['max_abs_diff']:9.3g} {ref['psnr_device_db']:8.3f} {ref['psnr_cpu_db']:8.3f} {ref['dpsnr_db']:+8.4f}",
          flush=True)


def targets(rows: list[dict], device: str) -> list[dict]:
    """The targets of issue 39, each with the figure it is judged on and PASS / FAIL / not measured."""
    found = {(r["preset"], r["kind"], r["size"]): r for r in rows}
    out = []

    def add(what: str, value: float | None, limit: float, unit: str) -> None:
        verdict = "not measured" if value is None else ("PASS" if abs(value) <= limit else "FAIL")
        out.append({"target": what, "value": value, "limit": limit, "verdict": verdict})
        print(f"  {what}: {_fmt(value, '.3f', 'not measured')} {unit} (target <= {limit:g}): {verdict}")

    print(f"\ntargets (issue 39), device {device}:")
    fast, stack = found.get(("fast", "slice", 512), {}), found.get(("fast", "stack", 512), {})
    add("fast, one 512x512 slice (denoise, posterior std), seconds", fast.get("seconds_per_slice"),
        TARGETS["fast_512_seconds"], "s")
    add("fast, 512x512 stack (stack loop, no posterior std), seconds per slice", stack.get("seconds_per_slice"),
        TARGETS["fast_512_seconds"], "s")
    var = found.get(("variational", "slice", 512), {})
    whole = var.get("seconds_per_slice") or var.get("projected_seconds")
    add("variational, one 512x512 slice, seconds" + (" (projected)" if "projected_seconds" in var else ""), whole,
        TARGETS["variational_512_seconds"], "s")
    for r in rows:
        ref = r.get("reference") or {}
        add(f"{r['name']}: |dPSNR| device - CPU ({ref.get('input') or 'no reference'})", ref.get("dpsnr_db"),
            TARGETS["dpsnr_db"], "dB")
    return out


def run(args: argparse.Namespace) -> None:
    """``python -m benchmarks gpu``: writes ``gpu.json`` and ``gpu.log``."""
    start = time.perf_counter()
    torch = _torch()
    threads = torch.get_num_threads()
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        _run_check(args, start)
    finally:
        torch.set_num_threads(threads)


def _run_check(args: argparse.Namespace, start: float) -> None:
    torch = _torch()
    smoke = SMOKE if args.smoke else {}
    presets = args.presets or smoke.get("presets") or list(PRESETS)
    sizes = args.sizes or smoke.get("sizes") or list(SIZES)
    stack = args.stack if args.stack is not None else smoke.get("stack", STACK)
    stack_size = args.stack_size or smoke.get("stack_size") or STACK_SIZE
    args.repeat = args.repeat or smoke.get("repeat") or 3
    from napari_scoredvi.engine.devices import resolve_device

    try:
        resolve_device(args.device)
    except (ValueError, RuntimeError) as error:
        raise SystemExit(f"python -m benchmarks gpu: {error} (--device cpu for a run on the CPU)") from None
    title = f"GPU check, device {args.device}"
    with Report("gpu", args.results, title, torch.get_num_threads()) as report:
        data = report.data
        partial = report.path(".json.tmp")

        def save() -> None:
            write_json(partial, {**report.header, "title": title, **data})

        data["settings"] = {"device": args.device, "presets": presets, "sizes": sizes, "stack": stack,
                            "stack_size": stack_size, "repeat": args.repeat, "budget_s": args.budget,
                            "row_seconds": args.row_seconds, "ref_seconds": args.ref_seconds, "seed": SEED,
                            "smoke": args.smoke, "argv": sys.argv[1:]}
        data["machine_info"] = machine_info(args.device)
        data["tests"] = None if args.no_tests else run_tests(args.tests, min(150.0, args.budget / 3))
        if data["tests"] is not None:
            print(f"CUDA tests: {data['tests']['summary']} (exit status {data['tests']['returncode']})")
        save()
        print(f"\nwarm-up on {args.device}: each preset on a {WARM_UP}x{WARM_UP} slice (not timed)", flush=True)
        small = make_input("slice", WARM_UP, 1)[0]
        for spec in presets:
            cfg = preset_config(spec)
            try:
                short = dataclasses.replace(cfg, iterations=3, warm_iterations=2) if cfg.kind == "variational" else cfg
                run_image(small, short, args.device, 30.0)
            except Exception as error:  # the rows will say more; the warm-up's error is printed
                print(f"  {spec}: {type(error).__name__}: {error}", flush=True)
        check = Check(args, start)
        planned = plan(presets, sizes, stack, stack_size)
        rows = data["rows"] = [{"name": row_name(*p), "preset": p[0], "kind": p[1], "size": p[2], "slices": p[3]}
                               for p in planned]
        kept_for_refs = REF_SHARE * check.left()
        print(f"\n{len(rows)} rows on {args.device}, {check.left() - kept_for_refs:.0f} s of the budget for them "
              f"({kept_for_refs:.0f} s kept for the CPU references): seconds (a slice under {REPEAT_UNDER:g} s: the "
              f"median of {args.repeat} runs), seconds per slice, PSNR (dB) against the truth, peak GPU memory (MB), "
              "seconds per iteration (variational)", flush=True)
        print(f"{'row':44s} {'seconds':>9s} {'s/slice':>9s} {'PSNR':>7s} {'peak MB':>9s} {'s/iter':>8s}")
        for i, row in enumerate(rows):
            share = (check.left() - kept_for_refs) / (len(rows) - i)
            if share < MIN_SHARE:
                row["skipped"] = f"budget spent: {check.left():.0f} s left, {kept_for_refs:.0f} s of it for references"
            else:
                row["_t0"] = time.perf_counter()
                try:
                    check.measure(i, row, min(args.row_seconds, share))
                except Exception as error:  # one row's failure (e.g. out of GPU memory) is recorded; the next runs
                    row.pop("_t0", None)
                    row.update(skipped=f"error: {type(error).__name__}: {error}",
                               traceback=traceback.format_exc()[-3000:])
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
            print_row(row)
            save()
        print(f"\nCPU references at the same seed (the whole input, else the largest centre crop that fits "
              f"{args.ref_seconds:g} s, then run on {args.device} too): seconds on the CPU and on the device, PSNR "
              "(dB) of the device's result against the CPU's, max |difference|, PSNR against the truth of each, "
              "dPSNR = device - CPU", flush=True)
        print(f"{'row':44s} {'input':28s} {'CPU s':>7s} {'dev s':>7s} {'vs CPU':>9s} {'max|diff|':>9s} "
              f"{'dev PSNR':>8s} {'CPU PSNR':>8s} {'dPSNR':>8s}")
        todo = [i for i in check.kept]
        for n_left, i in zip(range(len(todo), 0, -1), todo):
            share = check.left() / n_left
            if share < 1.0:
                rows[i]["reference"] = {"input": None, "skipped": f"budget spent: {check.left():.0f} s left"}
            else:
                try:
                    rows[i]["reference"] = check.reference(i, min(args.ref_seconds, share))
                except Exception as error:  # recorded in the row; the next runs
                    rows[i]["reference"] = {"input": None, "skipped": f"error: {type(error).__name__}: {error}",
                                            "traceback": traceback.format_exc()[-3000:]}
            print_reference(rows[i])
            save()
        data["targets"] = targets(rows, args.device)
        data["seconds"] = time.perf_counter() - start
        print(f"\n{data['seconds']:.0f} s in all (budget {args.budget:.0f} s)")
    partial.unlink(missing_ok=True)
