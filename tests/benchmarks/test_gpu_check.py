"""``python -m benchmarks gpu`` (the GPU check, issue 39) runs end to end on the CPU with tiny sizes, and
its time keeping stops what would not fit."""

import json
import math
import time

import numpy as np
import pytest
import torch

from benchmarks import __main__ as entry
from benchmarks import gpu_check


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_the_cpu_smoke_run_writes_every_row_with_finite_figures(tmp_path):
    threads = torch.get_num_threads()
    entry.main(["gpu", "--device", "cpu", "--smoke", "--threads", "1", "--results", str(tmp_path),
                "--tests", "tests/engine/test_cuda_matches_cpu.py"])
    assert torch.get_num_threads() == threads  # --threads is this run's only
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert not (tmp_path / "gpu.json.tmp").exists()
    assert report["settings"]["device"] == "cpu" and report["machine_info"]["cpu_count"] >= 1
    assert report["tests"]["returncode"] == 0 and "skipped" in report["tests"]["summary"]  # no CUDA here
    presets = gpu_check.SMOKE["presets"]
    expected = {gpu_check.row_name(*p) for p in gpu_check.plan(presets, [32, 64], 3, 32)}
    rows = report["rows"]
    assert {r["name"] for r in rows} == expected and len(rows) == 3 * 3
    for row in rows:
        assert "skipped" not in row and "stopped" not in row, row
        for key in ("seconds", "seconds_per_slice", "psnr_db"):
            assert _finite(row[key]), (row["name"], key, row[key])
        assert row["peak_gpu_mb"] is None  # no GPU memory on the CPU
        if row["kind"] == "stack":
            assert row["slices_done"] == 3 and len(row["slice_seconds"]) == 3
        ref = row["reference"]
        for key in ("cpu_seconds", "psnr_device_db", "psnr_cpu_db", "dpsnr_db", "max_abs_diff"):
            assert _finite(ref[key]), (row["name"], key, ref[key])
        # the CPU against itself at the same seed: identical (no PSNR), dPSNR 0
        assert ref["identical"] and ref["psnr_device_vs_cpu_db"] is None and ref["dpsnr_db"] == 0.0
    verdicts = {t["target"]: t["verdict"] for t in report["targets"]}
    assert sum(v == "PASS" for v in verdicts.values()) == len(rows)  # each row's dPSNR; the 512 targets unmeasured
    log = (tmp_path / "gpu.log").read_text()
    assert "GPU check, device cpu" in log and "CUDA tests:" in log and "CPU references" in log


def test_rows_run_the_ensemble_first_then_the_fit():
    rows = gpu_check.plan(["fast", "variational", "balanced"], [512, 2048], 32, 512)
    assert rows[:6] == [("fast", "slice", 512, 1), ("balanced", "slice", 512, 1), ("fast", "stack", 512, 32),
                        ("balanced", "stack", 512, 32), ("fast", "slice", 2048, 1), ("balanced", "slice", 2048, 1)]
    assert rows[6:] == [("variational", "slice", 512, 1), ("variational", "stack", 512, 32),
                        ("variational", "slice", 2048, 1)]


def test_the_clock_stops_a_run_projected_past_its_limit(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    clock = gpu_check.Clock(limit=10.0, t0=0.0)
    for step in (1, 2):  # 1 s per unit after a 1 s set-up: 100 units project to 100 s
        now[0] = float(step)
        clock.tick(step, 100)
    now[0] = 3.0
    with pytest.raises(gpu_check._Stop, match="projected 100.0 s > 10.0 s"):  # over 3 x the limit: at once
        clock.tick(3, 100)
    assert clock.rate == pytest.approx(1.0) and clock.setup() == pytest.approx(0.0)
    near = gpu_check.Clock(limit=10.0, t0=0.0)
    for step in range(1, 6):  # projected 12 s, under 3 x the limit: it waits for 5 units after the first
        now[0] = 1.0 + step
        near.tick(step, 11)
    now[0] = 7.0
    with pytest.raises(gpu_check._Stop, match="projected 12.0 s"):
        near.tick(6, 11)


def test_agreement_of_different_results_is_a_finite_psnr():
    clean = np.linspace(0, 100, 64, dtype=np.float32).reshape(8, 8)
    cpu = clean + 1.0
    same = gpu_check.agreement(cpu, cpu, clean)
    assert same["identical"] and same["psnr_device_vs_cpu_db"] is None and same["dpsnr_db"] == 0
    other = gpu_check.agreement(cpu + 0.01, cpu, clean)
    assert not other["identical"] and other["psnr_device_vs_cpu_db"] == pytest.approx(80.0, abs=0.01)
    assert other["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
