"""The installed package's version (no heavy imports: the CLI and the napari manifest read it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-scoredvi")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
