"""The batch pipeline (``napari-scoredvi denoise``): readers, OME-Zarr output, resume, errors, dask."""

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_scoredvi import denoise
from napari_scoredvi.cli import main
from napari_scoredvi.engine.settings import DenoiseSettings
from napari_scoredvi.io.read import open_volume
from napari_scoredvi.io.store import ATTRS_KEY
from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
from napari_scoredvi.pipeline.events import RunStarted, SliceDone, SliceStep
from napari_scoredvi.pipeline.run import denoise_volume

#: the shipped default preset on small slices: these tests check plumbing, not denoising quality
RUN = dict(settings=DenoiseSettings("fast", "cpu"))
ONE = dict(preset="fast", device="cpu")  # the same, for a single `denoise` call


@pytest.fixture
def stack():
    return noisy_fluorescence_stack(3, (32, 40), seed=1)[0]  # (Z, Y, X) uint16


def checksums(path: Path) -> dict:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def read(out: Path, name: str = "denoised") -> np.ndarray:
    return zarr.open_array(str(out / name / "0"), mode="r")[:]


def provenance(out: Path) -> dict:
    return zarr.open_group(str(out), mode="r").attrs[ATTRS_KEY]


def multiscale(out: Path, name: str = "denoised") -> dict:
    return zarr.open_group(str(out / name), mode="r").attrs["multiscales"][0]


@pytest.mark.parametrize("kind", ["ome", "imagej"])
def test_tiff_to_zarr_keeps_shape_axes_and_scale(tmp_path, stack, kind, capsys):
    src = tmp_path / "stack.tif"
    if kind == "ome":
        tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.2,
                                                         "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.5})
        scale = [1.5, 0.2, 0.2]
    else:
        tifffile.imwrite(src, stack, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                         metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
        scale = [2.0, 0.25, 0.25]
    before = checksums(src)
    out = tmp_path / "out.zarr"
    assert main(["denoise", str(src), str(out), "--preset", "fast", "--device", "cpu", "--posterior-std"]) == 0
    assert "done: wrote" in capsys.readouterr().out
    assert checksums(src) == before  # the input is never written to
    for name in ("denoised", "noise_variance", "posterior_std"):
        arr = zarr.open_array(str(out / name / "0"), mode="r")
        assert arr.shape == stack.shape and arr.dtype == np.float32 and arr.chunks == (1, 32, 40)
        assert np.isfinite(arr[:]).all()
        ms = multiscale(out, name)
        assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
        assert all(a["unit"] == "micrometer" for a in ms["axes"])
        np.testing.assert_allclose(ms["datasets"][0]["coordinateTransformations"][0]["scale"], scale)
    meta = provenance(out)
    assert meta["status"] == "complete" and meta["finished"] and meta["parameters"]["axes"] == "ZYX"
    assert [meta["slices"][str(k)]["slice"] for k in range(3)] == [{"Z": 0}, {"Z": 1}, {"Z": 2}]
    assert meta["parameters"]["preset"]["name"] == "fast"
    # slice k is exactly `denoise` of that slice with seed + k and its neighbours (-1, +1, -2, +2)
    first = denoise(stack[0], seed=0, neighbours=[None, stack[1], None, stack[2]], **ONE)
    ref = denoise(stack[1], seed=1, neighbours=[stack[0], stack[2], None, None], **ONE)
    # each slice's photon transfer (its noise level function in input units) is in the provenance
    pt = meta["slices"]["0"]["photon_transfer"]
    assert len(pt) == 1 and pt[0] == pytest.approx(first.info.as_dict()["photon_transfer"][0])
    # and its noise correlation (lag 1 along y and x; 0, 0 for pixel-independent noise)
    assert meta["slices"]["0"]["noise_lag1"] == list(first.info.noise_lag1)
    np.testing.assert_allclose(read(out)[0], first.denoised, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(read(out)[1], ref.denoised, rtol=1e-6, atol=1e-4)


def test_ome_zarr_and_zarr_array_inputs(tmp_path, stack, caplog):
    # OME-Zarr 0.4 group with a time axis and a scale; full resolution is level "0"
    src = tmp_path / "in.ome.zarr"
    g = zarr.open_group(str(src), mode="w", zarr_format=2)
    g.create_array("0", data=stack[:2], chunks=(1, 32, 40))
    g.create_array("1", data=stack[:2, ::2, ::2])
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "t", "type": "time", "unit": "second"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [5.0, 0.5, 0.5]}]},
                     {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [5.0, 1.0, 1.0]}]}]}]
    before = checksums(src)
    out = denoise_volume(src, tmp_path / "out.zarr", **RUN)
    assert checksums(src) == before
    assert read(out).shape == (2, 32, 40) and np.isfinite(read(out)).all()
    ms = multiscale(out)
    assert [(a["name"], a["unit"]) for a in ms["axes"]] == [("t", "second"), ("y", "micrometer"), ("x", "micrometer")]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [5.0, 0.5, 0.5]

    # a plain 3D zarr (v3) array is taken as a stack of 2D frames, with a note saying so;
    # channels denoised jointly with channel_axis
    arr_path = tmp_path / "plain.zarr"
    zarr.open_array(str(arr_path), mode="w", shape=(2, 32, 40), dtype="uint16", chunks=(1, 32, 40))[:] = stack[:2]
    caplog.set_level(logging.WARNING, logger="napari_scoredvi")
    assert open_volume(arr_path).axes == "ZYX"
    assert caplog.text.count("treating dimension 0 (2 entries) as a stack of 2D frames (Z); pass axes='TYX'") == 1
    out2 = denoise_volume(arr_path, tmp_path / "out2.zarr", axes="cyx", channel_axis=0, **RUN)
    meta = provenance(out2)
    assert meta["n_slices"] == 1 and meta["slices"]["0"]["slice"] == {}
    assert zarr.open_array(str(out2 / "done"), mode="r")[:].tolist() == [1]
    ref = denoise(stack[:2], channel_axis=0, seed=0, **ONE)
    np.testing.assert_allclose(read(out2), ref.denoised, rtol=1e-6, atol=1e-4)


