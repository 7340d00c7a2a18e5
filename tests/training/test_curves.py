"""The learning-curve report (training/curves.py, outside the package) on a small curve.jsonl."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training"))
import curves  # noqa: E402


def _point(stage: str, step: int, base: float) -> str:
    return json.dumps({"stage": stage, "step": step, "time": "2026-12-01 00:00:00",
                       "sigma15": base + 5, "sigma25": base + 3, "sigma50": base})


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "gray_test"
    run.mkdir()
    lines = [
        _point("shared", 1000, 25.0),
        _point("shared", 2000, 26.0),
        _point("prior0", 1, 27.5),  # logged before the resumed shared stage: order comes from the stage
        _point("shared", 2000, 26.5),  # resumed run: the same step again, this later line wins
        _point("shared", 13000, 26.8),
        json.dumps({"stage": "shared", "step": 14000, "sigma15": 32.0}),  # keys missing
        '{"stage": "shared", "step": 15000, "time": "2026-12-0',  # a write killed mid-line
    ]
    (run / "curve.jsonl").write_text("\n".join(lines))
    return run


def test_read_curve_dedupes_sorts_and_skips_bad_lines(tmp_path, capsys):
    rows = curves.read_curve(_run(tmp_path) / "curve.jsonl")
    assert [(r["stage"], r["step"]) for r in rows] == [("shared", 1000), ("shared", 2000), ("shared", 13000),
                                                      ("prior0", 1)]
    assert rows[1]["sigma50"] == 26.5
    err = capsys.readouterr().err
    assert err.count("skipped") == 2 and ":6:" in err and ":7:" in err


def test_main_prints_the_table_in_stage_and_step_order(tmp_path, capsys):
    assert curves.main([str(_run(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "### gray_test"
    table = [line for line in out if line.startswith("| ")]
    assert table == [
        "| stage | step | sigma 15 | sigma 25 | sigma 50 |",
        "| shared | 1,000 | 30.00 | 28.00 | 25.00 |",
        "| shared | 2,000 | 31.50 | 29.50 | 26.50 |",
        "| shared | 13,000 | 31.80 | 29.80 | 26.80 |",
        "| prior0 | 1 | 32.50 | 30.50 | 27.50 |",
    ]


def test_plot_writes_a_png_atomically(tmp_path, capsys):
    png = tmp_path / "figs" / "curves.png"
    assert curves.main([str(_run(tmp_path)), "--plot", str(png), "--reference", "FFDNet, known sigma 25=30.48"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert [p.name for p in png.parent.iterdir()] == ["curves.png"]  # no temporary file left behind


def test_reference_label_may_hold_an_equals_sign():
    assert curves._reference("a=b=30.5") == ("a=b", 30.5)


def test_running_hours_sums_the_log_gaps_without_the_pauses(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("2026-12-01 00:00:00 start\n2026-12-01 00:05:00 step 100\nnot a stamp\n"
                   "2026-12-01 00:10:00 step 200\n2026-12-01 05:00:00 resumed\n2026-12-01 05:06:00 step 300\n")
    assert curves.running_hours(log) == pytest.approx((10 + 6) / 60)
    assert curves.running_hours(tmp_path / "missing.log") == 0.0
