"""Stack runs: denoise every 2D slice of a volume into an OME-Zarr store, resumably, here or on a
dask.distributed cluster. The batch command (:func:`denoise_volume`, a TIFF/Zarr path in) and the
napari widget (a layer's data in) both go through :func:`prepare_run` and :meth:`StackRun.steps`.

The store's layout is in :mod:`.volume_out`. Slices go through the same loop as a single slice in
the widget (:func:`.stack.denoise_slices`): slice ``k`` is fitted with seed ``seed + k``,
warm-started from slice ``k - 1`` within chains of ``stack.CHAIN`` slices. On a cluster each chain
is one task: read a slice, denoise it, write its chunks, then set its ``done`` flag. A resumed run
redoes the slices whose flag is unset (refitting, without writing, the finished slices of their
chain that warm-start them), so it gives the same arrays as an uninterrupted run.

On a cluster, workers read the input by its path and write the store themselves when they see the
same files (a shared filesystem); otherwise the napari process sends them the slices and writes what
they send back (a laptop driving a lab GPU machine). Workers report each step through the
scheduler's event log (``scoredvi-<run>`` topic), and stop at their next step once the run's
``distributed.Event`` is set (cancel).
"""

from __future__ import annotations

import functools
import queue
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__
from .image_in import as_channels_first
from .settings import DenoiseSettings
from .slice_grid import SliceGrid
from .stack import CHAIN, _plan, chain_start, denoise_slices, read_slice
from .volume_in import Volume, open_volume
from .volume_out import (
    ATTRS_KEY,
    OUTPUTS,
    POSTERIOR_STD,
    OutputStore,
    create_store,
    is_store,
    now,
    open_store,
    remove_store,
    store_exists,
)

__all__ = ["ATTRS_KEY", "OUTPUTS", "StackRun", "denoise_volume", "prepare_run"]

SAVE_EVERY_S = 2.0  # rewrite the provenance attributes at most this often during a run (and at its end)
CONNECT_TIMEOUT_S = 10  # seconds to reach a dask scheduler
POLL_S = 0.1  # how often a cluster run looks for finished tasks and workers' progress
#: Called as ``progress(done, total, record)``: once at the start with ``record=None``, then after each slice.
BatchProgress = Callable[[int, int, "dict | None"], object]
#: Called as ``step_progress(slice, step, total)`` after each iteration of a slice's fit (``slice``: its
#: position, e.g. ``{"Z": 3}``; slices refitted only to warm-start the next are reported too).
StepProgress = Callable[[dict, int, int], object]


class RunCancelled(Exception):
    """A cluster task stopped because its run was cancelled."""


@dataclass(frozen=True)
class SliceJob:
    """Everything a worker needs to denoise slices of one run (picklable; no open files).

    input_path: where workers read the input ("" when the slices are sent with each task).
    write_here: workers write the output store themselves (else they return the slices' arrays).
    """

    input_path: str
    axes: str
    output_path: str
    outputs: tuple[str, ...]
    grid: SliceGrid
    channel_axis: int | None  # input dimension denoised jointly as channels, or None
    settings: DenoiseSettings
    run_id: str = ""
    write_here: bool = True

    def label(self, k: int) -> dict[str, int]:
        """Slice position by axis letter, e.g. ``{"T": 0, "Z": 3}``."""
        return self.grid.label(k, self.axes)

    def where(self, k: int) -> str:
        return " ".join(f"{ax}={i}" for ax, i in self.label(k).items())


