"""The denoise widget's decisions without Qt: a request's slices, memory or store, the checks, the store."""

import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Image, Labels  # noqa: E402

from conftest import SHORT_FIT  # noqa: E402
from napari_scoredvi.engine.api import finish  # noqa: E402
from napari_scoredvi.engine.settings import DenoiseSettings  # noqa: E402
from napari_scoredvi.io.slice_grid import SliceGrid  # noqa: E402
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack  # noqa: E402
from napari_scoredvi.napari.request import (  # noqa: E402
    RUN_CLUSTER,
    RUN_HERE,
    SCOPE_ALL,
    SCOPE_RANGE,
    SCOPE_SLICE,
    DenoiseRequest,
    check_cluster,
    check_data,
    plan_run,
    prepare_store_run,
    slice_numbers,
    store_path,
)

CPU = DenoiseSettings("fast", "cpu")


def _stack(n=4, name="stack", **kwargs) -> Image:
    return Image(noisy_fluorescence_stack(n, (32, 32), seed=1)[0], name=name, **kwargs)


def test_the_core_imports_no_qt():
    code = ("import sys, napari_scoredvi.napari.request, napari_scoredvi.napari.outputs, "
            "napari_scoredvi.napari.layers\n"
            "qt = ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui')\n"
            "print([m for m in sys.modules if m.split('.')[0] in qt])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_request_is_frozen_and_checked():
    layer = _stack()
    r = DenoiseRequest(layer, CPU, SCOPE_ALL, output="o.zarr", scheduler="  tcp://h:1 ", shown=[np.int64(2)])
    assert r.output.name == "o.zarr" and r.scheduler == "tcp://h:1" and r.shown == (2,)
    assert DenoiseRequest(layer, output="").output is None
    assert DenoiseRequest(layer).settings.preset.name == "fast"  # the widget's default
    with pytest.raises(AttributeError):
        r.scope = SCOPE_SLICE
    with pytest.raises(ValueError, match="scope must be one of"):
        DenoiseRequest(layer, scope="everything")
    with pytest.raises(ValueError, match="run_on must be one of"):
        DenoiseRequest(layer, run_on="the moon")


def test_cluster_only_for_stacks_and_remembered_choice():
    layer = _stack()
    assert not DenoiseRequest(layer, run_on=RUN_CLUSTER).on_cluster  # one slice always runs here
    r = DenoiseRequest(layer, scope=SCOPE_ALL, run_on=RUN_CLUSTER, scheduler="tcp://h:1")
    assert r.on_cluster and r.remembered_choice() == {"run_on": RUN_CLUSTER, "scheduler": "tcp://h:1"}
    assert DenoiseRequest(layer, scope=SCOPE_ALL).remembered_choice() == {"run_on": RUN_HERE}


def test_slice_numbers_by_scope():
    grid = SliceGrid.leading((3, 4, 32, 32), 2)  # T x Z
    assert slice_numbers(grid, SCOPE_ALL) == list(range(12))
    assert slice_numbers(grid, SCOPE_SLICE, shown=(1, 2)) == [6]
    assert slice_numbers(grid, SCOPE_SLICE) == [0]
    assert slice_numbers(grid, SCOPE_SLICE, shown=(9, -1)) == [8]  # clipped into the stack
    assert slice_numbers(grid, SCOPE_RANGE, 1, 2) == list(range(4, 12))  # times 1-2 with all their z
    assert slice_numbers(SliceGrid.leading((32, 32), 0), SCOPE_ALL) == [0]
    for first, last in ((3, 9), (-1, 0)):
        with pytest.raises(ValueError, match="outside the stack's first axis"):
            slice_numbers(grid, SCOPE_RANGE, first, last)
    with pytest.raises(ValueError, match=r"starts after it ends \(2 > 1\)"):
        slice_numbers(grid, SCOPE_RANGE, 2, 1)


def test_check_data_shares_the_engine_dtype_check():
    check_data(np.zeros((32, 32), np.uint16), rgb=False)
    for data, rgb in ((np.zeros((32, 32), bool), False), (np.zeros((32, 32), complex), False),
                      (np.zeros((32,), np.float32), False), (np.zeros((32, 32), np.uint8), True)):
        message = f"cannot denoise data of shape {data.shape} and dtype {data.dtype}"
        with pytest.raises(ValueError, match=re.escape(message)):
            check_data(data, rgb)


def test_plan_errors():
    with pytest.raises(ValueError, match="no image layer selected"):
        plan_run(DenoiseRequest(None, CPU))
    with pytest.raises(ValueError, match="'lab' is a Labels layer; ScoreDVI works on Image layers"):
        plan_run(DenoiseRequest(Labels(np.zeros((32, 32), np.int32), name="lab"), CPU))
    with pytest.raises(ValueError, match="cannot denoise data"):
        plan_run(DenoiseRequest(Image(np.zeros((32, 32), bool)), CPU))
    with pytest.raises(ValueError, match="unknown device"):
        plan_run(DenoiseRequest(_stack(), DenoiseSettings("fast", "tpu")))
    plan_run(DenoiseRequest(_stack(), DenoiseSettings("fast", "tpu"), SCOPE_ALL, run_on=RUN_CLUSTER))  # workers decide
    with pytest.raises(ValueError, match="outside the stack"):
        plan_run(DenoiseRequest(_stack(), CPU, SCOPE_RANGE, 3, 9))


def test_plan_memory_or_store():
    notes = []
    one = plan_run(DenoiseRequest(_stack(), CPU, shown=(2,)), notes.append)
    assert one.numbers == (2,) and not one.to_store and not notes
    assert one.memory_shapes() == {"denoised": (4, 32, 32), "noise_variance": (4, 32, 32)}
    assert plan_run(DenoiseRequest(_stack(), CPU, SCOPE_ALL)).to_store
    ranged = plan_run(DenoiseRequest(_stack(), CPU, SCOPE_RANGE, 1, 2))
    assert ranged.numbers == (1, 2) and ranged.to_store
    assert not plan_run(DenoiseRequest(_stack(1), CPU, SCOPE_ALL)).to_store  # a stack of one slice
    rgb = Image(np.zeros((2, 32, 40, 3), np.uint8), rgb=True)
    plan = plan_run(DenoiseRequest(rgb, CPU, SCOPE_ALL, posterior_std=True), notes.append)
    assert not plan.to_store
    assert notes == ["RGB stacks are denoised into memory (the OME-Zarr output holds grey stacks)"]
    assert plan.memory_shapes() == {"denoised": (2, 32, 40, 3), "noise_variance": (2, 32, 40),
                                    "posterior_std": (2, 32, 40)}


def test_multiscale_plans_its_full_resolution():
    noisy = noisy_fluorescence_stack(1, (32, 32), seed=5)[0][0]
    notes = []
    plan = plan_run(DenoiseRequest(Image([noisy, noisy[::2, ::2]], multiscale=True, name="ms"), CPU), notes.append)
    assert plan.data.shape == (32, 32) and notes == ["'ms' is multiscale; denoising its full-resolution level"]


def test_cluster_checks(monkeypatch):
    with pytest.raises(ValueError, match="scheduler's address"):
        check_cluster(DenoiseRequest(_stack(), CPU, SCOPE_ALL, run_on=RUN_CLUSTER))
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ValueError, match=r"napari-scoredvi\[cluster\]"):
        check_cluster(DenoiseRequest(_stack(), CPU, SCOPE_ALL, run_on=RUN_CLUSTER, scheduler="tcp://h:1"))


