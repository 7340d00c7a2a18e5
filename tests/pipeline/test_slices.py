"""The per-slice loop shared by the napari widget and the batch pipeline: the shipped ``fast`` preset
for everything a stack run does, ``short_fit`` for what only the variational fit has (warm starts
and their chains)."""

import numpy as np
import pytest

from napari_scoredvi import denoise
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io.slice_grid import SliceGrid
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
from napari_scoredvi.pipeline import slices
from napari_scoredvi.pipeline.events import SliceDone, SliceStep
from napari_scoredvi.pipeline.slices import SliceError, denoise_slices, denoise_stack_steps, planned_fits

FAST = DenoiseSettings("fast", "cpu")


def _run(stack, numbers, settings=FAST, **kw):
    """Run the loop on ``numbers``: (results by slice, events, the slices the engine was given, in order)."""
    out, events, read = {}, [], []

    def reader(k):
        read.append(k)
        return stack[k]

    for ev in denoise_stack_steps(reader, numbers, lambda k, r: out.__setitem__(k, r), settings, **kw):
        events.append(ev)
    return out, events, read


def test_fast_range_or_resume_denoises_exactly_the_missing_slices_as_a_full_run_does():
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=2)
    full, events, read = _run(noisy, range(4))
    assert read == [0, 1, 2, 3] and [ev[0] for ev in events if isinstance(ev, tuple)] == [0, 1, 2, 3]
    # progress: every slice reports its prior passes, one by one up to its total
    for k in range(4):
        steps = [(ev.step, ev.steps, ev.unit) for ev in events if isinstance(ev, SliceStep) and ev.number == k]
        total = steps[0][1]
        assert total > 1 and steps == [(i, total, "prior pass") for i in range(1, total + 1)]
    # a range run, or a resume after slices 0 and 2 were written: only the missing slices are denoised
    for wanted in ([1, 3], [3], [2, 1]):
        part, _, read = _run(noisy, wanted)
        assert read == sorted(wanted) and sorted(part) == sorted(wanted)
        assert planned_fits(wanted, FAST) == len(read)  # what the progress bar plans is what runs
        for k in wanted:
            np.testing.assert_array_equal(part[k].denoised, full[k].denoised)
            np.testing.assert_array_equal(part[k].posterior_std, full[k].posterior_std)
    # a slice is a plain denoise call with the slice's seed; no warm start is asked for or made
    np.testing.assert_array_equal(full[3].denoised, denoise(noisy[3], preset="fast", device="cpu", seed=3).denoised)
    assert not any(r.info.warm_start for r in full.values()) and all(r.warm_start is None for r in full.values())


def test_warm_started_slices_do_not_depend_on_where_the_run_started(short_fit, monkeypatch):
    """The variational fit warm-starts each slice from the one before, in chains (2 slices here, to
    keep it short): a range run refits the start of the chain, never the chain before it, and gets
    the slices a full run gets; without warm starts every slice stands alone."""
    monkeypatch.setattr(slices, "CHAIN", 2)
    settings = DenoiseSettings(short_fit, "cpu")
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=2)
    full, events, read = _run(noisy, range(4), settings)
    assert read == [0, 1, 2, 3] and [full[k].info.warm_start for k in range(4)] == [False, True, False, True]
    assert {ev.unit for ev in events if isinstance(ev, SliceStep)} == {"fit step"}
    part, events, read = _run(noisy, [3], settings)
    assert read == [2, 3] and list(part) == [3]  # slice 2 refitted to warm-start 3, not written
    assert planned_fits([3], settings) == 2 and {ev.number for ev in events if isinstance(ev, SliceStep)} == {2, 3}
    assert part[3].info.warm_start
    np.testing.assert_array_equal(part[3].denoised, full[3].denoised)
    cold, _, read = _run(noisy, [3], settings.with_(warm_start=False))
    assert read == [3] and not cold[3].info.warm_start and planned_fits([3], settings.with_(warm_start=False)) == 1


def test_failing_slice_names_itself_and_keeps_earlier_ones():
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=2)
    bad = noisy.astype(np.float32)
    bad[1, 5, 5] = np.nan
    out = {}
    with pytest.raises(SliceError) as err:
        for _ in denoise_stack_steps(lambda k: bad[k], range(3), lambda k, r: out.__setitem__(k, r), FAST):
            pass
    assert err.value.number == 1 and "NaN" in str(err.value)
    assert list(out) == [0]


def test_denoise_slices_into_arrays_and_close():
    noisy, _ = noisy_fluorescence_stack(3, (32, 32), seed=1)
    den = np.zeros(noisy.shape, np.float32)
    var = np.zeros(noisy.shape, np.float32)
    done = np.zeros(3, np.uint8)
    grid = SliceGrid.leading(noisy.shape, 1)
    outputs = {"denoised": den, "noise_variance": var}
    gen = denoise_slices(noisy, grid, [0, 1, 2], outputs, FAST, done=done)
    for ev in gen:
        if isinstance(ev, SliceDone) and ev.position == (0,):
            break
    gen.close()  # stops after slice 0: nothing else written
    assert den[0].any() and not den[1].any() and not den[2].any()
    assert (var[0] > 0).all() and done.tolist() == [1, 0, 0]
    gen = denoise_slices(noisy, grid, [1, 2], outputs, FAST, done=done)  # the rest, as a resume asks
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert stop.value.value.written == [(1,), (2,)] and stop.value.value.failed is None
    assert all(den[i].any() for i in range(3)) and done.tolist() == [1, 1, 1]
    # each slice is `denoise` of it with its seed and its neighbours (-1, +1, -2, +2; the default context: the first)
    first = denoise(noisy[0], preset="fast", device="cpu", seed=0, neighbours=[None, noisy[1], None, noisy[2]])
    last = denoise(noisy[2], preset="fast", device="cpu", seed=2, neighbours=[noisy[1], None, noisy[0], None])
    np.testing.assert_array_equal(den[0], first.denoised)
    np.testing.assert_array_equal(den[2], last.denoised)


