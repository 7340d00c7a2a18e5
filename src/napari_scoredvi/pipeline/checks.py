"""Checks made before a run writes or deletes anything: the paths, the first slice, an existing output."""

from __future__ import annotations

from pathlib import Path

from ..engine.validate import as_channels_first
from ..io.errors import Argument, OutputExists
from ..io.read import Volume
from ..io.store import is_store, remove_store, store_exists
from .job import SliceJob
from .slices import read_slice


def check_paths(in_path: Path, out_path: Path) -> None:
    """ValueError when the output would be inside the input (or the reverse): the input is never written."""
    if out_path == in_path or in_path in out_path.parents or out_path in in_path.parents:
        raise ValueError(f"output {str(out_path)!r} must be outside the input {str(in_path)!r}; "
                         "the input is never written to")


def check_slice(job: SliceJob, vol: Volume, k: int) -> None:
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


def existing_output(out_path: Path, resume: bool, overwrite: bool) -> bool:
    """Apply the policy for an output that may exist already; return whether the run resumes into it.

    An existing output raises FileExistsError (:class:`..io.errors.OutputExists` where resuming or
    replacing it would do) unless ``resume`` or ``overwrite`` (which deletes it, and only ever a Zarr
    store); asking for both is a ValueError.
    """
    if resume and overwrite:
        raise ValueError("choose either resume=True or overwrite=True, not both")
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
            raise OutputExists.of("output %r already exists; resume it to finish an interrupted run (%s), or "
                                  "replace it (%s)", str(out_path), Argument("resume"), Argument("overwrite"))
    return store_exists(out_path)
