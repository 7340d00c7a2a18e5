"""The quality benchmark's cache key (benchmarks/quality.py): it covers what ``denoise`` runs."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quality():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the repository")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import quality
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return quality


@pytest.mark.slow
def test_engine_files_are_what_denoise_runs(quality):
    files = quality._engine_files(ROOT)
    pkg = "src/napari_scoredvi/"
    for needed in ("engine/api.py", "engine/fit.py", "engine/noise_estimate.py", "engine/priors/models.py",
                   "engine/priors/weights/gray.pt", "engine/priors/weights/gray_corr.pt"):
        assert pkg + needed in files
    # the front ends, the pipeline and the presets (carried whole by each cached row) do not key the engine
    for front in ("engine/presets.py", "_qt/denoise_widget.py", "pipeline/run.py", "cli.py"):
        assert pkg + front not in files


def test_rows_skip_a_repeated_priors_only_ablate_the_stabilisation_and_force_colour_on_rgb(quality):
    import argparse

    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sets
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = argparse.Namespace(no_opponents=True, direct_prior=False, presets=["balanced", "variational"])
    grey = sets.Item("g", np.zeros((8, 8)), np.zeros((8, 8)))
    rgb = sets.Item("c", np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), rgb=True)
    grey_tasks = quality.tasks_for("w2s", grey, args, "engine-x")
    rows = [t.method for t in grey_tasks]
    # balanced runs no fit steps: its "priors only" would be the same computation; its stabilisation
    # gets an ablation row on grey sets (variational does not stabilise: none)
    assert rows == ["scoredvi balanced", "scoredvi balanced (not stabilised)", "priors only (variational)",
                    "scoredvi variational"]
    assert grey_tasks[0].settings["preset"]["stabilise"] and not grey_tasks[1].settings["preset"]["stabilise"]
    tasks = {t.method: t for t in quality.tasks_for("cc", rgb, args, "engine-x")}
    ablation = tasks["scoredvi balanced (colour priors)"]
    assert ablation.settings["priors"] == "colour" and "priors" not in tasks["scoredvi balanced"].settings
