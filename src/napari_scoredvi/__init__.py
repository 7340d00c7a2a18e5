"""napari-scoredvi: single-image denoising with ScoreDVI (score-prior-guided deep variational inference)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-scoredvi")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["Cancelled", "DenoiseResult", "DenoiseSettings", "denoise", "denoise_steps", "__version__"]


def __getattr__(name: str):
    # The engine (and torch, a few seconds to import) loads on first use, so that
    # `napari-scoredvi --help` and the napari manifest stay fast.
    if name == "DenoiseSettings":
        from .settings import DenoiseSettings

        return DenoiseSettings
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