def test_store_path(tmp_path):
    layer = _stack(name="in memory")
    assert store_path(DenoiseRequest(layer, output=tmp_path / "out")) == tmp_path / "out.zarr"
    assert store_path(DenoiseRequest(layer, output=tmp_path / "o.zarr")) == tmp_path / "o.zarr"
    assert store_path(DenoiseRequest(layer)).name == "in_memory-denoised.zarr"  # a temporary folder


def test_prepare_store_run_asks_only_when_the_store_exists(tmp_path):
    pytest.importorskip("zarr", minversion="3")
    from napari_scoredvi.napari.outputs import run_to_end

    out = tmp_path / "s.zarr"
    plan = plan_run(DenoiseRequest(_stack(3), CPU, SCOPE_RANGE, 0, 0, output=out))
    asked = []
    run = prepare_store_run(plan, lambda path, owner: asked.append(path) or "cancel")
    assert asked == [] and run.todo == [0] and run.store.outputs == ("denoised", "noise_variance")
    assert finish(run_to_end(run.steps())).error is None
    assert prepare_store_run(plan, lambda path, owner: asked.append(path) or "cancel") is None and asked == [out]
    assert run.store.done().tolist() == [True, False, False]  # cancelled: nothing touched
    every = plan_run(DenoiseRequest(_stack(3), CPU, SCOPE_ALL, output=out))
    assert prepare_store_run(every, lambda path, owner: "resume").todo == [1, 2]
    assert prepare_store_run(every, lambda path, owner: "replace").todo == [0, 1, 2]
    other = plan_run(DenoiseRequest(_stack(3), DenoiseSettings("fast", "cpu", seed=1), SCOPE_ALL, output=out))
    # the widget's words, not the library's arguments
    with pytest.raises(ValueError, match=r"different seed; .*replace it \(Run again and choose Replace\)"):
        prepare_store_run(other, lambda path, owner: "resume")
    from napari_scoredvi.io.lock import acquire

    with acquire(out), pytest.raises(OSError, match=r"in use by another run in this process; .*finished slices "
                                                    r"afterwards \(Run again and choose Resume\)"):
        prepare_store_run(every, lambda path, owner: "resume")


def test_provenance_of_output_layers():
    r = DenoiseRequest(_stack(name="cells"), DenoiseSettings(SHORT_FIT, "cpu", lam=1.5), SCOPE_ALL)
    meta = r.provenance(4)
    assert meta["source"] == "cells" and meta["scope"] == SCOPE_ALL and meta["lam"] == 1.5
    assert meta["preset"]["name"] == "variational" and meta["warm_start"] and meta["slices_done"] == []
    assert r.provenance(4)["slices_done"] is not meta["slices_done"]  # one list per layer
    assert not r.provenance(1)["warm_start"]  # one slice has no neighbour to start from
    assert not DenoiseRequest(_stack(), CPU, SCOPE_ALL).provenance(4)["warm_start"]  # fast: no warm starts