@dataclass
class StackRun:
    """A prepared run: the input, the open output store, and the slice numbers still to do."""

    volume: Volume
    job: SliceJob
    store: OutputStore
    todo: list[int]
    resumed: bool
    n: int = field(init=False)

    def __post_init__(self) -> None:
        self.n = self.job.grid.count

    @property
    def path(self) -> Path:
        return self.store.path

    def steps(self, scheduler=None) -> Generator[dict, None, None]:
        """Run it, yielding events: ``{"kind": "start", "done", "total"}`` first, then
        ``{"kind": "step", "slice", "label", "step", "total"}`` per iteration and ``{"kind": "slice",
        "slice", "index", "record", "done", "total"}`` per slice written (on a cluster also ``{"kind":
        "idle"}`` while waiting for workers). Closing the generator stops
        the run (local: within an iteration; cluster: its tasks are cancelled and stop at their next
        step); the finished slices are kept. A failing slice raises RuntimeError naming it.

        scheduler: None runs here, one slice at a time; a ``dask.distributed`` scheduler address or
        Client runs the slices' chains on its workers.
        """
        meta, job = self.store.meta, self.job
        slices = meta.setdefault("slices", {})
        done = self.store.done()
        for k in np.flatnonzero(done):  # finished but killed before its record was written
            slices.setdefault(str(k), {"slice": job.label(int(k)), "status": "done"})
        run = {"started": now(), "finished": None, "resumed": self.resumed, "scheduler": _scheduler_name(scheduler),
               "slices_todo": len(self.todo)}
        meta.setdefault("runs", []).append(run)
        meta["status"] = "running"
        self.store.save()
        n_done = self.n - len(self.todo)
        last_save, failed = time.monotonic(), False
        try:
            yield {"kind": "start", "done": n_done, "total": self.n}
            source = _local(self) if scheduler is None else _on_cluster(self, scheduler)
            for event in source:
                if event["kind"] != "slice":
                    yield event
                    continue
                k, record = event["slice"], event["record"]
                if isinstance(record, BaseException):
                    error = f"{type(record).__name__}: {record}"
                    slices[str(k)] = {"slice": job.label(k), "status": "failed", "error": error}
                    failed = True
                    if job.where(k):
                        raise RuntimeError(f"slice {job.where(k)} failed ({error}); the finished slices are kept: "
                                           "fix the problem and run again with --resume") from record
                    raise RuntimeError(f"denoising failed ({error}); fix the problem and run again with "
                                       "--resume") from record
                slices[str(k)] = record
                n_done += 1
                if time.monotonic() - last_save > SAVE_EVERY_S:  # the done flags, not these records, drive resume
                    self.store.save()
                    last_save = time.monotonic()
                yield {"kind": "slice", "slice": k, "index": job.grid.position(k), "record": record,
                       "done": n_done, "total": self.n}
            # a run over some slices only (the widget's range) leaves the others to do
            meta["status"] = "complete" if self.store.done().all() else "partial"
        except BaseException:  # GeneratorExit (closed), KeyboardInterrupt, errors
            meta["status"] = "failed" if failed else "interrupted"
            raise
        finally:
            run["finished"] = now()
            if meta["status"] == "complete":
                meta["finished"] = run["finished"]
            self.store.save()
            _open_cached.cache_clear()


def prepare_run(
    volume: Volume,
    output_path: str | Path,
    settings: DenoiseSettings,
    channel_axis: int | None = None,
    posterior_std: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    numbers: Sequence[int] | None = None,
) -> StackRun:
    """Check the input, then create the output store (or open it to resume, or replace it).

    numbers: the slice numbers to do (default: all); those already done in a resumed store are skipped.

    The input is checked before any output is written or deleted: its axes, dtype and size, and its
    first slice's values (a first slice with NaN/Inf or too few pixels raises ValueError). An
    existing output raises FileExistsError unless ``resume`` (same input and settings, else
    ValueError naming what differs) or ``overwrite`` (only a Zarr store is ever deleted).
    """
    if resume and overwrite:
        raise ValueError("choose either --resume or --overwrite, not both")
    out_path = Path(output_path).resolve()
    in_path = Path(volume.source).resolve() if volume.source else None
    if in_path is not None:
        _check_paths(in_path, out_path)
    job = _make_job(volume, in_path, out_path, channel_axis, settings, posterior_std)
    params = _parameters(job, volume)
    _check_slice(job, volume, 0)

    if store_exists(out_path):
        if not is_store(out_path):
            raise FileExistsError(
                f"output {str(out_path)!r} already exists and is not a Zarr store, so it can be neither resumed "
                "nor replaced (napari-scoredvi deletes only Zarr stores); choose another output path, or move "
                "or delete it yourself if you do not need it"
            )
        if overwrite:
            remove_store(out_path)
        elif not resume:
            raise FileExistsError(
                f"output {str(out_path)!r} already exists; use --resume to finish an interrupted run into it, "
                "or --overwrite to replace it"
            )
    resumed = store_exists(out_path)
    if resumed:
        store = open_store(out_path, params)
    else:
        meta = {"version": __version__, "command": "denoise", "parameters": params, "device": job.settings.device,
                "scale": volume.scale, "units": volume.units,
                "slice_axes": "".join(job.axes[d] for d in job.grid.grid_axes), "n_slices": job.grid.count,
                "started": now(), "finished": None, "status": "created", "slices": {}, "runs": []}
        store = create_store(out_path, volume.array.shape, volume.axes, volume.scale, volume.units, job.outputs,
                             job.grid.count, meta)
    todo = [int(k) for k in np.flatnonzero(~store.done())]
    if numbers is not None:
        wanted = {int(k) for k in numbers}
        todo = [k for k in todo if k in wanted]
    return StackRun(volume, job, store, todo, resumed)


