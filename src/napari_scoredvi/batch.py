"""Batch pipeline: denoise every 2D slice of a TIFF/Zarr volume into an OME-Zarr store, resumably.

Output layout (zarr format 2, OME-NGFF 0.4 images)::

    OUTPUT/                 group; attrs["napari_scoredvi"]: provenance and per-slice status
      denoised/0            float32, input shape, one chunk per 2D Y-X slice
      noise_variance/0      float32, input units squared
      posterior_std/0       float32 (only with posterior_std=True)
      done                  uint8 (n_slices,), 1 once a slice's chunks are written

Slices go through the same loop as the napari widget (:mod:`.stack`): slice ``k`` is fitted with
seed ``seed + k``, warm-started from slice ``k - 1`` within chains of ``stack.CHAIN`` slices. Each
chain is one dask task: read a slice, denoise it, write its chunks, then set its ``done`` flag. A
resumed run redoes the slices whose flag is unset (refitting, without writing, the finished slices
of their chain that warm-start them), so it gives the same arrays as an uninterrupted run.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dask
import numpy as np

try:
    import zarr
except ImportError as exc:  # zarr 3 needs Python 3.11; the engine itself runs on 3.10
    raise ImportError(
        "the batch pipeline needs zarr >= 3 (Python >= 3.11): upgrade Python, then pip install 'zarr>=3'"
    ) from exc

from . import __version__
from .devices import resolve_device
from .image_in import as_channels_first
from .presets import Preset, get_preset
from .stack import SliceError, chain_start, denoise_stack_steps
from .volume_in import Volume, open_volume

ATTRS_KEY = "napari_scoredvi"
OUTPUTS = ("denoised", "noise_variance")
SAVE_EVERY_S = 2.0  # rewrite the provenance attributes at most this often during a run (and at its end)
#: Called as ``progress(done, total, record)``: once at the start with ``record=None``, then after each slice.
BatchProgress = Callable[[int, int, "dict | None"], object]
#: Called as ``step_progress(slice, step, total)`` after each iteration of a slice's fit (``slice``: its
#: position, e.g. ``{"Z": 3}``; slices refitted only to warm-start the next are reported too).
StepProgress = Callable[[dict, int, int], object]

_AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


@dataclass(frozen=True)
class SliceJob:
    """Everything a worker needs to denoise slice ``k`` (picklable; no open files)."""

    input_path: str
    axes: str
    output_path: str
    outputs: tuple[str, ...]
    grid_axes: tuple[int, ...]  # dimensions iterated over, in input order
    grid_shape: tuple[int, ...]
    channel_axis: int | None  # input dimension denoised jointly as channels, or None
    preset: Preset
    device: str
    seed: int
    lam: float | None
    warm_start: bool = True

    def index(self, k: int) -> tuple:
        """The input index (ints on iterated axes, full slices elsewhere) of slice number ``k``."""
        pos = np.unravel_index(k, self.grid_shape) if self.grid_shape else ()
        idx: list = [slice(None)] * len(self.axes)
        for dim, i in zip(self.grid_axes, pos):
            idx[dim] = int(i)
        return tuple(idx)

    def label(self, k: int) -> dict[str, int]:
        """Slice position by axis letter, e.g. ``{"T": 0, "Z": 3}``."""
        pos = np.unravel_index(k, self.grid_shape) if self.grid_shape else ()
        return {self.axes[d]: int(i) for d, i in zip(self.grid_axes, pos)}


@functools.lru_cache(maxsize=4)
def _open_cached(path: str, axes: str) -> Volume:
    return open_volume(path, axes)


def _slices(job: SliceJob, numbers: list[int], step_progress: StepProgress | None = None,
            ) -> Generator[tuple[int, dict], None, None]:
    """Denoise slices ``numbers`` through the shared stack loop; yield ``(k, record)`` once each is
    written. A failing slice raises :class:`~napari_scoredvi.stack.SliceError`."""
    vol = _open_cached(job.input_path, job.axes)
    out = zarr.open_group(job.output_path, mode="r+")

    def read(k: int) -> np.ndarray:
        return np.asarray(vol.array[job.index(k)].compute(scheduler="synchronous"))

    def write(k: int, r) -> None:
        idx = job.index(k)
        for name in job.outputs:
            out[f"{name}/0"][idx] = getattr(r, name)
        out["done"][k] = 1  # only after the data: a killed run leaves the flag unset

    # the kept axes are in input order and Y, X are last, so a channel axis lands at position 0
    loop = denoise_stack_steps(read, numbers, write, channel_axis=None if job.channel_axis is None else 0,
                               preset=job.preset, device=job.device, seed=job.seed, lam=job.lam,
                               warm_start=job.warm_start, posterior_std="posterior_std" in job.outputs)
    for event in loop:
        if event["kind"] == "slice":
            yield event["slice"], _record(job, event["slice"], event["info"])
        elif step_progress is not None:
            step_progress(job.label(event["slice"]), event["step"], event["total"])


def _record(job: SliceJob, k: int, info: dict) -> dict:
    record = {"slice": job.label(k), "status": "done", "seed": job.seed + k, "device": info["device"],
              "seconds": round(float(info["seconds"]), 3), "iterations": info["iterations"]}
    for key in ("lam", "noise_std", "skipped", "diverged", "retries", "warm_start", "photon_transfer",
                "noise_correlated"):
        if key in info:
            record[key] = info[key]
    return record


def run_chain(job: SliceJob, numbers: list[int]) -> list[tuple[int, dict]]:
    """Denoise and write the slices ``numbers`` of one warm-start chain (a dask task)."""
    return list(_slices(job, numbers))


def denoise_volume(
    input_path: str | Path,
    output_path: str | Path,
    axes: str | None = None,
    channel_axis: int | None = None,
    preset: str | Preset = "balanced",
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    scheduler=None,
    progress: BatchProgress | None = None,
    posterior_std: bool = False,
    lam: float | None = None,
    warm_start: bool = True,
    step_progress: StepProgress | None = None,
) -> Path:
    """Denoise every 2D Y-X slice of a TIFF/Zarr volume; write an OME-Zarr store; return its path.

    axes: one letter per input dimension (e.g. ``"ZYX"``, ``"TZCYX"``), needed only where the file's
    metadata does not give them; the last two must be Y and X. channel_axis: an input dimension to
    denoise jointly as channels (default: every non-Y/X axis, channels included, is iterated and each
    2D slice is denoised alone). resume: keep the slices an earlier run finished and do the rest.
    overwrite: delete an existing output first. scheduler: None runs here, one slice at a time; a
    ``dask.distributed`` scheduler address (or Client) runs the slices on its workers, which must see
    the same filesystem. posterior_std: also write the posterior standard deviation. warm_start:
    start each slice's fit from the previous slice's networks (see :mod:`.stack`); False fits every
    slice from scratch (slower; for stacks whose neighbouring slices do not look alike).
    progress / step_progress: see :data:`BatchProgress` and :data:`StepProgress` (the latter only
    without a scheduler).

    The input is checked before any output is written or deleted: its axes, dtype and size, and its
    first slice's values (a first slice with NaN/Inf or too few pixels raises ValueError). Another
    slice with bad values stops the run there, keeping the finished slices (RuntimeError).
    """
    if resume and overwrite:
        raise ValueError("choose either --resume or --overwrite, not both")
    cfg = get_preset(preset)
    if scheduler is None:
        resolve_device(device)  # fail now, not at the first slice, if the device is absent
    vol = open_volume(input_path, axes)
    in_path, out_path = Path(input_path).resolve(), Path(output_path).resolve()
    _check_paths(in_path, out_path)
    job = _make_job(vol, in_path, out_path, channel_axis, cfg, device, seed, lam, posterior_std, warm_start)
    params = _parameters(job, vol)
    n = int(np.prod(job.grid_shape)) if job.grid_shape else 1
    _check_slice(job, vol, 0)

    if _exists(out_path):
        if not _is_store(out_path):
            raise FileExistsError(
                f"output {str(out_path)!r} already exists and is not a Zarr store, so it can be neither resumed "
                "nor replaced (napari-scoredvi deletes only Zarr stores); choose another output path, or move "
                "or delete it yourself if you do not need it"
            )
        if overwrite:
            _remove_store(out_path)
        elif not resume:
            raise FileExistsError(
                f"output {str(out_path)!r} already exists; use --resume to finish an interrupted run into it, "
                "or --overwrite to replace it"
            )
    resumed = _exists(out_path)
    if resumed:
        group, meta = _open_for_resume(out_path, params)
    else:
        try:
            group, meta = _create_store(out_path, vol, job, params, n)
        except OSError as exc:  # read-only filesystem, no permission, disk full
            raise OSError(f"cannot create the output {str(out_path)!r} ({exc.strerror or exc}); "
                          "choose an output path in a folder you can write to") from exc

    done = np.asarray(group["done"][:]).astype(bool)
    slices = meta.setdefault("slices", {})
    for k in np.flatnonzero(done):  # finished but killed before its record was written
        slices.setdefault(str(k), {"slice": job.label(int(k)), "status": "done"})
    todo = [int(k) for k in np.flatnonzero(~done)]
    run = {"started": _now(), "finished": None, "resumed": resumed,
           "scheduler": _scheduler_name(scheduler),
           "slices_todo": len(todo)}
    meta.setdefault("runs", []).append(run)
    meta["status"] = "running"
    _save(group, meta)
    n_done = n - len(todo)
    last_save, failed = time.monotonic(), False
    try:
        if progress is not None:
            progress(n_done, n, None)
        for k, record in _execute(job, todo, scheduler, step_progress):
            if isinstance(record, BaseException):
                error = f"{type(record).__name__}: {record}"
                slices[str(k)] = {"slice": job.label(k), "status": "failed", "error": error}
                failed = True
                where = " ".join(f"{ax}={i}" for ax, i in job.label(k).items())
                if where:
                    raise RuntimeError(f"slice {where} failed ({error}); the finished slices are kept: fix the "
                                       "problem and run again with --resume") from record
                raise RuntimeError(f"denoising failed ({error}); fix the problem and run again with "
                                   "--resume") from record
            slices[str(k)] = record
            n_done += 1
            if time.monotonic() - last_save > SAVE_EVERY_S:  # the done flags, not these records, drive resume
                _save(group, meta)
                last_save = time.monotonic()
            if progress is not None:
                progress(n_done, n, record)
        meta["status"] = "complete"
    except BaseException:
        meta["status"] = "failed" if failed else "interrupted"
        raise
    finally:
        run["finished"] = _now()
        if meta["status"] == "complete":
            meta["finished"] = run["finished"]
        _save(group, meta)
        _open_cached.cache_clear()
    return out_path


def _execute(job: SliceJob, todo: list[int], scheduler, step_progress: StepProgress | None = None,
             ) -> Generator[tuple[int, dict | BaseException], None, None]:
    """Yield ``(k, record)`` as slices finish, or ``(k, exception)`` for the slice that failed."""
    if scheduler is None:  # here, slice after slice, reporting each as it finishes
        try:
            yield from _slices(job, todo, step_progress)
        except SliceError as exc:
            yield exc.number, exc.__cause__ or exc
        return
    from distributed import Client, as_completed

    chains: dict[int, list[int]] = {}
    for k in todo:
        chains.setdefault(chain_start(k), []).append(k)
    tasks = [dask.delayed(run_chain, pure=False)(job, ks, dask_key_name=f"scoredvi-chain-{c}")
             for c, ks in chains.items()]
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.compute(tasks)
        first = {f.key: ks[0] for f, ks in zip(futures, chains.values())}
        try:
            for fut in as_completed(futures):
                try:
                    records = fut.result()
                except SliceError as exc:
                    yield exc.number, exc.__cause__ or exc
                    continue
                except Exception as exc:
                    yield first[fut.key], exc
                    continue
                yield from records
        finally:
            client.cancel(futures)
    finally:
        if client is not scheduler:
            client.close()


def _scheduler_name(scheduler) -> str | None:
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return str(getattr(getattr(scheduler, "scheduler", None), "address", type(scheduler).__name__))


def _make_job(vol: Volume, in_path: Path, out_path: Path, channel_axis, cfg: Preset, device, seed, lam,
              posterior_std: bool, warm_start: bool = True) -> SliceJob:
    ndim = len(vol.axes)
    if channel_axis is not None:
        ok = isinstance(channel_axis, (int, np.integer)) and -ndim <= channel_axis < ndim
        if not ok or not int(channel_axis) % ndim < ndim - 2:
            raise ValueError(
                f"channel_axis must name one of the non-Y/X dimensions of axes {vol.axes!r} "
                f"(0 to {ndim - 3}), got {channel_axis!r}"
            )
        channel_axis = int(channel_axis) % ndim
    grid_axes = tuple(d for d in range(ndim - 2) if d != channel_axis)
    outputs = OUTPUTS + (("posterior_std",) if posterior_std else ())
    return SliceJob(str(in_path), vol.axes, str(out_path), outputs, grid_axes,
                    tuple(int(vol.array.shape[d]) for d in grid_axes), channel_axis, cfg, str(device), int(seed), lam,
                    bool(warm_start))


def _parameters(job: SliceJob, vol: Volume) -> dict:
    """What must match for a resumed run to continue an earlier one."""
    return {"input": job.input_path, "input_shape": list(vol.array.shape), "input_dtype": str(vol.array.dtype),
            "axes": job.axes, "channel_axis": job.channel_axis, "preset": job.preset.as_dict(), "seed": job.seed,
            "lam": job.lam, "outputs": list(job.outputs), "warm_start": job.warm_start}


def _check_slice(job: SliceJob, vol: Volume, k: int) -> None:
    """Check slice ``k``'s values, size and dtype the way the engine will (ValueError/TypeError saying
    what to do), so that bad input is reported before any output exists."""
    where = " ".join(f"{ax}={i}" for ax, i in job.label(k).items())
    what = f"input {job.input_path!r}{', slice ' + where if where else ''}"
    try:
        plane = np.asarray(vol.array[job.index(k)].compute(scheduler="synchronous"))
    except Exception as exc:  # readers raise many types for an unreadable chunk
        raise ValueError(f"could not read {what} ({type(exc).__name__}: {exc}); check that the file is complete "
                         "and readable, e.g. by opening it in Fiji") from exc
    try:
        as_channels_first(plane, None if job.channel_axis is None else 0)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{what}: {exc}") from exc


def _check_paths(in_path: Path, out_path: Path) -> None:
    if out_path == in_path or in_path in out_path.parents or out_path in in_path.parents:
        raise ValueError(f"output {str(out_path)!r} must be outside the input {str(in_path)!r}; "
                         "the input is never written to")


def _exists(path: Path) -> bool:
    return path.exists() and not (path.is_dir() and not any(path.iterdir()))


def _is_store(path: Path) -> bool:
    return path.is_dir() and ((path / ".zgroup").exists() or (path / "zarr.json").exists())


def _remove_store(path: Path) -> None:
    if not _is_store(path):
        raise FileExistsError(f"output {str(path)!r} exists and is not a Zarr store; not deleting it with "
                              "--overwrite: remove it yourself or pick another output name")
    shutil.rmtree(path)


def _open_for_resume(path: Path, params: dict) -> tuple[zarr.Group, dict]:
    try:
        group = zarr.open_group(str(path), mode="r+")
        meta = dict(group.attrs[ATTRS_KEY])
        group["done"]
    except Exception as exc:
        raise ValueError(f"output {str(path)!r} is not a napari-scoredvi batch output, so it cannot be resumed; "
                         "use --overwrite to replace it or pick another output name") from exc
    old = meta.get("parameters", {})
    diff = sorted(key for key in params if old.get(key) != params[key])
    if diff:
        raise ValueError(f"cannot resume into {str(path)!r}: it was made with different {', '.join(diff)}; "
                         "use the same input and settings, or --overwrite to start again")
    return group, meta


def _create_store(path: Path, vol: Volume, job: SliceJob, params: dict, n: int) -> tuple[zarr.Group, dict]:
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    shape = tuple(int(s) for s in vol.array.shape)
    chunks = (1,) * (len(shape) - 2) + shape[-2:]
    for name in job.outputs:
        image = group.create_group(name)
        image.create_array("0", shape=shape, chunks=chunks, dtype="float32", fill_value=np.nan,
                           chunk_key_encoding={"name": "v2", "separator": "/"})
        image.attrs["multiscales"] = [_multiscale(name, vol)]
    group.create_array("done", shape=(n,), chunks=(1,), dtype="uint8", fill_value=0)
    meta = {"version": __version__, "command": "denoise", "parameters": params, "device": job.device,
            "scale": vol.scale, "units": vol.units, "slice_axes": "".join(job.axes[d] for d in job.grid_axes),
            "n_slices": n, "started": _now(), "finished": None, "status": "created", "slices": {}, "runs": []}
    _save(group, meta)
    return group, meta


def _multiscale(name: str, vol: Volume) -> dict:
    axes = []
    for letter in vol.axes:
        ax = {"name": letter.lower()}
        if letter in _AXIS_TYPES:
            ax["type"] = _AXIS_TYPES[letter]
        if letter in vol.units:
            ax["unit"] = vol.units[letter]
        axes.append(ax)
    return {"version": "0.4", "name": name, "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": vol.scale}]}]}


def _save(group: zarr.Group, meta: dict) -> None:
    group.attrs[ATTRS_KEY] = meta


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