def test_refuses_to_overwrite_unless_asked(tmp_path, stack, capsys):
    src, out = tmp_path / "s.tif", tmp_path / "out.zarr"
    tifffile.imwrite(src, stack[0])  # a single 2D page: axes YX
    denoise_volume(src, out, **RUN)
    with pytest.raises(FileExistsError, match=r"resume=True\).*overwrite=True\)"):
        denoise_volume(src, out, **RUN)
    assert main(["denoise", str(src), str(out), "--device", "cpu"]) == 2
    assert "napari-scoredvi: error:" in capsys.readouterr().err
    denoise_volume(src, out, overwrite=True, **RUN)
    assert provenance(out)["status"] == "complete" and len(provenance(out)["runs"]) == 1
    # --overwrite never deletes something that is not a Zarr store
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        denoise_volume(src, other, overwrite=True, **RUN)
    assert (other / "keep.txt").exists()
    with pytest.raises(ValueError, match="outside the input"):
        denoise_volume(src, src, overwrite=True, **RUN)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_clean_run(tmp_path, stack):
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX"})
    clean = denoise_volume(src, tmp_path / "clean.zarr", posterior_std=True, **RUN)

    def stop_after_first(event):
        if isinstance(event, SliceDone):
            raise Interrupt

    part = tmp_path / "part.zarr"
    with pytest.raises(Interrupt):
        denoise_volume(src, part, posterior_std=True, progress=stop_after_first, **RUN)
    assert provenance(part)["status"] == "interrupted"
    assert zarr.open_array(str(part / "done"), mode="r")[:].tolist() == [1, 0, 0]
    assert np.isnan(read(part)[1:]).all()  # unwritten slices read as NaN
    with pytest.raises(ValueError, match="different seed"):
        denoise_volume(src, part, DenoiseSettings("fast", "cpu", seed=5), resume=True, posterior_std=True)

    seen, denoised = [], []
    denoise_volume(src, part, resume=True, posterior_std=True, progress=lambda e: seen.append((e.done, e.total))
                   if isinstance(e, (RunStarted, SliceDone)) else denoised.append(e.number)
                   if isinstance(e, SliceStep) else None, **RUN)
    assert seen == [(1, 3), (2, 3), (3, 3)]  # slice 0 was kept, not redone
    assert sorted(set(denoised)) == [1, 2]  # and the engine did no work on it (fast: no warm-start refit)
    meta = provenance(part)
    assert meta["status"] == "complete" and [r["slices_todo"] for r in meta["runs"]] == [3, 2]
    assert meta["runs"][1]["resumed"]
    for name in ("denoised", "noise_variance", "posterior_std"):
        np.testing.assert_allclose(read(part, name), read(clean, name), rtol=1e-6, atol=1e-6)
    # resuming a finished run does nothing
    denoise_volume(src, part, resume=True, posterior_std=True, **RUN)
    assert provenance(part)["runs"][-1]["slices_todo"] == 0


def test_a_resume_is_recorded_as_one_even_before_any_slice_finished(tmp_path, stack):
    src, out = tmp_path / "s.tif", tmp_path / "out.zarr"
    tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX"})

    def stop_at_start(event):
        raise Interrupt  # e.g. Ctrl-C during the first slice

    with pytest.raises(Interrupt):
        denoise_volume(src, out, progress=stop_at_start, **RUN)
    assert zarr.open_array(str(out / "done"), mode="r")[:].tolist() == [0, 0, 0]
    denoise_volume(src, out, resume=True, **RUN)
    runs = provenance(out)["runs"]
    assert [r["resumed"] for r in runs] == [False, True] and [r["slices_todo"] for r in runs] == [3, 3]
    # --resume on an output that does not exist yet starts a new run: not a resume
    denoise_volume(src, tmp_path / "new.zarr", resume=True, **RUN)
    assert [r["resumed"] for r in provenance(tmp_path / "new.zarr")["runs"]] == [False]


