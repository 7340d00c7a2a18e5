"""napari-scoredvi: single-image denoising with ScoreDVI (score-prior-guided deep variational inference).

Layers, each importing only from those below it (docs/architecture.md):
``engine`` (one 2D image in, denoised + noise variance out) and ``io`` (files, stores, slice grids) ->
``calibration`` and ``pipeline`` (stacks slice by slice, runs, resume, cluster) -> front ends: ``cli``,
``napari`` (Qt-free viewer helpers) and ``_qt`` (the dock widgets).
"""

from ._version import __version__

__all__ = ["Cancelled", "DenoiseResult", "DenoiseSettings", "denoise", "denoise_steps", "__version__"]


def __getattr__(name: str):
    # The engine (and torch, a few seconds to import) loads on first use, so that
    # `napari-scoredvi --help` and the napari manifest stay fast.
    if name == "DenoiseSettings":
        from .engine.settings import DenoiseSettings

        return DenoiseSettings
    if name in __all__:
        from .engine import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
