import subprocess
import sys

import numpy as np
import tifffile

from napari_scoredvi.cli import main


def test_demo_writes_outputs_and_reports(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "out"), "--preset", "fast", "--size", "48", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "PSNR vs clean" in printed and "took" in printed
    for name in ("noisy", "clean", "denoised", "noise_variance", "posterior_std"):
        data = tifffile.imread(tmp_path / "out" / f"{name}.tif")
        assert data.shape == (48, 48)
    assert tifffile.imread(tmp_path / "out" / "noisy.tif").dtype == np.uint16
    assert not list((tmp_path / "out").glob("*.part"))


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "napari_scoredvi.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("napari-scoredvi ")
    cmd = [sys.executable, "-m", "napari_scoredvi.cli", "demo", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0 and "--preset" in out.stdout


def test_bad_device_is_a_clean_error(tmp_path, capsys):
    rc = main(["demo", str(tmp_path), "--device", "cuda", "--size", "32"])
    import torch

    if not torch.cuda.is_available():
        assert rc == 2
        assert "no CUDA GPU" in capsys.readouterr().err


HELP_WITHOUT_TORCH = """
import sys
from napari_scoredvi.cli import main
for argv in (["--help"], ["denoise", "--help"], ["demo", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in ("torch", "dask", "zarr", "tifffile", "napari", "tqdm") if m in sys.modules)
print("heavy:", heavy, file=sys.stderr)
sys.exit(1 if heavy else 0)
"""


def test_help_loads_no_heavy_modules():
    """--help parses arguments without importing torch (seconds on a cold disk) or the readers."""
    out = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--preset" in out.stdout and "--axes" in out.stdout