def test_progress_reports_every_prior_pass_of_every_slice(tmp_path, stack):
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX"})
    events = []
    denoise_volume(src, tmp_path / "out.zarr", progress=lambda e: events.append(e)
                   if isinstance(e, (SliceStep, SliceDone)) else None, **RUN)
    # per slice: its passes one by one up to its total, then the slice is done; slices in order
    order = [(type(e).__name__, e.number) for e in events]
    assert [n for kind, n in order if kind == "SliceDone"] == [0, 1, 2]
    for z in range(3):
        steps = [e for e in events if isinstance(e, SliceStep) and e.number == z]
        total = steps[0].steps
        assert total > 1 and [(e.step, e.steps, e.unit, e.label) for e in steps] == [
            (i, total, "prior pass", {"Z": z}) for i in range(1, total + 1)]
        assert order.index(("SliceDone", z)) == order.index(("SliceStep", z)) + total  # done after its last pass


def test_a_failing_slice_stops_the_run_and_keeps_finished_slices(tmp_path, stack):
    bad = stack.astype(np.float32)
    bad[1, 5, 5] = np.nan
    src, out = tmp_path / "bad.tif", tmp_path / "out.zarr"
    tifffile.imwrite(src, bad, ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(RuntimeError, match=r"slice Z=1 failed \(ValueError: .*NaN.*resume \(resume=True\)"):
        denoise_volume(src, out, **RUN)
    meta = provenance(out)
    assert meta["status"] == "failed" and meta["slices"]["1"]["status"] == "failed"
    assert zarr.open_array(str(out / "done"), mode="r")[:].tolist() == [1, 0, 0]


def test_clear_errors_for_bad_input(tmp_path, stack, capsys):
    out = tmp_path / "out.zarr"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        denoise_volume(tmp_path / "missing.tif", out, **RUN)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff" * 10)
    with pytest.raises(ValueError, match="as a TIFF"):
        denoise_volume(garbage, out, **RUN)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="not a Zarr store"):
        denoise_volume(tmp_path / "folder", out, **RUN)
    with pytest.raises(ValueError, match="neither a TIFF"):
        denoise_volume(tmp_path / "folder" / "a.txt", out, **RUN)
    line = tmp_path / "line.zarr"
    zarr.open_array(str(line), mode="w", shape=(64,), dtype="uint16")[:] = 1
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        denoise_volume(line, out, **RUN)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(ValueError, match="contradicts"):
        denoise_volume(src, out, axes="TYX", **RUN)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.stack([stack] * 2), photometric="minisblack")  # 4D, no metadata
    with pytest.raises(ValueError, match="does not say what its axes are"):
        denoise_volume(plain, out, **RUN)
    with pytest.raises(ValueError, match="has 3 letters but the image has 4"):
        denoise_volume(plain, out, axes="ZYX", **RUN)
    with pytest.raises(ValueError, match="last two axes must be Y and X"):
        denoise_volume(plain, out, axes="TZXC", **RUN)
    for bad in (2, -1, 4):
        with pytest.raises(ValueError, match="channel_axis"):
            denoise_volume(plain, out, axes="TZYX", channel_axis=bad, **RUN)
    assert not out.exists()
    assert main(["denoise", str(garbage), str(out)]) == 2
    assert "napari-scoredvi: error: could not read" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_cluster():
    """A dask LocalCluster with two worker processes, shared by this module's cluster tests (its
    workers import torch and load the priors once)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cl:
        yield cl


def test_distributed_cluster_equals_local_run(tmp_path, stack, local_cluster):
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX"})
    local = denoise_volume(src, tmp_path / "local.zarr", **RUN)
    remote = denoise_volume(src, tmp_path / "remote.zarr", scheduler=local_cluster.scheduler_address, **RUN)
    assert provenance(remote)["status"] == "complete"
    assert zarr.open_array(str(remote / "done"), mode="r")[:].tolist() == [1, 1, 1]
    for name in ("denoised", "noise_variance"):
        a, b = read(remote, name), read(local, name)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 * float(np.ptp(b)))


KILL_AFTER_FIRST_SLICE = """
import os, signal, sys
from napari_scoredvi.pipeline.run import denoise_volume
from napari_scoredvi.engine.settings import DenoiseSettings
def kill(event):
    if type(event).__name__ == "SliceDone":
        os.kill(os.getpid(), signal.SIGKILL)
