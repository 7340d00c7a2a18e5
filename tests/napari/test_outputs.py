"""A started run as the denoise widget follows it, without Qt: how it ends, and its output layers."""

from types import SimpleNamespace

import numpy as np
import pytest

from napari_scoredvi.engine.result import DenoiseInfo
from napari_scoredvi.napari.outputs import ActiveRun, RunEnd, run_to_end
from napari_scoredvi.pipeline.events import SliceDone, SliceFailed, SliceStep
from napari_scoredvi.pipeline.progress import RunProgress
from napari_scoredvi.pipeline.slices import SlicesOutcome


def _finish(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def _steps(outcome=None, error=None):
    yield SliceStep(0, 1, 2)
    if error is not None:
        raise error
    return outcome


def test_run_to_end_never_raises():
    events, end = _finish(run_to_end(_steps(error=RuntimeError("slice Z=1 failed (ValueError: NaN)"))))
    assert events == [SliceStep(0, 1, 2)] and end == RunEnd("slice Z=1 failed (ValueError: NaN)")
    assert _finish(run_to_end(_steps(error=OSError())))[1].error == "OSError"
    assert _finish(run_to_end(_steps()))[1] == RunEnd()  # a run into a store returns nothing
    info = DenoiseInfo.__new__(DenoiseInfo)
    info_dict = {"lam": 1.0}
    object.__setattr__(info, "as_dict", lambda: info_dict)
    failed = SliceFailed(1, (1,), ValueError("image contains 1 NaN/Inf pixel(s)"))
    end = _finish(run_to_end(_steps(SlicesOutcome([(0,)], info, failed))))[1]
    assert end == RunEnd("slice (1,): image contains 1 NaN/Inf pixel(s)", info_dict)
    assert _finish(run_to_end(_steps(SlicesOutcome([()], info))))[1] == RunEnd(None, info_dict)


def test_closing_run_to_end_closes_the_run():
    closed = []

    def steps():
        try:
            yield SliceStep(0, 1, 2)
            yield SliceStep(0, 2, 2)
        finally:
            closed.append(True)

    gen = run_to_end(steps())
    next(gen)
    gen.close()
    assert closed == [True]


def _layer(name):
    return SimpleNamespace(name=name, metadata={"scoredvi": {"slices_done": []}}, contrast_limits=(0.0, 1.0),
                           refreshed=0, refresh=lambda: None)


def test_active_run_updates_its_layers_as_slices_finish():
    layers = {"denoised": _layer("den"), "noise_variance": _layer("var")}
    outputs = {"denoised": np.zeros((2, 8, 8)), "noise_variance": np.stack([np.full((8, 8), 4.0), np.ones((8, 8))])}
    run = ActiveRun(SimpleNamespace(name="src"), layers, outputs, RunProgress(10, 2))
    run.slice_done(SliceDone(0, (0,), 1, 2))
    assert layers["noise_variance"].contrast_limits == (0.0, pytest.approx(4.0))
    assert layers["denoised"].contrast_limits == (0.0, 1.0)  # the source's contrast stays
    run.slice_done(SliceDone(1, (1,), 2, 2), shown=lambda layer: layer is not layers["noise_variance"])
    assert layers["denoised"].metadata["scoredvi"]["slices_done"] == [[0], [1]]
    assert layers["noise_variance"].metadata["scoredvi"]["slices_done"] == [[0]]  # removed by the user
    run.finished(RunEnd(None, {"lam": 2.0}))
    assert all(ly.metadata["scoredvi"]["info"] == {"lam": 2.0} for ly in layers.values())
    run.finished(RunEnd())
    assert layers["denoised"].metadata["scoredvi"]["info"] == {"lam": 2.0}
