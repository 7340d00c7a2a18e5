"""The OME-Zarr output store of a stack run (the batch command and the napari widget write the same
layout with this code): create it, open it to resume, its NGFF axes, units and pixel sizes.

Layout (zarr format 2, OME-NGFF 0.4 images)::

    OUTPUT/                 group; attrs["napari_scoredvi"]: provenance and per-slice status
      denoised/0            float32, input shape, one chunk per 2D Y-X slice, NaN until written
      noise_variance/0      float32, input units squared
      posterior_std/0       float32 (only when asked for)
      done                  uint8 (n_slices,), 1 once a slice's chunks are written
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import Argument, CannotResume

try:
    import zarr
except ImportError as exc:  # zarr 3 needs Python 3.11; the engine itself runs on 3.10
    raise ImportError(
        "OME-Zarr output needs zarr >= 3 (Python >= 3.11): upgrade Python, then pip install 'zarr>=3'"
    ) from exc

ATTRS_KEY = "napari_scoredvi"
#: the outputs every run writes; "posterior_std" is added when asked for
OUTPUTS = ("denoised", "noise_variance")
POSTERIOR_STD = "posterior_std"
_AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


@dataclass
class OutputStore:
    """An open output store: its zarr group and its provenance attributes (``meta``, saved by :meth:`save`)."""

    path: Path
    group: zarr.Group
    meta: dict

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.meta["parameters"]["outputs"])

    def array(self, name: str) -> zarr.Array:
        """The full-resolution array of output ``name`` (e.g. ``"denoised"``)."""
        return self.group[f"{name}/0"]

    def arrays(self) -> dict[str, zarr.Array]:
        return {name: self.array(name) for name in self.outputs}

    @property
    def done_flags(self) -> zarr.Array:
        """uint8 per slice number, 1 once the slice is written."""
        return self.group["done"]

    def done(self) -> np.ndarray:
        return np.asarray(self.done_flags[:]).astype(bool)

    def save(self) -> None:
        self.group.attrs[ATTRS_KEY] = self.meta


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def store_exists(path: Path) -> bool:
    """True if ``path`` exists and is not an empty folder."""
    path = Path(path)
    return path.exists() and not (path.is_dir() and not any(path.iterdir()))


def is_store(path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / ".zgroup").exists() or (path / "zarr.json").exists())


def remove_store(path: Path) -> None:
    """Delete a Zarr store (and nothing that is not one)."""
    if not is_store(path):
        raise FileExistsError(f"output {str(path)!r} exists and is not a Zarr store; not deleting it: remove it "
                              "yourself or pick another output name")
    shutil.rmtree(path)


def create_store(path: Path, shape: tuple[int, ...], axes: str, scale: list[float], units: dict[str, str],
                 outputs: tuple[str, ...], n_slices: int, meta: dict) -> OutputStore:
    """A new store at ``path`` for a (..., Y, X) input of ``shape`` (``axes``: one letter per
    dimension; ``scale``: pixel size per dimension; ``units``: NGFF unit per axis letter). ``meta``
    becomes the provenance (``meta["parameters"]["outputs"]`` must equal ``outputs``)."""
    try:
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        shape = tuple(int(s) for s in shape)
        chunks = (1,) * (len(shape) - 2) + shape[-2:]
        for name in outputs:
            image = group.create_group(name)
            image.create_array("0", shape=shape, chunks=chunks, dtype="float32", fill_value=np.nan,
                               chunk_key_encoding={"name": "v2", "separator": "/"})
            image.attrs["multiscales"] = [multiscale(name, axes, scale, units)]
        group.create_array("done", shape=(n_slices,), chunks=(1,), dtype="uint8", fill_value=0)
    except OSError as exc:  # read-only filesystem, no permission, disk full
        raise OSError(f"cannot create the output {str(path)!r} ({exc.strerror or exc}); "
                      "choose an output path in a folder you can write to") from exc
    store = OutputStore(Path(path), group, dict(meta))
    store.save()
    return store


def open_store(path: Path, params: dict | None = None, writable: bool = True) -> OutputStore:
    """Open an existing output store; with ``params``, check that it was made with the same ones
    (:class:`.errors.CannotResume`, a ValueError, naming those that differ)."""
    try:
        group = zarr.open_group(str(path), mode="r+" if writable else "r")
        meta = dict(group.attrs[ATTRS_KEY])
        group["done"]
    except Exception as exc:
        raise CannotResume.of("output %r is not a napari-scoredvi output, so it cannot be resumed; replace it (%s) "
                              "or pick another output name", str(path), Argument("overwrite")) from exc
    if params is not None:
        diff = resume_conflicts(meta, params)
        if diff:
            raise CannotResume.of("cannot resume into %r: it was made with different %s; use the same input and "
                                  "settings, or replace it (%s) to start again", str(path), ", ".join(diff),
                                  Argument("overwrite"))
    return OutputStore(Path(path), group, meta)


def resume_conflicts(meta: dict, params: dict) -> list[str]:
    """The parameters in which a store's provenance ``meta`` differs from ``params`` (sorted)."""
    old = meta.get("parameters", {})
    return sorted(key for key in params if old.get(key) != params[key])


def multiscale(name: str, axes: str, scale: list[float], units: dict[str, str]) -> dict:
    """The NGFF 0.4 ``multiscales`` entry of a single-level image."""
    # not ome-zarr's write_multiscales_metadata: it works with zarr 3 but brings s3fs, botocore, pydantic, scikit-image
    ngff_axes = []
    for letter in axes:
        ax = {"name": letter.lower()}
        if letter in _AXIS_TYPES:
            ax["type"] = _AXIS_TYPES[letter]
        if letter in units:
            ax["unit"] = units[letter]
        ngff_axes.append(ax)
    return {"version": "0.4", "name": name, "axes": ngff_axes,
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]}
