"""Running a stack on a dask.distributed cluster (the only module that imports ``distributed``).

Each chain (:func:`~.slices.chain_length`: one slice for the prior ensemble, a warm-start chain for
the variational fit) is one task (:func:`run_chain`): read a slice, denoise it, write its chunks,
then set its ``done`` flag. Workers read the input by its path and write the store themselves when they see the
same files (a shared filesystem); otherwise this process sends them the slices and writes what they
send back (a laptop driving a lab GPU machine). Workers report each step through the scheduler's
event log (``scoredvi-<run>`` topic; plain dicts on the wire, events again here), and stop at their
next step once the run's ``distributed.Event`` is set (cancel).
"""

from __future__ import annotations

import functools
import queue
import time
import uuid
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..io.read import Volume, open_volume
from ..io.slice_grid import SliceGrid
from ..io.store import open_store
from .events import SliceDone, SliceFailed, SliceStep, Waiting
from .job import SliceJob
from .provenance import slice_record
from .slices import chain_length, chains, context_numbers, denoise_slices, plan_chains, read_slice, write_slice

CONNECT_TIMEOUT_S = 10  # seconds to reach a dask scheduler
POLL_S = 0.1  # how often a cluster run looks for finished tasks and workers' progress


class RunCancelled(Exception):
    """A cluster task stopped because its run was cancelled."""


@functools.lru_cache(maxsize=4)
def _open_cached(path: str, axes: str) -> Volume:
    return open_volume(path, axes)


def forget_open_inputs() -> None:
    """Close the inputs the tasks of this process opened (at the end of a run)."""
    _open_cached.cache_clear()


class _Returned(dict):
    """Output "array" of a worker that sends its slices back: keeps each slice by grid position."""

    def __setitem__(self, idx, value) -> None:
        key = tuple(i for i in idx if isinstance(i, int)) if isinstance(idx, tuple) else (idx,)
        super().__setitem__(key, np.array(value))


class _Planes:
    """The slices a task was sent, indexable like the input array by :meth:`SliceGrid.index`."""

    def __init__(self, grid: SliceGrid, planes: dict[int, np.ndarray]) -> None:
        self._by_position = {grid.position(k): v for k, v in planes.items()}
        self._grid_axes = grid.grid_axes

    def __getitem__(self, idx: tuple) -> np.ndarray:
        return self._by_position[tuple(idx[d] for d in self._grid_axes)]


