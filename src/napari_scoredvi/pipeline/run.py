"""Stack runs: denoise every 2D slice of a volume into an OME-Zarr store, resumably, here or on a
dask.distributed cluster. The batch command (:func:`denoise_volume`, a TIFF/Zarr path in) and the
napari widget (a layer's data in) both go through :func:`prepare_run` and :meth:`StackRun.steps`.

The store's layout is in :mod:`..io.store`, its provenance in :mod:`.provenance`, the checks made
before anything is written in :mod:`.checks`, the cluster side in :mod:`.cluster`. Slices go
through the same loop as a single slice in the widget (:func:`.slices.denoise_slices`): slice ``k``
is denoised with seed ``seed + k``; the variational fit warm-starts it from slice ``k - 1`` within
chains of ``slices.CHAIN`` slices. A resumed run redoes the slices whose ``done`` flag is unset
(the variational fit also refits, without writing, the finished slices of their chain that
warm-start them), so it gives the same arrays as an uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..engine.settings import DenoiseSettings
from ..io.lock import acquire as lock_store
from ..io.lock import check_unlocked
from ..io.read import Volume, open_volume
from ..io.store import OutputStore, create_store, open_store
from .checks import check_paths, check_slice, existing_output
from .cluster import cluster_events, forget_open_inputs, scheduler_name
from .events import RunEvent, RunStarted, SliceDone, SliceFailed, SliceStep, Waiting
from .job import SliceJob, make_job
from .provenance import Provenance, new_store_meta, run_parameters, slice_record
from .slices import denoise_slices

__all__ = ["StackRun", "denoise_volume", "prepare_run"]

#: called with each event of a run (see :meth:`StackRun.steps`)
ProgressCallback = Callable[[RunEvent], object]


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

    def steps(self, scheduler=None) -> Generator[RunStarted | SliceStep | SliceDone | Waiting, None, None]:
        """Run it, yielding :class:`RunStarted` first, then a :class:`SliceStep` per iteration and a
        :class:`SliceDone` per slice written (``done`` and ``total`` count the store's slices; on a
        cluster also :class:`Waiting` while the workers are busy). Closing the generator stops the
        run (local: within an iteration; cluster: its tasks are cancelled and stop at their next
        step); the finished slices are kept. A failing slice raises RuntimeError naming it.

        scheduler: None runs here, one slice at a time; a ``dask.distributed`` scheduler address or
        Client runs the slices' chains on its workers.

        The run holds the store's lock file (:mod:`..io.lock`) from its start to its end (also when
        cancelled or failing): while another run holds it, the first step raises
        :class:`..io.lock.StoreLocked` (an OSError) naming that run.
        """
        lock = lock_store(self.store.path)
        try:
            yield from self._locked_steps(scheduler)
        finally:
            lock.release()

    def _locked_steps(self, scheduler) -> Generator[RunStarted | SliceStep | SliceDone | Waiting, None, None]:
        job = self.job
        provenance = Provenance(self.store, job)
        provenance.begin(self.resumed, scheduler_name(scheduler), len(self.todo))
        n_done = self.n - len(self.todo)
        status = "interrupted"  # closed (cancel), KeyboardInterrupt, errors
        try:
            yield RunStarted(n_done, self.n)
            source = self._local() if scheduler is None else cluster_events(job, self.volume, self.store, self.todo,
                                                                           scheduler)
            for event in source:
                if isinstance(event, SliceFailed):
                    status = "failed"
                    provenance.slice_failed(event.number, event.message)
                    where = job.where(event.number)
                    from ..io.errors import Argument, RunFailed

                    if where:
                        raise RunFailed.of("slice %s failed (%s); the finished slices are kept: fix the problem "
                                           "and resume (%s)", where, event.message, Argument("resume")) from event.error
                    raise RunFailed.of("denoising failed (%s); fix the problem and resume (%s)", event.message,
                                       Argument("resume")) from event.error
                if isinstance(event, SliceDone):
                    record = event.record or slice_record(job, event.number, event.info)
                    provenance.slice_done(event.number, record)
                    n_done += 1
                    event = replace(event, done=n_done, total=self.n, record=record)
                elif isinstance(event, SliceStep):
                    event = replace(event, label=job.label(event.number))
                yield event
            # a run over some slices only (the widget's range) leaves the others to do
            status = provenance.end_status()
        finally:
            provenance.end(status)
            forget_open_inputs()

    def _local(self) -> Generator[SliceStep | SliceDone | SliceFailed, None, None]:
        outcome = yield from denoise_slices(self.volume.array, self.job.grid, self.todo, self.store.arrays(),
                                            self.job.settings, rgb=self.job.rgb, done=self.store.done_flags,
                                            channels_last=False, context_axis=self.job.context_axis)
        if outcome.failed is not None:
            yield outcome.failed


def prepare_run(
    volume: Volume,
    output_path: str | Path,
    settings: DenoiseSettings,
    channel_axis: int | None = None,
    posterior_std: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    numbers: Sequence[int] | None = None,
    context_axis: str | None = None,
) -> StackRun:
    """Check the input, then create the output store (or open it to resume, or replace it).

    numbers: the slice numbers to do (default: all); those already done in a resumed store are skipped.
    context_axis: the axis letter along which ``settings.context`` neighbours are read with each slice
    (default: the last axis before Y and X that is not the channel axis, e.g. Z of TZYX).

    The input is checked before any output is written or deleted: its axes, dtype and size, and its
    first slice's values (a first slice with NaN/Inf or too few pixels raises ValueError). An
    existing output raises FileExistsError unless ``resume`` (same input and settings, else
    ValueError naming what differs) or ``overwrite`` (only a Zarr store is ever deleted); one that
    another run is writing into raises :class:`..io.lock.StoreLocked` (an OSError) whatever is asked.
    """
    out_path = Path(output_path).resolve()
    in_path = Path(volume.source).resolve() if volume.source else None
    if in_path is not None:
        check_paths(in_path, out_path)
    job = make_job(volume, in_path, out_path, channel_axis, settings, posterior_std, context_axis)
    params = run_parameters(job, volume)
    check_slice(job, volume, 0)
    check_unlocked(out_path)  # before a resume reads it or an overwrite deletes it under another run
    resumed = existing_output(out_path, resume, overwrite)
    if resumed:
        store = open_store(out_path, params)
    else:
        store = create_store(out_path, volume.array.shape, volume.axes, volume.scale, volume.units, job.outputs,
                             job.grid.count, new_store_meta(job, volume, params))
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
    progress: ProgressCallback | None = None,
    context_axis: str | None = None,
) -> Path:
    """Denoise every 2D Y-X slice of a TIFF/Zarr volume; write an OME-Zarr store; return its path.

    settings: preset, device, seed, prior weight, warm starts (default: ``DenoiseSettings()``,
    the ``fast`` preset). axes: one letter per input dimension (e.g. ``"ZYX"``, ``"TZCYX"``),
    needed only where the file's metadata does not give them; the last two must be Y and X.
    channel_axis: an input dimension to denoise jointly as channels (default: every non-Y/X axis,
    channels included, is iterated and each 2D slice is denoised alone). posterior_std: also write
    the posterior standard deviation. resume: keep the slices an earlier run finished and do the
    rest. overwrite: delete an existing output first. scheduler: None runs here, one slice at a
    time; a ``dask.distributed`` scheduler address (or Client) runs the slices on its workers.
    progress: called with every event of the run (:meth:`StackRun.steps`). context_axis: the axis
    letter along which each slice's ``settings.context`` neighbours are read (default: the last
    stack axis, Z of TZYX).

    Bad input raises before any output exists (see :func:`prepare_run`); another slice with bad
    values stops the run there, keeping the finished slices (RuntimeError).
    """
    settings = settings or DenoiseSettings()
    if scheduler is None:
        from ..engine.devices import resolve_device

        resolve_device(settings.device)  # fail now, not at the first slice, if the device is absent
    vol = open_volume(input_path, axes)
    run = prepare_run(vol, output_path, settings, channel_axis, posterior_std, resume, overwrite,
                      context_axis=context_axis)
    events = run.steps(scheduler)
    try:
        for event in events:
            if progress is not None:
                progress(event)
    finally:
        events.close()
    return run.path
