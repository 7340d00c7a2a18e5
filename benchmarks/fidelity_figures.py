"""``fidelity --figures``: the figures of docs/explanation/noise-and-uncertainty.md
(docs/images/fidelity-*.png), from one W2S frame and one image of the synthetic correlated-noise set,
each denoised with one preset.

1. Noise variance against intensity: the truth (W2S: squared residual of the raw frame against the
   aligned 400-frame average; ``corr``: the known per-pixel variance), binned by clean intensity, our
   noise-variance map binned the same way, and the line ``variance = gain * intensity + intercept``
   the engine reports (``fidelity-variance.png``, ``fidelity-variance-corr.png``).
2. The posterior std map beside the absolute error map of the W2S frame (same colour scale).

Options: ``--figure-image`` (W2S field and channel), ``--figure-corr-image`` (an image of ``corr``),
``--figure-preset``, ``--figures-dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from . import sets
from .common import ROOT, preset_arg, preset_config
from .measure import binned


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``fidelity --figures``."""
    p.add_argument("--figures", action="store_true",
                   help="write the figures of docs/explanation/noise-and-uncertainty.md instead of the tables")
    p.add_argument("--figure-image", default="042_1", help="--figures: W2S field and channel")
    p.add_argument("--figure-corr-image", default="w2s020_1_g2_r4", help="--figures: an image of the corr set")
    p.add_argument("--figure-preset", type=preset_arg, default="fast", help="--figures: the preset denoising both")
    p.add_argument("--figures-dir", type=Path, default=ROOT / "docs" / "images", help="--figures: where they go")


def _pick(items: list[sets.Item], name: str, which: str) -> sets.Item:
    found = [i for i in items if i.name == name]
    if not found:
        raise SystemExit(f"no image {name!r} in {which}: one of {', '.join(i.name for i in items)}")
    return found[0]


def write(args: argparse.Namespace) -> None:
    """Denoise the two images and write ``fidelity-variance.png``, ``fidelity-posterior-std.png`` and
    ``fidelity-variance-corr.png`` into ``args.figures_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_scoredvi import denoise

    out_dir, name = args.figures_dir, args.figure_preset
    preset = preset_config(name)
    item = _pick(sets.w2s(args.data), args.figure_image, "w2s")
    r = denoise(item.noisy, preset=preset, device="cpu", seed=0)
    clean = sets.affine_fit(item.clean, item.noisy)  # the 400-frame average in the raw frame's units
    truth = (item.noisy - clean) ** 2
    t, level = binned(truth, clean, 20)
    m, _ = binned(r.noise_variance, clean, 20)
    variance_figure(level, t, m, r.info, f"W2S {item.name}, preset {name}", "truth: (raw - aligned average)^2, "
                    "binned", "clean intensity (raw frame units)", out_dir / "fidelity-variance.png")

    err = np.abs(r.denoised - clean)
    vmax = float(np.quantile(err, 0.99))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), dpi=110)
    for a, img, title in ((axes[0], r.posterior_std, "posterior std"), (axes[1], err, "|denoised - aligned average|")):
        im = a.imshow(img, cmap="magma", vmin=0, vmax=vmax)
        a.set_title(title)
        a.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="raw frame units")
    fig.suptitle(f"W2S {item.name}, preset {name}")
    fig.savefig(out_dir / "fidelity-posterior-std.png")
    plt.close(fig)
    print(f"wrote {out_dir / 'fidelity-variance.png'} and {out_dir / 'fidelity-posterior-std.png'}")

    item = _pick(sets.synthetic("corr", args.data, per_source=1), args.figure_corr_image, "corr (1 image per source)")
    r = denoise(item.noisy, preset=preset, device="cpu", seed=0)
    t, level = binned(item.variance, item.clean, 20)
    m, _ = binned(r.noise_variance, item.clean, 20)
    lag = ", ".join(f"{v:.2f}" for v in r.info.noise_lag1)
    variance_figure(level, t, m, r.info, f"correlated noise (lag-1 0.6), {item.name}, {name}\n"
                    f"info: noise_correlated {r.info.noise_correlated}, noise_lag1 (y, x) {lag}",
                    "truth: known per-pixel variance, binned", "clean intensity (ADU)",
                    out_dir / "fidelity-variance-corr.png")
    print(f"wrote {out_dir / 'fidelity-variance-corr.png'}")


def variance_figure(level: np.ndarray, truth: np.ndarray, map_binned: np.ndarray, info, title: str, truth_label: str,
                    xlabel: str, path: Path) -> None:
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
