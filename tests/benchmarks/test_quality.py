"""The quality benchmark (benchmarks/quality.py): its cache key covers what ``denoise`` runs, and its rows."""

import argparse

import numpy as np
import pytest

from benchmarks import common, quality, sets


@pytest.mark.slow
def test_engine_files_are_what_denoise_runs():
    files = common.engine_files()
    pkg = "src/napari_scoredvi/"
    for needed in ("engine/api.py", "engine/ensemble.py", "engine/variational/fit.py", "engine/noise_estimate.py",
                   "engine/priors/models.py", "engine/priors/weights/gray.pt", "engine/priors/weights/gray_corr.pt"):
        assert pkg + needed in files
    # the front ends, the pipeline and the presets (carried whole by each cached row) do not key the engine
    for front in ("engine/presets.py", "_qt/denoise_widget.py", "pipeline/run.py", "cli.py"):
        assert pkg + front not in files


def test_rows_ablate_the_reference_preset_and_carry_their_presets():
    args = argparse.Namespace(no_opponents=True, no_direct_prior=True,
                              presets=["balanced", "variational", "fast:stabilise=False"])
    grey = sets.Item("g", np.zeros((8, 8)), np.zeros((8, 8)))
    rgb = sets.Item("c", np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), rgb=True)
    grey_tasks = quality.tasks_for("w2s", grey, args, "engine-x")
    # the reference preset's stabilisation gets an ablation row on grey sets; no other preset does
    assert [t.method for t in grey_tasks] == ["scoredvi balanced", "scoredvi balanced (not stabilised)",
                                              "scoredvi variational", "scoredvi fast:stabilise=False"]
    presets = [common.preset_from_dict(t.settings["preset"]) for t in grey_tasks]
    assert [p.stabilise for p in (presets[0], presets[1], presets[3])] == [True, False, False]
    assert presets[2].kind == "variational" and presets[3].ensemble == 1
    tasks = {t.method: t for t in quality.tasks_for("cc", rgb, args, "engine-x")}
    ablation = tasks["scoredvi balanced (colour priors)"]
    assert ablation.settings["priors"] == "colour" and "priors" not in tasks["scoredvi balanced"].settings


def test_targets_compare_the_reference_preset_with_the_opponents():
    rows = {"scoredvi fast": 31.0, "scoredvi balanced": 31.8, "bm3d (oracle sigma, uses GT)": 31.2,
            "vst + bm3d (estimated a, b)": 31.5}
    checks = {what: (round(value, 2), target) for what, value, target in
              quality.targets("w2s", {m: {"psnr": v} for m, v in rows.items()}, ["fast", "balanced"])}
    assert checks == {"balanced - fast": (0.8, -quality.ORDER_SLACK_DB),
                      "balanced - bm3d (oracle sigma, uses GT)": (0.6, quality.OPPONENT_MARGIN_DB),
                      "balanced - vst + bm3d (estimated a, b)": (0.3, quality.OPPONENT_MARGIN_DB)}
