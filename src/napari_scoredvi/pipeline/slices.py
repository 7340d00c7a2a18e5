"""Denoising a stack slice by slice: the one loop that the napari widget and the batch pipeline share.

The prior ensemble (``fast``, ``balanced``) fits nothing: each slice is denoised once. The variational fit
warm-starts (``settings.warm_starts``): neighbouring slices of a z-stack or time series look alike,
so each slice's fit starts from the networks fitted to the slice before it and runs the preset's
``warm_iterations`` instead of its full ``iterations``. Those slices are grouped in chains of
``CHAIN`` consecutive slice numbers; the first slice of a chain starts cold. Chains make the result
of a slice independent of where a run started (a resumed batch run or a dask worker recomputes the
chain from its start) and let a cluster fit chains in parallel; without warm starts a chain is one
slice (:func:`chain_length`). Slice ``k`` is denoised with seed ``settings.seed + k``.

With ``settings.context`` > 0 the prior ensemble reads each slice with its neighbours along one
axis of the stack (the context axis: by default the last before Y and X, z in a T x Z stack;
:func:`context_numbers`), read lazily and kept only while their window needs them: a slice's
result depends only on the input around it, so resumes, ranges and cluster tasks stay exact.

:func:`denoise_stack_steps` is the loop over slice numbers (reading and writing through callbacks);
:func:`denoise_slices` runs it on the slices of an array (numpy, dask or zarr, read one slice at a
time) into output arrays (numpy in memory, or the zarr arrays of an output store).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..engine.api import denoise_steps
from ..engine.context import offsets
from ..engine.result import DenoiseInfo, DenoiseResult, WarmStart
from ..engine.settings import DenoiseSettings
from ..io.slice_grid import SliceGrid
from .events import SliceDone, SliceFailed, SliceStep

#: consecutive slices that share a warm-start chain (the variational fit with warm starts)
CHAIN = 16


def chain_length(settings: DenoiseSettings) -> int:
    """Consecutive slices denoised in one chain: :data:`CHAIN` when the slices warm-start, else 1."""
    return CHAIN if settings.warm_starts else 1


class SliceError(RuntimeError):
    """Slice ``number`` of a stack could not be denoised; the original error is ``__cause__``."""

    def __init__(self, number: int, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.number = number


def chain_start(k: int, chain: int = CHAIN) -> int:
    """The slice number that starts the chain of slice number ``k``."""
    return k - k % chain


def context_numbers(grid: SliceGrid, k: int, context: int, axis: int | None = None) -> list[int | None]:
    """The slice numbers of slice ``k``'s neighbours along grid axis ``axis`` (an index into
    ``grid.grid_axes``; None: the last), ``context`` on each side, in :func:`..engine.context.offsets`
    order (-1, +1, -2, +2, ...), None beyond the ends of the stack."""
    if context <= 0 or not grid.grid_axes:
        return []
    axis = len(grid.grid_axes) - 1 if axis is None else axis
    position = list(grid.position(k))
    out: list[int | None] = []
    for o in offsets(context)[1:]:
        q = position[axis] + o
        if 0 <= q < grid.grid_shape[axis]:
            out.append(grid.number(tuple(position[:axis] + [q] + position[axis + 1:])))
        else:
            out.append(None)
    return out


class SliceCache:
    """Slices read through ``read(k)``, the last ``size`` kept: a slice's window shares most of its
    slices with the next one's, and memory stays flat in the stack's length."""

    def __init__(self, read: Callable[[int], np.ndarray], size: int) -> None:
        self.read, self.size = read, max(1, size)
        self._kept: dict[int, np.ndarray] = {}

    def __call__(self, k: int) -> np.ndarray:
        if k in self._kept:
            self._kept[k] = self._kept.pop(k)  # most recently used last
            return self._kept[k]
        plane = self.read(k)
        self._kept[k] = plane
        while len(self._kept) > self.size:
            self._kept.pop(next(iter(self._kept)))
        return plane


def denoise_stack_steps(
    read: Callable[[int], np.ndarray],
    numbers: Sequence[int],
    write: Callable[[int, DenoiseResult], object],
    settings: DenoiseSettings,
    channel_axis: int | None = None,
    posterior_std: bool = True,
    rgb: bool = False,
    neighbours: Callable[[int], list[int | None]] | None = None,
) -> Generator[SliceStep | tuple[int, DenoiseResult], None, list[int]]:
    """Denoise the slices ``numbers`` (slice numbers in the stack, any order) one after the other.

    ``read(k)`` returns slice ``k`` as an array (2D, or 3D with ``channel_axis``); ``write(k, result)``
    stores its :class:`~napari_scoredvi.engine.result.DenoiseResult`. With warm starts, slices that are
    not in ``numbers`` but start the chain of one that is are fitted too (their result is not
    written), so every slice gets the same result whatever subset is asked for; otherwise exactly the
    slices ``numbers`` are denoised. ``posterior_std=False`` skips the posterior std (NaN in the results).
    ``rgb``: the channel axis holds R, G, B (the colour priors; :func:`~napari_scoredvi.engine.api.denoise_steps`).
    ``neighbours(k)``: the slice numbers of slice ``k``'s neighbours (:func:`context_numbers`), read
    with it as its context (none: every slice on its own).

    Yields a :class:`SliceStep` after each unit of work (a prior pass, a fit step) and ``(k, result)``
    after each written slice. Closing the generator stops the work within one unit. Returns the slice numbers
    written, in order. A slice that fails (bad data, an unreadable chunk) raises :class:`SliceError`
    naming it; the slices written before it stay written.
    """
    warm_start, chain = settings.warm_starts, chain_length(settings)
    plan = plan_chains(sorted(set(int(k) for k in numbers)), chain, warm_start)
    context = settings.stack_context if neighbours is not None and not rgb else 0
    read = SliceCache(read, 2 * context + 2)
    written: list[int] = []
    state: WarmStart | None = None
    for k, keep in plan:
        if not warm_start or k == chain_start(k, chain):
            state = None
        steps = None
        try:
            around = [None if j is None else read(j) for j in neighbours(k)] if context else None
            steps = denoise_steps(read(k), settings.with_(seed=settings.seed + k), channel_axis, state, posterior_std,
                                  rgb=rgb, neighbours=around)
            while True:
                event = next(steps)
                yield SliceStep(k, event.step, event.total, event.unit)
        except StopIteration as stop:
            result: DenoiseResult = stop.value
        except (ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
            raise SliceError(k, exc) from exc
        finally:
            if steps is not None:
                steps.close()
        state = result.warm_start if warm_start else None
        if keep:
            write(k, result)
            written.append(k)
            yield k, result
    return written


def planned_fits(numbers: Sequence[int], settings: DenoiseSettings) -> int:
    """Slices :func:`denoise_stack_steps` will denoise for ``numbers``: those asked for and, with warm
    starts, the slices before them in their chains that it refits to warm-start them."""
    return len(plan_chains(sorted(set(int(k) for k in numbers)), chain_length(settings), settings.warm_starts))


def chains(numbers: Sequence[int], chain: int = CHAIN) -> dict[int, list[int]]:
    """The slice numbers grouped by warm-start chain: chain start -> its numbers, ascending."""
    out: dict[int, list[int]] = {}
    for k in sorted(set(int(k) for k in numbers)):
        out.setdefault(chain_start(k, chain), []).append(k)
    return out


def plan_chains(wanted: list[int], chain: int = CHAIN, warm_start: bool = True) -> list[tuple[int, bool]]:
    """(slice number, write it?) in fitting order: with warm starts, each wanted slice preceded by
    the unwanted slices of its chain that come before it (fitted only to warm-start the next)."""
    if not warm_start:
        return [(k, True) for k in wanted]
    plan: list[tuple[int, bool]] = []
    last = None  # last slice fitted
    for k in wanted:
        start = chain_start(k, chain)
        first = start if last is None or last < start else last + 1
        plan += [(j, j == k) for j in range(first, k + 1)]
        last = k
    return plan


def read_slice(data, index: tuple) -> np.ndarray:
    """``data[index]`` as a numpy array, reading only that slice (dask: in this thread, so that it
    works inside a dask worker and a napari thread alike)."""
    part = data[index]
    if hasattr(part, "compute") and hasattr(part, "dask"):
        part = part.compute(scheduler="synchronous")
    return np.asarray(part)


def write_slice(outputs: Mapping[str, object], grid: SliceGrid, k: int, values: Mapping[str, np.ndarray],
                done=None) -> None:
    """Write slice ``k``'s outputs (name -> 2D array, or 3D with a channel axis) into the output arrays
    at its place in ``grid``, then set its ``done`` flag (never before the data)."""
    idx = grid.index(k)
    for name, value in values.items():
        outputs[name][idx] = value
    if done is not None:
        done[k] = 1


@dataclass(frozen=True)
class SlicesOutcome:
    """How :func:`denoise_slices` ended: the positions written, the last slice's info, and the slice
    that failed (its number and error), if one did."""

    written: list[tuple[int, ...]]
    info: DenoiseInfo | None
    failed: SliceFailed | None = None


def denoise_slices(
    data,
    grid: SliceGrid,
    numbers: Sequence[int],
    outputs: Mapping[str, object],
    settings: DenoiseSettings,
    rgb: bool = False,
    done=None,
    total: int | None = None,
    channels_last: bool | None = None,
    context_axis: int | None = None,
) -> Generator[SliceStep | SliceDone, None, SlicesOutcome]:
    """Denoise the 2D slices ``numbers`` of ``data`` (slice numbers of ``grid``) into ``outputs``.

    outputs: ``{"denoised": array, "noise_variance": array}`` and optionally ``"posterior_std"``
    (computed only when present): arrays with ``data``'s shape (numpy, or the zarr arrays of an
    output store), written slice by slice. A dimension kept whole besides Y and X is a channel axis,
    denoised jointly. ``rgb=True``: the channel axis holds R, G, B, denoised jointly by the colour
    priors. ``channels_last`` (default: ``rgb``): ``data`` is a napari RGB(A) layer, channels last;
    alpha is copied and the variance / std outputs have no channel axis (the mean over R, G, B).
    Otherwise (a batch run's RGB volume, channels before Y and X) the outputs keep the channel axis.
    done: an array of per-slice flags set to 1 once a slice's outputs are written (a killed run
    leaves it unset). total: the slice count the :class:`SliceDone` events report
    (default: ``len(numbers)``). context_axis: the grid axis (an index into ``grid.grid_axes``; None:
    the last) along which ``settings.context`` neighbours are read with each slice. Reads one slice at
    a time (and keeps a slice's window), so dask/zarr data is never loaded whole.

    Yields :class:`SliceStep` and :class:`SliceDone` events; closing the generator stops within an
    iteration. A failing slice ends the run (the slices written before it stay written) and is
    reported in the returned :class:`SlicesOutcome`.
    """
    written: list[tuple[int, ...]] = []
    info: DenoiseInfo | None = None
    total = len(set(numbers)) if total is None else total
    kept = [d for d in range(len(grid.shape)) if d not in grid.grid_axes]
    last = rgb if channels_last is None else channels_last
    channel_axis = (len(kept) - 1 if last else 0) if len(kept) == 3 else None

    def read(k: int) -> np.ndarray:
        plane = read_slice(data, grid.index(k))
        return plane[..., :3] if last else plane

    def write(k: int, result: DenoiseResult) -> None:
        if not last:
            write_slice(outputs, grid, k, {name: getattr(result, name) for name in outputs}, done)
            return
        idx = grid.index(k)
        maps = idx[:-1]  # the maps have no channel axis
        outputs["denoised"][idx[:-1] + (slice(0, 3),)] = result.denoised
        if grid.shape[-1] == 4:  # alpha is not an intensity: keep it
            outputs["denoised"][idx[:-1] + (3,)] = read_slice(data, idx[:-1] + (3,))
        outputs["noise_variance"][maps] = result.noise_variance.mean(-1)
        if "posterior_std" in outputs:
            outputs["posterior_std"][maps] = np.sqrt(np.mean(result.posterior_std**2, axis=-1))
        if done is not None:
            done[k] = 1  # only after the data

    def around(k: int) -> list[int | None]:
        return context_numbers(grid, k, settings.stack_context, context_axis)

    loop = denoise_stack_steps(read, numbers, write, settings, channel_axis, "posterior_std" in outputs, rgb=rgb,
                               neighbours=around)
    try:
        while True:
            event = next(loop)
            if isinstance(event, SliceStep):
                yield event
                continue
            k, result = event
            written.append(grid.position(k))
            info = result.info
            yield SliceDone(k, grid.position(k), len(written), total, info)
    except StopIteration:
        pass
    except SliceError as exc:
        return SlicesOutcome(written, info, SliceFailed(exc.number, grid.position(exc.number), exc.__cause__))
    finally:
        loop.close()
    return SlicesOutcome(written, info)
