"""``python -m benchmarks stacks`` on tiny synthetic stacks (no datasets needed): every row and target."""

import importlib.machinery
import json
import math
import sys
import types

import numpy as np

from benchmarks import __main__ as entry
from benchmarks import stacks
from napari_scoredvi.engine.settings import DEFAULT_CONTEXT


def test_stacks_runs_end_to_end_on_tiny_synthetic_stacks(tmp_path, monkeypatch):
    from scipy.ndimage import gaussian_filter

    calls = []

    def fake_bm4d(z, sigma_psd, *args, **kwargs):  # the real one takes seconds even on tiny stacks
        calls.append(float(sigma_psd))
        return gaussian_filter(np.asarray(z, np.float64), (0, sigma_psd, sigma_psd))

    fake = types.ModuleType("bm4d")  # PyPI bm4d is no dependency, installed or not
    fake.__spec__ = importlib.machinery.ModuleSpec("bm4d", None)
    fake.bm4d = fake_bm4d
    monkeypatch.setitem(sys.modules, "bm4d", fake)
    argv = ["stacks", "--sets", "zstack", "timelapse", "--limit", "1", "--size", "40", "--slices", "7", "--frames", "7",
            "--z-steps", "2", "--stacks", "1", "--timelapses", "1", "--bm4d-search", "coarse", "--no-noise2vst",
            "--threads", "1", "--data", str(tmp_path / "none"), "--results", str(tmp_path)]
    entry.main(argv)
    report = json.loads((tmp_path / "stacks.json").read_text())
    assert set(report["groups"]) == {"zstack 2 steps/resolution", "timelapse motion"}
    assert report["contexts"] == [0, DEFAULT_CONTEXT] and report["target_context"] == DEFAULT_CONTEXT
    ours, sbs = f"scoredvi fast context {DEFAULT_CONTEXT}", "scoredvi fast slice by slice"
    for group in report["groups"].values():
        rows = group["summary"]
        assert {ours, sbs, f"naive 2.5D (K {DEFAULT_CONTEXT})", f"mean of window (K {DEFAULT_CONTEXT})", stacks.BM4D,
                stacks.NOISY} <= set(rows)
        assert all(math.isfinite(r["psnr"]) and r["seconds_per_slice"] >= 0 for r in rows.values())
        stack = group["stacks"][0]
        assert stack["rows"][ours]["context_used"] == [DEFAULT_CONTEXT] * len(stack["scored"])
        assert stack["rows"][sbs]["context_used"] == [0] * len(stack["scored"])
    assert calls  # the BM4D search ran, in both domains, and its runs were cached
    cached = json.loads((tmp_path / "stacks-cache-opponents.json").read_text())
    assert any("/bm4d/gat/" in k for k in cached) and any("/bm4d/raw/" in k for k in cached)
    targets = {(t["group"], t["what"]): t for t in report["targets"]}
    measured = [t for t in targets.values() if t["pass"] is not None]
    assert {t["group"] for t in measured} == {"zstack 2 steps/resolution", "timelapse motion", "all"}
    assert all(math.isfinite(t["value"]) for t in measured) and len(measured) == 4  # z: 2, time-lapse: 1, cost
    skipped = [t for t in targets.values() if t["pass"] is None]
    assert {t["group"] for t in skipped} >= {"fmdd drift", "fmdd static", "unrelated"}
    log = (tmp_path / "stacks.log").read_text()
    assert "PASS" in log or "FAIL" in log
    assert "SKIP  fmdd drift" in log
    # a second run takes BM4D from the cache
    n = len(calls)
    entry.main(argv)
    assert len(calls) == n
