"""Denoising a stack slice by slice: the one loop that the napari widget and the batch pipeline share.

Neighbouring slices of a z-stack or time series look alike, so each slice's fit starts from the
networks fitted to the slice before it (``warm_start``) and runs the preset's ``warm_iterations``
instead of its full ``iterations``. Slices are grouped in chains of ``CHAIN`` consecutive slice
numbers; the first slice of a chain starts cold. Chains make the result of a slice independent of
where a run started (a resumed batch run or a dask worker recomputes the chain from its start) and
let a cluster fit chains in parallel. Slice ``k`` is fitted with seed ``seed + k``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

import numpy as np

from .api import DenoiseResult, denoise_steps
from .presets import Preset

#: consecutive slices that share a warm-start chain
CHAIN = 16


class SliceError(RuntimeError):
    """Slice ``number`` of a stack could not be denoised; the original error is ``__cause__``."""

    def __init__(self, number: int, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.number = number


def chain_start(k: int, chain: int = CHAIN) -> int:
    """The slice number that starts the chain of slice number ``k``."""
    return k - k % chain


def denoise_stack_steps(
    read: Callable[[int], np.ndarray],
    numbers: Sequence[int],
    write: Callable[[int, DenoiseResult], object],
    channel_axis: int | None = None,
    preset: str | Preset = "balanced",
    device: str = "auto",
    seed: int = 0,
    lam: float | None = None,
    warm_start: bool = True,
    chain: int = CHAIN,
    posterior_std: bool = True,
) -> Generator[dict, None, list[int]]:
    """Denoise the slices ``numbers`` (slice numbers in the stack, any order) one after the other.

    ``read(k)`` returns slice ``k`` as an array (2D, or 3D with ``channel_axis``); ``write(k, result)``
    stores its :class:`~napari_scoredvi.api.DenoiseResult`. Slices that are not in ``numbers`` but
    start the chain of one that is are fitted too (their result is not written), so every slice gets
    the same result whatever subset is asked for. ``warm_start=False`` fits every slice cold.
    ``posterior_std=False`` skips the posterior std (NaN in the results) when nobody reads it.

    Yields ``{"kind": "step", "slice": k, "position": i, "n_slices": n, "step", "total"}`` after each
    iteration (``position`` counts the slices written so far) and ``{"kind": "slice", "slice": k, ...,
    "info": result.info}`` after each written slice. Closing the generator stops within an iteration.
    Returns the slice numbers written, in order. A slice that fails (bad data, an unreadable chunk)
    raises :class:`SliceError` naming it; the slices written before it stay written.
    """
    wanted = sorted(set(int(k) for k in numbers))
    n = len(wanted)
    plan = _plan(wanted, chain, warm_start)
    written: list[int] = []
    state: dict | None = None
    for k, keep in plan:
        if not warm_start or k == chain_start(k, chain):
            state = None
        steps = None
        try:
            steps = denoise_steps(read(k), channel_axis, preset, device, seed + k, lam, state, posterior_std)
            while True:
                step, total = next(steps)
                yield {"kind": "step", "slice": k, "position": len(written), "n_slices": n,
                       "step": step, "total": total}
        except StopIteration as stop:
            result: DenoiseResult = stop.value
        except (ValueError, TypeError, RuntimeError, OSError, KeyError) as exc:
            raise SliceError(k, exc) from exc
        finally:
            if steps is not None:
                steps.close()
        state = result.fit_state if warm_start else None
        if keep:
            write(k, result)
            written.append(k)
            yield {"kind": "slice", "slice": k, "position": len(written), "n_slices": n, "info": result.info}
    return written


def planned_iterations(numbers: Sequence[int], preset: Preset, warm_start: bool = True, chain: int = CHAIN) -> int:
    """Adam steps :func:`denoise_stack_steps` will take for ``numbers`` (without divergence retries)."""
    plan = _plan(sorted(set(int(k) for k in numbers)), chain, warm_start)
    return sum(preset.iterations if not warm_start or k == chain_start(k, chain) else preset.warm_iterations
               for k, _ in plan)


def _plan(wanted: list[int], chain: int, warm_start: bool = True) -> list[tuple[int, bool]]:
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