def denoise_volume(
    input_path: str | Path,
    output_path: str | Path,
    settings: DenoiseSettings | None = None,
    axes: str | None = None,
    channel_axis: int | None = None,
    posterior_std: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    scheduler=None,
    progress: BatchProgress | None = None,
    step_progress: StepProgress | None = None,
) -> Path:
    """Denoise every 2D Y-X slice of a TIFF/Zarr volume; write an OME-Zarr store; return its path.

    settings: preset, device, seed, prior weight, warm starts (default: ``DenoiseSettings()``,
    the ``balanced`` preset). axes: one letter per input dimension (e.g. ``"ZYX"``, ``"TZCYX"``),
    needed only where the file's metadata does not give them; the last two must be Y and X.
    channel_axis: an input dimension to denoise jointly as channels (default: every non-Y/X axis,
    channels included, is iterated and each 2D slice is denoised alone). posterior_std: also write
    the posterior standard deviation. resume: keep the slices an earlier run finished and do the
    rest. overwrite: delete an existing output first. scheduler: None runs here, one slice at a
    time; a ``dask.distributed`` scheduler address (or Client) runs the slices on its workers.
    progress / step_progress: see :data:`BatchProgress` and :data:`StepProgress`.

    Bad input raises before any output exists (see :func:`prepare_run`); another slice with bad
    values stops the run there, keeping the finished slices (RuntimeError).
    """
    settings = settings or DenoiseSettings()
    if scheduler is None:
        from .devices import resolve_device

        resolve_device(settings.device)  # fail now, not at the first slice, if the device is absent
    vol = open_volume(input_path, axes)
    run = prepare_run(vol, output_path, settings, channel_axis, posterior_std, resume, overwrite)
    events = run.steps(scheduler)
    try:
        for event in events:
            if event["kind"] == "start":
                if progress is not None:
                    progress(event["done"], event["total"], None)
            elif event["kind"] == "slice":
                if progress is not None:
                    progress(event["done"], event["total"], event["record"])
            elif event["kind"] == "step" and step_progress is not None:
                step_progress(event["label"], event["step"], event["total"])
    finally:
        events.close()
    return run.path


# -- the work: here, or as chains on a cluster ----------------------------------------------------

@functools.lru_cache(maxsize=4)
def _open_cached(path: str, axes: str) -> Volume:
    return open_volume(path, axes)


def _slice_events(job: SliceJob, data, numbers: list[int], outputs: dict, done,
                  ) -> Generator[dict, None, None]:
    """Denoise slices ``numbers`` of ``data`` into ``outputs``; yield step events and ``{"kind":
    "slice", "slice": k, "record": ...}`` once each is written (a failed slice: record = its error)."""
    gen = denoise_slices(data, job.grid, numbers, outputs, job.settings, done=done)
    try:
        while True:
            event = next(gen)
            k = event["slice"]
            if event["kind"] == "slice":
                yield {"kind": "slice", "slice": k, "record": _record(job, k, event["info"])}
            else:
                yield {"kind": "step", "slice": k, "label": job.label(k), "step": event["step"],
                       "total": event["total"]}
    except StopIteration as stop:
        result = stop.value
    finally:
        gen.close()
    if result["failed"] is not None:
        yield {"kind": "slice", "slice": result["failed"], "record": result["exception"]}


def _local(run: StackRun) -> Generator[dict, None, None]:
    yield from _slice_events(run.job, run.volume.array, run.todo, run.store.arrays(), run.store.done_flags)


class _Returned(dict):
    """Output "array" of a worker that sends its slices back: keeps each slice by grid position."""

    def __setitem__(self, idx, value) -> None:
        key = tuple(i for i in idx if isinstance(i, int)) if isinstance(idx, tuple) else (idx,)
        super().__setitem__(key, np.array(value))


