"""napari-scoredvi: single-image denoising with ScoreDVI (score-prior-guided deep variational inference)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-scoredvi")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from .api import Cancelled, DenoiseResult, denoise, denoise_steps  # noqa: E402

__all__ = ["Cancelled", "DenoiseResult", "denoise", "denoise_steps", "__version__"]
