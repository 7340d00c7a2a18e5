"""Drawing a photon-transfer calibration with matplotlib: on any Axes (the napari widget's Qt
canvas) or into a PNG file (the command line, headless Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .photon_transfer import Calibration


def draw(ax, r: Calibration, title: str | None = None) -> None:
    """Measured bins (error bars: jackknife standard error), the fitted line, the noise-variance map's
    bins (error bars: their std) and line if present, and the numbers in a corner."""
    m = r.measured
    ax.errorbar(m.intensity, m.variance, yerr=np.nan_to_num(m.spread), fmt="o", color="C0", capsize=3,
                label="measured (flat patches; +-1 s.e.)")
    xs = [m.intensity]
    if r.map_curve is not None:
        c = r.map_curve
        ax.errorbar(c.intensity, c.variance, yerr=c.spread, fmt="s", color="C1", capsize=3, alpha=0.8,
                    label="noise-variance map by denoised intensity (+-1 std)")
        xs.append(c.intensity)
    x = np.linspace(min(v.min() for v in xs), max(v.max() for v in xs), 50)
    ax.plot(x, r.gain * x + r.intercept, "-", color="C0", label=f"fit: {r.gain:.3g} I {r.intercept:+.3g}")
    if r.map_gain is not None:
        ax.plot(x, r.map_gain * x + r.map_intercept, "--", color="C1",
                label=f"map fit: {r.map_gain:.3g} I {r.map_intercept:+.3g}")
    ax.set_xlabel("intensity (ADU)")
    ax.set_ylabel("noise variance (ADU$^2$)")
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", loc="upper left")
    text = "\n".join(line for line in r.summary() if not line.startswith(("note:", "noise-variance map")))
    ax.text(0.98, 0.02, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="small",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    ax.grid(alpha=0.3)


def require_matplotlib() -> None:
    """Raise RuntimeError, saying how to install it, if matplotlib is missing."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeError("the plot needs matplotlib, which is not installed; run 'pip install matplotlib' "
                           "(or install napari-scoredvi[napari])")


def save_plot(r: Calibration, path: str | Path, title: str | None = None) -> Path:
    """Write the plot as a PNG (atomically), without a display."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(7, 5), dpi=100)
    FigureCanvasAgg(fig)
    draw(fig.add_subplot(), r, title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