def run_chain(job: SliceJob, numbers: list[int], planes: dict[int, np.ndarray] | None = None,
              ) -> list[tuple[int, dict | BaseException, dict | None]]:
    """A cluster task: denoise the slices ``numbers`` of one warm-start chain.

    planes: the slices (by number, including those that only warm-start the next), when the input
    is not read by path. Returns ``(k, record or error, arrays or None)`` per slice: ``arrays``
    (output name -> 2D array) when the job does not write the store here.
    """
    from distributed import Event, get_worker

    try:
        worker = get_worker()
    except ValueError:  # called outside a worker (tests)
        worker = None
    cancel = Event(f"scoredvi-cancel-{job.run_id}") if worker is not None and job.run_id else None
    topic = f"scoredvi-{job.run_id}"
    if planes is not None:
        data = _Planes(job.grid, planes)
    else:
        data = _open_cached(job.input_path, job.axes).array
    if job.write_here:
        import zarr

        group = zarr.open_group(job.output_path, mode="r+")
        outputs, done = {name: group[f"{name}/0"] for name in job.outputs}, group["done"]
    else:
        outputs, done = {name: _Returned() for name in job.outputs}, None
    results: list = []
    last_check = 0.0
    for event in _slice_events(job, data, numbers, outputs, done):
        if event["kind"] == "step":
            if worker is not None:
                worker.log_event(topic, {"slice": event["slice"], "step": event["step"], "total": event["total"]})
            if cancel is not None and time.monotonic() - last_check > 0.5:  # a scheduler round trip
                last_check = time.monotonic()
                if cancel.is_set():
                    raise RunCancelled(f"run {job.run_id} cancelled")
            continue
        k, record = event["slice"], event["record"]
        arrays = None
        if not job.write_here and not isinstance(record, BaseException):
            position = job.grid.position(k)
            arrays = {name: outputs[name].pop(position) for name in job.outputs}
        elif worker is not None and not isinstance(record, BaseException):  # written: say so now
            worker.log_event(topic, {"kind": "slice", "slice": k, "record": record})
        results.append((k, record, arrays))
    return results


class _Planes:
    """The slices a task was sent, indexable like the input array by :meth:`SliceGrid.index`."""

    def __init__(self, grid: SliceGrid, planes: dict[int, np.ndarray]) -> None:
        self._by_position = {grid.position(k): v for k, v in planes.items()}
        self._grid_axes = grid.grid_axes

    def __getitem__(self, idx: tuple) -> np.ndarray:
        return self._by_position[tuple(idx[d] for d in self._grid_axes)]


def _on_cluster(run: StackRun, scheduler) -> Generator[dict, None, None]:
    """Run the chains of ``run.todo`` on a dask.distributed cluster; yield events as locally."""
    from distributed import Client, Event

    if isinstance(scheduler, Client):
        client = scheduler
    else:
        # not the process's default dask scheduler: napari's own dask layers must keep computing here
        try:
            client = Client(scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"could not connect to the dask scheduler at {scheduler!r} ({exc}); check the address "
                          "and that `dask scheduler` runs there (docs/napari.md), or run on this computer") from exc
    run_id = uuid.uuid4().hex[:12]
    topic = f"scoredvi-{run_id}"
    reports: queue.SimpleQueue = queue.SimpleQueue()
    futures: list = []
    cancel = Event(f"scoredvi-cancel-{run_id}", client=client)
    try:
        job = run.job
        reads_path = bool(job.input_path) and _workers_see(client, job.input_path, _fingerprint(job.input_path))
        writes_here = _workers_see(client, str(run.path), _fingerprint(str(run.path)))
        job = replace(job, run_id=run_id, write_here=writes_here, input_path=job.input_path if reads_path else "")
        client.subscribe_topic(topic, reports.put)
        chains: dict[int, list[int]] = {}
        for k in run.todo:
            chains.setdefault(chain_start(k), []).append(k)
        for c, ks in chains.items():
            planes = None
            if not reads_path:  # sent slice by slice: each plane is its own piece of data on the cluster
                fitted = [j for j, _ in _plan(ks, CHAIN, job.settings.warm_start)]
                planes = {j: client.scatter(read_slice(run.volume.array, job.grid.index(j))) for j in fitted}
            futures.append(client.submit(run_chain, job, ks, planes, key=f"scoredvi-{run_id}-chain-{c}", pure=False))
        pending = list(futures)
        reported: set[int] = set()  # slices whose "written" report came before their chain's result
        while pending:
            while True:
                try:
                    _, msg = reports.get_nowait()
                except queue.Empty:
                    break
                k = msg["slice"]
                if msg.get("kind") == "slice":
                    reported.add(k)
                    yield {"kind": "slice", "slice": k, "record": msg["record"]}
                else:
                    yield {"kind": "step", "slice": k, "label": job.label(k), "step": msg["step"],
                           "total": msg["total"]}
            finished = [f for f in pending if f.done()]
            if not finished:
                time.sleep(POLL_S)
                yield {"kind": "idle"}  # lets the caller stop the run while the workers are busy
                continue
            for fut in finished:
                pending.remove(fut)
                try:
                    results = fut.result()
                except Exception as exc:  # a worker died, or the task raised outside a slice
                    c = int(str(fut.key).rsplit("-", 1)[-1])
                    yield {"kind": "slice", "slice": chains[c][0], "record": exc}
                    continue
                for k, record, arrays in results:
                    if k in reported:
                        continue
                    if arrays is not None:
                        idx = job.grid.index(k)
                        for name, value in arrays.items():
                            run.store.array(name)[idx] = value
                        run.store.done_flags[k] = 1
                    yield {"kind": "slice", "slice": k, "record": record}
    finally:
        cancel.set()  # running tasks stop at their next step
        client.cancel(futures)
        try:
            client.unsubscribe_topic(topic)
        except Exception:  # noqa: BLE001 - the client may already be closing
            pass
        if client is not scheduler:
            client.close()


