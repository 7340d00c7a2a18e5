"""Where the outputs of a stack go when nobody said: ``<input>-denoised.zarr`` beside the input file
(a writable folder), else a temporary folder deleted when the process ends."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from .read import TIFF_SUFFIXES

#: suffixes of a Zarr store's folder
ZARR_SUFFIXES = (".ome.zarr", ".zarr")
#: the suffixes an input loses in its default output name, longest first (``.ome.tif`` whole):
#: the TIFF suffixes that :func:`.read.open_volume` reads, with and without ``.ome``, and Zarr's
INPUT_SUFFIXES = tuple(sorted({".ome" + s for s in TIFF_SUFFIXES} | set(TIFF_SUFFIXES) | set(ZARR_SUFFIXES),
                              key=len, reverse=True))
#: what a default output's name ends with
OUTPUT_SUFFIX = "-denoised.zarr"

_TEMP: list[Path] = []


def input_stem(name: str) -> str:
    """A file or folder name without its image suffix: ``cells.ome.tif`` -> ``cells``."""
    for suffix in INPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def default_output_path(source: str | Path | None, name: str) -> tuple[Path, bool]:
    """The default output store for an input read from ``source`` (None: not from a file) called
    ``name``: (path, temporary?). Beside the source when its folder is writable, outside any Zarr
    group it lies in (``OUT.zarr/denoised`` -> beside ``OUT.zarr``); else in a temporary folder that
    is deleted when the process ends."""
    if source:
        from .store import is_store  # zarr >= 3, only where there is a file

        p = Path(source)
        while is_store(p.parent):  # an image inside a Zarr group (e.g. OUT.zarr/denoised): beside the group
            p = p.parent
        folder = p.parent
        if folder.is_dir() and writable(folder):
            return folder / f"{input_stem(p.name)}{OUTPUT_SUFFIX}", False
    return temporary_folder() / f"{safe_name(name)}{OUTPUT_SUFFIX}", True


def as_store_path(path: str | Path) -> Path:
    """A typed output path as a store path: ``~`` expanded, ``.zarr`` added when missing."""
    out = Path(path).expanduser()
    return out if out.name.endswith(".zarr") else out.with_name(out.name + ".zarr")


def temporary_folder() -> Path:
    """This process's temporary output folder, made on first use and deleted at exit."""
    if not _TEMP:
        _TEMP.append(Path(tempfile.mkdtemp(prefix="napari-scoredvi-")))
        atexit.register(shutil.rmtree, _TEMP[0], ignore_errors=True)
    return _TEMP[0]


def safe_name(name: str) -> str:
    """``name`` with only letters, digits and ``-_.`` (others become ``_``), for a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "layer"


def writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder``."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