def run_chain(job: SliceJob, numbers: list[int], planes: dict[int, np.ndarray] | None = None,
              ) -> list[tuple[int, dict | BaseException, dict | None]]:
    """A cluster task: denoise the slices ``numbers`` of one chain (one slice without warm starts).

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
    data = _Planes(job.grid, planes) if planes is not None else _open_cached(job.input_path, job.axes).array
    if job.write_here:
        store = open_store(Path(job.output_path))
        outputs, done = store.arrays(), store.done_flags
    else:
        outputs, done = {name: _Returned() for name in job.outputs}, None
    results: list = []
    last_check = 0.0
    gen = denoise_slices(data, job.grid, numbers, outputs, job.settings, rgb=job.rgb, done=done,
                         channels_last=False, context_axis=job.context_axis)
    try:
        while True:
            event = next(gen)
            if isinstance(event, SliceStep):
                if worker is not None:
                    worker.log_event(topic, {"slice": event.number, "step": event.step, "total": event.steps,
                                             "unit": event.unit})
                if cancel is not None and time.monotonic() - last_check > 0.5:  # a scheduler round trip
                    last_check = time.monotonic()
                    if cancel.is_set():
                        raise RunCancelled(f"run {job.run_id} cancelled")
                continue
            k, record, arrays = event.number, slice_record(job, event.number, event.info), None
            if not job.write_here:
                arrays = {name: outputs[name].pop(event.position) for name in job.outputs}
            elif worker is not None:  # written: say so now
                worker.log_event(topic, {"kind": "slice", "slice": k, "record": record})
            results.append((k, record, arrays))
    except StopIteration as stop:
        if stop.value.failed is not None:
            results.append((stop.value.failed.number, stop.value.failed.error, None))
    finally:
        gen.close()
    return results


def cluster_events(job: SliceJob, volume: Volume, store, todo: list[int], scheduler,
                   ) -> Generator[SliceStep | SliceDone | SliceFailed | Waiting, None, None]:
    """Run the chains of ``todo`` on a dask.distributed cluster (a scheduler address or Client); yield
    events as a local run does (:class:`SliceDone` with the slice's record, counts left to the caller)."""
    from distributed import Client, Event

    if isinstance(scheduler, Client):
        client = scheduler
    else:
        # not the process's default dask scheduler: napari's own dask layers must keep computing here
        try:
            client = Client(scheduler, set_as_default=False, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"could not connect to the dask scheduler at {scheduler!r} ({exc}); check the address "
                          "and that `dask scheduler` runs there (docs/how-to/run-on-a-cluster.md), or run on this "
                          "computer") from exc
    run_id = uuid.uuid4().hex[:12]
    topic = f"scoredvi-{run_id}"
    reports: queue.SimpleQueue = queue.SimpleQueue()
    futures: list = []
    cancel = Event(f"scoredvi-cancel-{run_id}", client=client)
    grid = job.grid

    def done_event(k: int, record) -> SliceDone | SliceFailed:
        if isinstance(record, BaseException):
            return SliceFailed(k, grid.position(k), record)
        return SliceDone(k, grid.position(k), 0, 0, None, record)

    try:
        reads_path = bool(job.input_path) and workers_see(client, job.input_path, fingerprint(job.input_path))
        writes_here = workers_see(client, str(store.path), fingerprint(str(store.path)))
        job = replace(job, run_id=run_id, write_here=writes_here, input_path=job.input_path if reads_path else "")
        client.subscribe_topic(topic, reports.put)
        by_chain = chains(todo, chain_length(job.settings))
        for c, ks in by_chain.items():
            planes = None
            if not reads_path:  # sent slice by slice: each plane is its own piece of data on the cluster
                fitted = [j for j, _ in plan_chains(ks, chain_length(job.settings), job.settings.warm_starts)]
                read = set(fitted)  # and each slice's neighbours, its context
                for j in fitted:
                    read.update(n for n in context_numbers(grid, j, job.settings.stack_context, job.context_axis)
                                if n is not None)
                planes = {j: client.scatter(read_slice(volume.array, grid.index(j))) for j in sorted(read)}
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
                    yield done_event(k, msg["record"])
                else:
                    yield SliceStep(k, msg["step"], msg["total"], msg["unit"])
            finished = [f for f in pending if f.done()]
            if not finished:
                time.sleep(POLL_S)
                yield Waiting()  # lets the caller stop the run while the workers are busy
                continue
            for fut in finished:
                pending.remove(fut)
                try:
                    results = fut.result()
                except Exception as exc:  # a worker died, or the task raised outside a slice
                    c = int(str(fut.key).rsplit("-", 1)[-1])
                    yield done_event(by_chain[c][0], exc)
                    continue
                for k, record, arrays in results:
                    if k in reported:
                        continue
                    if arrays is not None:
                        write_slice(store.arrays(), grid, k, arrays, store.done_flags)
                    yield done_event(k, record)
    finally:
        cancel.set()  # running tasks stop at their next step
        client.cancel(futures)
        try:
            client.unsubscribe_topic(topic)
        except Exception:  # noqa: BLE001 - the client may already be closing
            pass
        if client is not scheduler:
            client.close()


def fingerprint(path: str) -> tuple | None:
    """What identifies a file or Zarr folder across machines: its kind, size and (folders) the
    napari-scoredvi run attributes or array metadata. None if it does not exist."""
    p = Path(path)
    if p.is_file():
        return ("file", p.stat().st_size)
    if p.is_dir():
        meta = [q for q in (".zattrs", ".zarray", ".zgroup", "zarr.json") if (p / q).exists()]
        return ("dir", tuple((q, (p / q).read_bytes()) for q in meta))
    return None


def workers_see(client, path: str, fingerprint_here: tuple | None) -> bool:
    """True if every worker sees ``path`` as this process does (a shared filesystem)."""
    if fingerprint_here is None:
        return False
    try:
        seen = client.run(fingerprint, path)
    except Exception:  # noqa: BLE001 - a worker that cannot answer cannot be trusted with the path
        return False
    return bool(seen) and all(v == fingerprint_here for v in seen.values())


def scheduler_name(scheduler) -> str | None:
    """The scheduler as the provenance records it (its address), None for a local run."""
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return str(getattr(getattr(scheduler, "scheduler", None), "address", type(scheduler).__name__))
