"""What an output store records about how it was made: the run's parameters (which a resume must
match), one record per slice, and one entry per run with its status.

The provenance lives in the store's group attributes (``attrs["napari_scoredvi"]``, docs/tutorials/first-batch-run.md).
Its life: ``created`` -> ``running`` -> ``complete`` | ``partial`` (some slices not asked for) |
``interrupted`` (cancelled or killed: resume it) | ``failed`` (a slice could not be denoised).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._version import __version__
from ..engine.result import DenoiseInfo
from ..engine.settings import DenoiseSettings
from ..io.read import Volume
from ..io.store import OutputStore, now
from .job import SliceJob

SAVE_EVERY_S = 2.0  # rewrite the provenance attributes at most this often during a run (and at its end)
#: the engine's account of a slice kept in its record (besides slice, status, seed, device, seconds, iterations)
RECORDED_INFO = ("lam", "noise_std", "diverged", "drifted", "retries", "warm_start", "photon_transfer",
                 "noise_correlated", "noise_lag1", "posterior_scale", "prior_set", "stabilised", "context",
                 "context_shifts", "context_weight")


def input_name(vol: Volume) -> str:
    """The input as a store records it: its file (resolved path), or ``"napari layer 'NAME'"``."""
    if vol.source:
        return str(Path(vol.source).resolve())
    return f"napari layer {vol.name!r}" if vol.name else ""


def run_parameters(job: SliceJob, vol: Volume) -> dict:
    """What must match for a resumed run to continue an earlier one."""
    s = job.settings
    params = {"input": job.input_path or input_name(vol), "input_shape": list(vol.array.shape),
              "input_dtype": str(vol.array.dtype), "axes": job.axes, "channel_axis": job.channel_axis,
              "preset": s.preset.as_dict(), "seed": s.seed, "lam": s.lam, "outputs": list(job.outputs),
              "warm_start": s.warm_starts}
    if s.priors != "auto":  # stores made before the choice existed used "auto" and stay resumable
        params["priors"] = s.priors
    if job.rgb:  # likewise: only RGB runs, which did not exist before, record it
        params["rgb"] = True
    if s.stack_context and not job.rgb:  # likewise: stores of slice-by-slice runs stay resumable
        params["context"] = s.stack_context
        params["context_axis"] = job.context_letter
    return params


def new_store_meta(job: SliceJob, vol: Volume, params: dict) -> dict:
    """The provenance of a store about to be created."""
    return {"version": __version__, "command": "denoise", "parameters": params, "device": job.settings.device,
            "scale": vol.scale, "units": vol.units, "slice_axes": "".join(job.axes[d] for d in job.grid.grid_axes),
            "n_slices": job.grid.count, "started": now(), "finished": None, "status": "created", "slices": {},
            "runs": []}


def slice_record(job: SliceJob, k: int, info: DenoiseInfo) -> dict:
    """Slice ``k``'s record: where it is, its seed, and what the engine did to it."""
    record = {"slice": job.label(k), "status": "done", "seed": job.settings.seed + k, "device": info.device,
              "seconds": round(float(info.seconds), 3), "iterations": info.iterations}
    if info.skipped:
        record["skipped"] = info.skipped
        return record
    values = info.as_dict()
    record.update((key, values[key]) for key in RECORDED_INFO)
    return record


def layer_provenance(source: str, settings: DenoiseSettings, scope: str, n_slices: int,
                     store: OutputStore | None = None) -> dict:
    """What the napari widget records in an output layer's metadata (``layer.metadata["scoredvi"]``).

    warm_start is what the run does: False for a single slice, which has no neighbour to start from.
    """
    params = {"source": source, "preset": settings.preset.as_dict(), "device": settings.device,
              "seed": settings.seed, "scope": scope, "lam": "auto" if settings.lam is None else settings.lam,
              "warm_start": settings.warm_starts and n_slices > 1, "priors": settings.priors,
              "context": settings.stack_context,
              "version": __version__, "slices_done": []}
    if store is not None:
        params["store"] = str(store.path)
    return params


class Provenance:
    """The provenance of one run into ``store``, kept current as the run goes."""

    def __init__(self, store: OutputStore, job: SliceJob) -> None:
        self.store, self.job = store, job
        self.meta = store.meta
        self.slices: dict = self.meta.setdefault("slices", {})
        self._run: dict = {}
        self._last_save = 0.0

    def begin(self, resumed: bool, scheduler: str | None, todo: int) -> None:
        """A run starts (or resumes) with ``todo`` slices to do."""
        for k in np.flatnonzero(self.store.done()):  # finished but killed before its record was written
            self.slices.setdefault(str(k), {"slice": self.job.label(int(k)), "status": "done"})
        self._run = {"started": now(), "finished": None, "resumed": resumed, "scheduler": scheduler,
                     "slices_todo": todo}
        self.meta.setdefault("runs", []).append(self._run)
        self.meta["status"] = "running"
        self.store.save()
        self._last_save = time.monotonic()

    def slice_done(self, k: int, record: dict) -> None:
        self.slices[str(k)] = record
        if time.monotonic() - self._last_save > SAVE_EVERY_S:  # the done flags, not these records, drive resume
            self.store.save()
            self._last_save = time.monotonic()

    def slice_failed(self, k: int, error: str) -> None:
        self.slices[str(k)] = {"slice": self.job.label(k), "status": "failed", "error": error}

    def end(self, status: str) -> None:
        """The run ended with ``status``; ``complete`` also dates the store."""
        self.meta["status"] = status
        self._run["finished"] = now()
        if status == "complete":
            self.meta["finished"] = self._run["finished"]
        self.store.save()

    def end_status(self) -> str:
        """``complete`` when every slice of the store is done, else ``partial`` (a range was asked for)."""
        return "complete" if self.store.done().all() else "partial"