def _fingerprint(path: str) -> tuple | None:
    """What identifies a file or Zarr folder across machines: its kind, size and (folders) the
    napari-scoredvi run attributes or array metadata. None if it does not exist."""
    p = Path(path)
    if p.is_file():
        return ("file", p.stat().st_size)
    if p.is_dir():
        meta = [q for q in (".zattrs", ".zarray", ".zgroup", "zarr.json") if (p / q).exists()]
        return ("dir", tuple((q, (p / q).read_bytes()) for q in meta))
    return None


def _workers_see(client, path: str, fingerprint: tuple | None) -> bool:
    """True if every worker sees ``path`` as this process does (a shared filesystem)."""
    if fingerprint is None:
        return False
    try:
        seen = client.run(_fingerprint, path)
    except Exception:  # noqa: BLE001 - a worker that cannot answer cannot be trusted with the path
        return False
    return bool(seen) and all(v == fingerprint for v in seen.values())


def _scheduler_name(scheduler) -> str | None:
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return str(getattr(getattr(scheduler, "scheduler", None), "address", type(scheduler).__name__))


def _record(job: SliceJob, k: int, info: dict) -> dict:
    record = {"slice": job.label(k), "status": "done", "seed": job.settings.seed + k, "device": info["device"],
              "seconds": round(float(info["seconds"]), 3), "iterations": info["iterations"]}
    for key in ("lam", "noise_std", "skipped", "diverged", "drifted", "retries", "warm_start", "photon_transfer",
                "noise_correlated"):
        if key in info:
            record[key] = info[key]
    return record


# -- checks ------------------------------------------------------------------------------------

def _make_job(vol: Volume, in_path: Path | None, out_path: Path, channel_axis, settings: DenoiseSettings,
              posterior_std: bool) -> SliceJob:
    ndim = len(vol.axes)
    if channel_axis is not None:
        ok = isinstance(channel_axis, (int, np.integer)) and -ndim <= channel_axis < ndim
        if not ok or not int(channel_axis) % ndim < ndim - 2:
            raise ValueError(
                f"channel_axis must name one of the non-Y/X dimensions of axes {vol.axes!r} "
                f"(0 to {ndim - 3}), got {channel_axis!r}"
            )
        channel_axis = int(channel_axis) % ndim
    grid = SliceGrid(tuple(int(s) for s in vol.array.shape), tuple(d for d in range(ndim - 2) if d != channel_axis))
    outputs = OUTPUTS + ((POSTERIOR_STD,) if posterior_std else ())
    return SliceJob(str(in_path) if in_path else "", vol.axes, str(out_path), outputs, grid, channel_axis, settings)


def _parameters(job: SliceJob, vol: Volume) -> dict:
    """What must match for a resumed run to continue an earlier one."""
    s = job.settings
    named = f"napari layer {vol.name!r}" if vol.name else ""
    return {"input": job.input_path or named, "input_shape": list(vol.array.shape), "input_dtype": str(vol.array.dtype),
            "axes": job.axes, "channel_axis": job.channel_axis, "preset": s.preset.as_dict(), "seed": s.seed,
            "lam": s.lam, "outputs": list(job.outputs), "warm_start": s.warm_start}


def _check_slice(job: SliceJob, vol: Volume, k: int) -> None:
    """Check slice ``k``'s values, size and dtype the way the engine will (ValueError/TypeError saying
    what to do), so that bad input is reported before any output exists."""
    where = job.where(k)
    name = repr(job.input_path) if job.input_path else "the input"
    what = f"input {name}{', slice ' + where if where else ''}"
    try:
        plane = read_slice(vol.array, job.grid.index(k))
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

