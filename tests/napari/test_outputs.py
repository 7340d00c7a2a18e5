"""A started run as the denoise widget follows it, without Qt: how it ends, and its output layers."""

from types import SimpleNamespace

import numpy as np
import pytest

from napari_scoredvi.engine.api import finish
from napari_scoredvi.engine.result import DenoiseInfo
from napari_scoredvi.napari.outputs import ActiveRun, RunEnd, coverage_text, describe_positions, run_to_end
from napari_scoredvi.pipeline.events import SliceDone, SliceFailed, SliceStep
from napari_scoredvi.pipeline.progress import RunProgress
from napari_scoredvi.pipeline.slices import SlicesOutcome


def _finish(gen):
    events = []
    return events, finish(gen, events.append)


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
    denoised = np.stack([np.linspace(99.0, 157.0, 64).reshape(8, 8), np.full((8, 8), 120.0)])
    outputs = {"denoised": denoised, "noise_variance": np.stack([np.full((8, 8), 4.0), np.ones((8, 8))])}
    run = ActiveRun(SimpleNamespace(name="src"), layers, outputs, RunProgress(10, 2))
    run.slice_done(SliceDone(0, (0,), 1, 2))
    assert layers["noise_variance"].contrast_limits == (0.0, pytest.approx(4.0))
    # its own range (0.25 to 99.75 percentile), not the noisy source's
    assert layers["denoised"].contrast_limits == pytest.approx(tuple(np.percentile(denoised[0], (0.25, 99.75))))
    run.slice_done(SliceDone(1, (1,), 2, 2), shown=lambda layer: layer is not layers["noise_variance"])
    assert layers["denoised"].metadata["scoredvi"]["slices_done"] == [[0], [1]]
    assert layers["noise_variance"].metadata["scoredvi"]["slices_done"] == [[0]]  # removed by the user
    assert "info" not in layers["denoised"].metadata["scoredvi"]  # the events carried none
    run.slice_done(SliceDone(1, (1,), 2, 2, record={"slice": {"Z": 1}, "noise_std": 3.5}))
    assert layers["denoised"].metadata["scoredvi"]["info"]["noise_std"] == 3.5  # a store run's slice record
    run.finished(RunEnd(None, {"lam": 2.0}))
    assert all(ly.metadata["scoredvi"]["info"] == {"lam": 2.0} for ly in layers.values())
    run.finished(RunEnd())
    assert layers["denoised"].metadata["scoredvi"]["info"] == {"lam": 2.0}


def test_an_rgb_result_keeps_the_source_contrast():
    layer = dict(_layer("den").__dict__, rgb=True)
    layers = {"denoised": SimpleNamespace(**layer)}
    run = ActiveRun(SimpleNamespace(name="src"), layers, {"denoised": np.full((1, 4, 4, 3), 50.0)}, RunProgress(1, 1))
    run.slice_done(SliceDone(0, (0,), 1, 1))
    assert layers["denoised"].contrast_limits == (0.0, 1.0)


def test_coverage_says_which_slices_hold_results():
    one = np.zeros(5, bool)
    one[2] = True
    assert coverage_text(one, "Z") == "slice 3 of 5 computed (z=2); the other 4 are not computed (blank)"
    one[[0, 1, 4]] = True
    assert coverage_text(one, "Z") == "4 of 5 slices computed (z=0-2, 4); the other 1 is not computed (blank)"
    assert coverage_text(np.ones(5, bool), "Z") == "" and coverage_text(np.array(True), "") == ""
    assert coverage_text(np.zeros(3, bool), "Z") == "none of the 3 slices is computed yet"
    tz = np.zeros((2, 3), bool)
    tz[0, 1] = tz[1, 2] = True
    assert coverage_text(tz, "TZ").startswith("2 of 6 slices computed (t=0 z=1, t=1 z=2)")
    assert describe_positions([(i, 0) for i in range(9)], "TZ").endswith(", ...")
    flags = np.zeros(4, bool)
    run = ActiveRun(SimpleNamespace(name="src"), {}, {}, RunProgress(1, 1), computed=lambda: flags, axes="Z")
    flags[3] = True
    assert run.coverage() == "slice 4 of 4 computed (z=3); the other 3 are not computed (blank)"
    assert ActiveRun(SimpleNamespace(name="src"), {}, {}, RunProgress(1, 1)).coverage() == ""  # one 2D image


@pytest.mark.parametrize("correlated", [False, True])
def test_the_run_end_says_when_the_noise_is_spatially_correlated(correlated):
    import re

    import torch

    from napari_scoredvi import denoise
    from napari_scoredvi.engine.uncertainty import correlated_normal

    yy, xx = np.mgrid[0:192, 0:192]
    clean = 100 + 80 * np.exp(-((yy - 96) ** 2 + (xx - 80) ** 2) / 2000.0)
    lag = (0.6, 0.6) if correlated else (0.0, 0.0)
    unit = correlated_normal(clean.shape, lag, torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    result = denoise(clean + 3 * np.sqrt(clean) * unit, preset="fast", device="cpu", posterior_std=False)
    note = RunEnd(None, result.info.as_dict()).noise_note
    if not correlated:
        assert note == ""
        return
    found = re.search(r"lag-1 ([\d.]+) in y, ([\d.]+) in x.* about ([\d.]+) x", note)
    ly, lx, factor = (float(v) for v in found.groups())
    assert 0.45 < ly < 0.7 and 0.45 < lx < 0.7, note
    assert 3.5 < factor < 6.0, note  # (1 + 2 * 0.6)^2 = 4.8 for lag-1 correlation 0.6
