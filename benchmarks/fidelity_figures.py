"""The figures of docs/fidelity.md, from one W2S frame and one image of the synthetic correlated-noise
set, each denoised with one preset.

1. Noise variance against intensity: the truth (W2S: squared residual of the raw frame against the
   aligned 400-frame average; ``corr``: the known per-pixel variance), binned by clean intensity, our
   noise-variance map binned the same way, and the line ``variance = gain * intensity + intercept``
   the engine reports (``fidelity-variance.png``, ``fidelity-variance-corr.png``).
2. The posterior std map beside the absolute error map of the W2S frame (same colour scale).

    python benchmarks/fidelity_figures.py --image 042_1 --corr-image w2s020_1_g2_r4 --preset fast
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import sets
from fidelity import binned

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default="042_1", help="W2S field and channel, e.g. 042_1")
    p.add_argument("--corr-image", default="w2s020_1_g2_r4", help="an image of the synthetic `corr` set")
    p.add_argument("--preset", default="fast")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from napari_scoredvi import denoise

    torch.set_num_threads(args.threads)
    item = next(i for i in sets.w2s() if i.name == args.image)
    r = denoise(item.noisy, preset=args.preset, device="cpu", seed=0)
    clean = sets.affine_fit(item.clean, item.noisy)  # the 400-frame average in the raw frame's units
    truth = (item.noisy - clean) ** 2
    t, level = binned(truth, clean, 20)
    m, _ = binned(r.noise_variance, clean, 20)
    variance_figure(level, t, m, r.info, f"W2S {item.name}, preset {args.preset}", "truth: (raw - aligned average)^2, "
                    "binned", "clean intensity (raw frame units)", OUT / "fidelity-variance.png")

    err = np.abs(r.denoised - clean)
    vmax = float(np.quantile(err, 0.99))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), dpi=110)
    for a, img, title in ((axes[0], r.posterior_std, "posterior std"), (axes[1], err, "|denoised - aligned average|")):
        im = a.imshow(img, cmap="magma", vmin=0, vmax=vmax)
        a.set_title(title)
        a.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="raw frame units")
    fig.suptitle(f"W2S {item.name}, preset {args.preset}")
    fig.savefig(OUT / "fidelity-posterior-std.png")
    print(f"wrote {OUT / 'fidelity-variance.png'} and {OUT / 'fidelity-posterior-std.png'}")

    item = next(i for i in sets.synthetic("corr", per_source=1) if i.name == args.corr_image)
    r = denoise(item.noisy, preset=args.preset, device="cpu", seed=0)
    t, level = binned(item.variance, item.clean, 20)
    m, _ = binned(r.noise_variance, item.clean, 20)
    lag = ", ".join(f"{v:.2f}" for v in r.info.noise_lag1)
    variance_figure(level, t, m, r.info, f"correlated noise (lag-1 0.6), {item.name}, {args.preset}\n"
                    f"info: noise_correlated {r.info.noise_correlated}, noise_lag1 (y, x) {lag}",
                    "truth: known per-pixel variance, binned", "clean intensity (ADU)",
                    OUT / "fidelity-variance-corr.png")
    print(f"wrote {OUT / 'fidelity-variance-corr.png'}")


def variance_figure(level, truth, map_binned, info, title: str, truth_label: str, xlabel: str, path: Path) -> None:
    """Binned truth and map against the binned clean intensity, with the reported line of channel 0."""
    import matplotlib.pyplot as plt

    pt = info.photon_transfer[0]  # channel 0's line, input units
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    ax.plot(level, truth, "o", label=truth_label)
    ax.plot(level, map_binned, "s", mfc="none", label="our noise-variance map, binned")
    xs = np.linspace(level.min(), level.max(), 50)
    ax.plot(xs, pt.gain * xs + pt.intercept, "-", label=f"reported line: {pt.gain:.3f} I + {pt.intercept:.1f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("noise variance (units^2)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
