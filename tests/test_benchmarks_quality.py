"""The quality benchmark's cache key (benchmarks/quality.py): it covers what ``denoise`` runs."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def test_engine_files_are_what_denoise_runs(quality):
    files = quality._engine_files(ROOT)
    pkg = "src/napari_scoredvi/"
    for needed in ("api.py", "fit.py", "noise_estimate.py", "priors/models.py", "priors/weights/gray.pt",
                   "priors/weights/gray_corr.pt"):
        assert pkg + needed in files
    # the front ends and the presets (carried whole by each cached row) do not key the engine
    for front in ("presets.py", "_widget.py", "batch.py", "cli.py"):
        assert pkg + front not in files


def test_engine_version_is_stable(quality):
    assert quality._engine_version() == quality._engine_version()
    assert quality._engine_version().startswith("engine-")