def test_closing_the_loop_mid_slice_stops_at_a_prior_pass():
    noisy, _ = noisy_fluorescence_stack(2, (32, 32), seed=1)
    den = np.zeros(noisy.shape, np.float32)
    outputs = {"denoised": den, "noise_variance": np.zeros(noisy.shape, np.float32)}
    gen = denoise_slices(noisy, SliceGrid.leading(noisy.shape, 1), [0, 1], outputs, FAST)
    first = next(gen)
    assert isinstance(first, SliceStep) and first.step == 1 < first.steps
    gen.close()
    assert not den.any()  # the slice in progress is not written


def test_denoise_slices_rgba_keeps_alpha_and_averages_the_maps():
    rng = np.random.default_rng(0)
    rgba = np.concatenate([rng.integers(0, 200, (2, 24, 24, 3)), np.full((2, 24, 24, 1), 255)], -1).astype(np.uint8)
    den = np.zeros(rgba.shape, np.float32)
    var, std = (np.zeros(rgba.shape[:-1], np.float32) for _ in range(2))
    grid = SliceGrid.leading(rgba.shape, 1)
    gen = denoise_slices(rgba, grid, [1], {"denoised": den, "noise_variance": var, "posterior_std": std}, FAST,
                         rgb=True)
    events = list(gen)
    assert [ev.position for ev in events if isinstance(ev, SliceDone)] == [(1,)]
    assert (den[1, ..., 3] == 255).all() and den[1, ..., :3].std() > 0 and not den[0].any()
    joint = denoise(rgba[1, ..., :3], channel_axis=-1, preset="fast", device="cpu", seed=1, rgb=True)
    np.testing.assert_allclose(den[1, ..., :3], joint.denoised)
    np.testing.assert_allclose(var[1], joint.noise_variance.mean(-1), rtol=1e-6)
    assert (std[1] > 0).all() and not var[0].any()


def test_denoise_slices_reports_a_bad_slice_by_position():
    noisy, _ = noisy_fluorescence_stack(4, (32, 32), seed=2)
    bad = noisy.astype(np.float32).reshape(2, 2, 32, 32)
    bad[1, 0, 3, 3] = np.inf
    den, var = np.zeros(bad.shape, np.float32), np.zeros(bad.shape, np.float32)
    gen = denoise_slices(bad, SliceGrid.leading(bad.shape, 2), range(4), {"denoised": den, "noise_variance": var},
                         FAST)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    result = stop.value.value
    assert result.written == [(0, 0), (0, 1)]
    assert result.failed.number == 2 and result.failed.position == (1, 0) and "inf" in result.failed.message.lower()


def test_a_slices_neighbours_along_the_stack():
    from napari_scoredvi.pipeline.slices import context_numbers

    z = SliceGrid.leading((5, 8, 8), 1)
    assert context_numbers(z, 0, 2) == [None, 1, None, 2]  # the stack's start: one side only
    assert context_numbers(z, 2, 2) == [1, 3, 0, 4] and context_numbers(z, 2, 0) == []
    tz = SliceGrid.leading((2, 3, 8, 8), 2)  # T x Z: along z by default, or along t
    assert context_numbers(tz, 3, 1) == [None, 4]
    assert context_numbers(tz, 1, 1, axis=0) == [None, 4]
    assert context_numbers(SliceGrid.leading((8, 8), 0), 0, 2) == []


class _Counting:
    """A stack that counts the reads of each slice."""

    def __init__(self, array):
        self.array, self.reads = array, {}
        self.shape, self.ndim, self.dtype = array.shape, array.ndim, array.dtype

    def __getitem__(self, idx):
        self.reads[idx[0]] = self.reads.get(idx[0], 0) + 1
        return self.array[idx]


def test_context_reads_each_slice_once_and_a_range_equals_the_full_run():
    noisy, _ = noisy_fluorescence_stack(6, (48, 48), seed=7)
    grid = SliceGrid.leading(noisy.shape, 1)
    settings = DenoiseSettings("fast", "cpu", context=2)

    def run(numbers):
        data = _Counting(noisy)
        outputs = {"denoised": np.full(noisy.shape, np.nan, np.float32),
                   "noise_variance": np.full(noisy.shape, np.nan, np.float32)}
        gen = denoise_slices(data, grid, numbers, outputs, settings)
        infos = [ev.info for ev in gen if isinstance(ev, SliceDone)]
        return outputs, data.reads, infos

    full, reads, infos = run(range(6))
    assert reads == {k: 1 for k in range(6)}  # a window's slices are kept for the next: memory flat, no re-reads
    assert [i.context for i in infos] == [2] * 6 and len(infos[0].context_shifts) == 2  # the ends: one side
    part, reads, _ = run([2, 3])
    assert sorted(reads) == [0, 1, 2, 3, 4, 5]  # the halo is read, not denoised
    np.testing.assert_array_equal(part["denoised"][2:4], full["denoised"][2:4])
    assert np.isnan(part["denoised"][[0, 1, 4, 5]]).all()