denoise_volume(sys.argv[1], sys.argv[2], DenoiseSettings("fast", "cpu"), progress=kill)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_resume_after_sigkill(tmp_path, stack):
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, stack, ome=True, metadata={"axes": "ZYX"})
    out = tmp_path / "killed.zarr"
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SLICE, str(src), str(out)], timeout=120)
    assert proc.returncode == -9
    assert provenance(out)["status"] == "running"  # the killed process wrote nothing more
    assert zarr.open_array(str(out / "done"), mode="r")[:].tolist() == [1, 0, 0]
    denoise_volume(src, out, resume=True, **RUN)
    clean = denoise_volume(src, tmp_path / "clean.zarr", **RUN)
    np.testing.assert_allclose(read(out), read(clean), rtol=1e-6, atol=1e-6)


def test_cluster_without_shared_files_sends_slices_and_writes_here(tmp_path, stack, monkeypatch, local_cluster):
    """Workers that do not see this machine's files (a remote GPU box) get each slice sent and send
    the results back; this process writes the store. Same arrays as a local run."""
    from napari_scoredvi.io.read import volume_from_array
    from napari_scoredvi.pipeline import cluster
    from napari_scoredvi.pipeline import run as batch

    settings = RUN["settings"]
    local = batch.prepare_run(volume_from_array(stack, "ZYX"), tmp_path / "local.zarr", settings)
    list(local.steps())
    monkeypatch.setattr(cluster, "workers_see", lambda client, path, fingerprint: False)
    remote = batch.prepare_run(volume_from_array(stack, "ZYX"), tmp_path / "remote.zarr", settings,
                               posterior_std=True)
    events = list(remote.steps(local_cluster.scheduler_address))
    # each slice is a task of its own: the workers finish them in any order, each once
    assert sorted(e.number for e in events if isinstance(e, SliceDone)) == [0, 1, 2]
    # every slice's prior passes are reported from the worker, up to its total
    last = {e.number: e for e in events if isinstance(e, SliceStep)}
    assert sorted(last) == [0, 1, 2] and all(e.step == e.steps > 1 for e in last.values())
    assert provenance(remote.path)["status"] == "complete" and provenance(remote.path)["parameters"]["input"] == ""
    np.testing.assert_allclose(read(remote.path), read(local.path), rtol=1e-4, atol=1e-3)
    assert np.isfinite(read(remote.path, "posterior_std")).all()


def _rgb(stack: np.ndarray) -> np.ndarray:
    """(..., Y, X, 3) uint8 colour frames from the noisy stack: R, G, B share the structure."""
    s = stack.astype(np.float64) / stack.max()
    return np.clip(255 * np.stack([0.9 * s, 0.6 * s + 0.1, 0.3 * s + 0.2], axis=-1), 0, 255).astype(np.uint8)


def test_rgb_tiff_goes_through_the_colour_priors_channels_first(tmp_path, stack, caplog):
    src = tmp_path / "rgb.tif"
    rgb = _rgb(stack[0])
    tifffile.imwrite(src, rgb, photometric="rgb")
    before = checksums(src)
    out = denoise_volume(src, tmp_path / "out.zarr", **RUN)
    assert checksums(src) == before
    meta = provenance(out)
    assert meta["parameters"]["rgb"] is True and meta["parameters"]["channel_axis"] == 0
    assert meta["slices"]["0"]["prior_set"] == "colour"
    assert [a["name"] for a in multiscale(out)["axes"]] == ["c", "y", "x"]
    ref = denoise(np.moveaxis(rgb, -1, 0), channel_axis=0, rgb=True, seed=0, **ONE)
    np.testing.assert_allclose(read(out), ref.denoised, rtol=1e-6, atol=1e-4)
    assert read(out, "noise_variance").shape == (3, 32, 40)

    # a stack of RGB frames without axis metadata: dimension 0 is taken as Z, with a note saying so
    caplog.set_level(logging.WARNING, logger="napari_scoredvi")
    tifffile.imwrite(tmp_path / "rgbz.tif", _rgb(stack[:2]), photometric="rgb")
    vol = open_volume(tmp_path / "rgbz.tif")
    assert (vol.axes, vol.array.shape, vol.rgb) == ("ZCYX", (2, 3, 32, 40), True)
    assert "as a stack of 2D RGB frames (Z); pass axes='TCYX'" in caplog.text

    # RGBA: alpha is no intensity to denoise; refused before any output exists
    tifffile.imwrite(tmp_path / "rgba.tif", np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), photometric="rgb")
    with pytest.raises(ValueError, match="RGB with 4 samples per pixel"):
        denoise_volume(tmp_path / "rgba.tif", tmp_path / "rgba.zarr", **RUN)
    assert not (tmp_path / "rgba.zarr").exists()
