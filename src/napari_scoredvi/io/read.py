"""Opening a TIFF or Zarr volume lazily for the batch pipeline: its array, axes and physical scale.

Readers are tifffile (``aszarr``: memory-mapped, one slice read at a time) and zarr; the array is a
``dask.array`` view, so nothing is loaded until a slice is asked for.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from ..engine.validate import check_dtype
from .errors import Argument, BadArgument, warn

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
AMBIGUOUS_TIFF_AXES = set("QI")  # tifffile's letters for "some stack axis, meaning unknown"
#: tifffile's series kinds for TIFFs without OME, ImageJ or other microscope metadata
_PLAIN_TIFF_KINDS = {"generic", "uniform", "shaped"}
#: the axes assumed for a 3D input that does not say (a stack of 2D frames); more dimensions must be given
DEFAULT_3D_AXES = "ZYX"
#: the axes given to an in-memory array (a napari layer) whose axis labels say nothing, by dimensions
DEFAULT_AXES = {2: "YX", 3: DEFAULT_3D_AXES, 4: "TZYX", 5: "TCZYX"}
#: axis labels (lower case) that name an axis letter
_LABEL_LETTERS = {"t": "T", "time": "T", "c": "C", "ch": "C", "channel": "C", "channels": "C", "z": "Z",
                  "depth": "Z", "plane": "Z", "slice": "Z", "y": "Y", "x": "X"}
#: words in tifffile's log messages that mean the file itself is cut short or overwritten
_DAMAGE_WORDS = ("invalid page offset", "invalid value offset", "corrupt", "truncat")

log = logging.getLogger(__name__)

# Units as written by OME-XML / ImageJ -> NGFF (UDUNITS-2) names.
_UNITS = {
    "µm": "micrometer", "μm": "micrometer", "um": "micrometer", "micron": "micrometer", "microns": "micrometer",
    "\\u00b5m": "micrometer", "nm": "nanometer", "mm": "millimeter", "cm": "centimeter", "m": "meter",
    "å": "angstrom", "s": "second", "sec": "second", "ms": "millisecond", "min": "minute", "h": "hour",
}
_NGFF_UNITS = set(_UNITS.values()) | {"micrometer", "nanometer", "millimeter", "second", "millisecond"}


@dataclass
class Volume:
    """A lazily read input volume.

    array: dask array, any shape (..., Y, X). axes: one letter per dimension, e.g. ``"TZCYX"``.
    scale: physical size of one step along each axis (1.0 where unknown). units: NGFF unit name per
    axis letter, where known. axes_from_metadata: True if axes came from OME/ImageJ/NGFF metadata.
    source: the file it is read from ("" for an in-memory array). name: what an in-memory array is
    called (a napari layer's name), recorded in the provenance so that a resume checks it. rgb: the
    ``C`` axis holds R, G, B (an RGB TIFF's interleaved samples, moved before Y and X).
    """

    array: da.Array
    axes: str
    scale: list[float]
    units: dict[str, str] = field(default_factory=dict)
    axes_from_metadata: bool = False
    source: str = ""
    name: str = ""
    rgb: bool = False


def ngff_unit(unit) -> str | None:
    """The NGFF name for a unit string (``"µm"`` -> ``"micrometer"``), or None if unknown."""
    if not isinstance(unit, str) or not unit.strip():
        return None
    u = unit.strip()
    if u.lower() in _NGFF_UNITS:
        return u.lower()
    return _UNITS.get(u.lower(), _UNITS.get(u))


def check_axes(axes: str, shape: tuple[int, ...]) -> str:
    """Validate an axes string against a shape; returns it upper-cased. Raises ValueError."""
    if not isinstance(axes, str) or not axes.isalpha():
        raise ValueError(f"axes must be letters, one per dimension (e.g. 'ZYX' or 'TZCYX'), got {axes!r}")
    axes = axes.upper()
    if len(axes) != len(shape):
        raise ValueError(
            f"axes {axes!r} has {len(axes)} letters but the image has {len(shape)} dimensions (shape {shape}); "
            "give one letter per dimension, e.g. 'ZYX' for a z-stack or 'TZCYX' for a time-lapse of z-stacks"
        )
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} repeats a letter; each dimension needs its own letter")
    if axes[-2:] != "YX":
        raise ValueError(
            f"the last two axes must be Y and X (got {axes!r} for shape {shape}); the batch command denoises "
            "2D Y-X slices; put a channel or colour axis before Y and X (RGB TIFFs are read so)"
        )
    return axes


def axes_from_labels(labels, ndim: int) -> str:
    """Axis letters for an array of ``ndim`` dimensions from its axis labels (e.g. napari's
    ``("z", "y", "x")`` or ``("time", "y", "x")``); :data:`DEFAULT_AXES` where they do not say."""
    letters = [_LABEL_LETTERS.get(str(label).strip().lower()) for label in (labels or ())]
    axes = "".join(letters) if len(letters) == ndim and all(letters) else ""
    if axes and len(set(axes)) == ndim and axes.endswith("YX"):
        return axes
    if ndim not in DEFAULT_AXES:
        raise ValueError(f"the image has {ndim} dimensions; stacks of up to 5 (T, C, Z, Y, X) are supported: "
                         "split it into smaller stacks first")
    return DEFAULT_AXES[ndim]


def volume_from_array(array, axes: str, scale: list[float] | None = None, units: dict[str, str] | None = None,
                      source: str = "", name: str = "") -> Volume:
    """An in-memory or lazy array (numpy, dask, zarr; e.g. a napari layer's data) as a :class:`Volume`,
    read one 2D slice at a time. source: the file it was read from, if any (else ""). name: what it
    is called (e.g. the layer's name)."""
    shape = tuple(int(s) for s in array.shape)
    axes = check_axes(axes, shape)
    if not isinstance(array, da.Array):  # a view, chunked by slice: nothing is copied
        array = da.from_array(array, chunks=(1,) * (len(shape) - 2) + shape[-2:], asarray=False)
    check_dtype(array.dtype)
    scale = [float(v) for v in scale] if scale is not None else [1.0] * len(shape)
    return Volume(array, axes, scale, dict(units or {}), False, source, name)


def open_volume(path: str | Path, axes: str | None = None) -> Volume:
    """Open a TIFF/OME-TIFF/ImageJ TIFF, a zarr array, or an OME-Zarr image lazily.

    axes: letters for the dimensions (e.g. ``"ZYX"``), needed only where the file does not say.
    Raises FileNotFoundError for a missing path and ValueError for anything unreadable or unsupported.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    if p.is_dir():
        vol = _open_zarr(p)
    elif p.suffix.lower() in TIFF_SUFFIXES:
        vol = _open_tiff(p)
    else:
        raise ValueError(
            f"input {str(path)!r} is neither a TIFF file (.tif/.tiff) nor a Zarr folder; convert it to "
            "TIFF or OME-Zarr (e.g. with Fiji or bioformats2raw)"
        )
    shape = tuple(vol.array.shape)
    if vol.array.ndim < 2:
        raise ValueError(f"input {str(path)!r} has shape {shape}: need at least 2 dimensions (Y, X)")
    check_dtype(vol.array.dtype, f"input {str(path)!r} has dtype {{dtype}}; need an integer or float image")
    if axes is not None:
        axes = check_axes(axes, shape)
        if vol.axes_from_metadata and axes != vol.axes:
            raise BadArgument.of("%s contradicts the file's own metadata, which says %r; leave it out to use the "
                                 "metadata", Argument("axes", axes), vol.axes)
        if axes != vol.axes:
            vol.axes, vol.scale, vol.units = axes, [1.0] * len(shape), {}
    elif not vol.axes or set(vol.axes) & AMBIGUOUS_TIFF_AXES:
        if len(shape) == 2:
            vol.axes, vol.scale = "YX", [1.0, 1.0]
        elif len(shape) == 3:
            vol.axes, vol.scale = DEFAULT_3D_AXES, [1.0] * 3
            warn(log, "%r does not say what its axes are: treating dimension 0 (%d entries) as a stack of 2D frames "
                 "(Z); pass %s if it is time, or %s for channels", str(path), shape[0], Argument("axes", "TYX"),
                 Argument("axes", "CYX"))
        elif len(shape) == 4 and vol.rgb and vol.axes.endswith("CYX"):  # a plain stack of RGB frames
            vol.axes, vol.scale = "ZCYX", [1.0] * 4
            warn(log, "%r does not say what its axes are: treating dimension 0 (%d entries) as a stack of 2D RGB "
                 "frames (Z); pass %s if it is time", str(path), shape[0], Argument("axes", "TCYX"))
        else:
            raise BadArgument.of(
                "input %r has shape %s but does not say what its axes are; pass them, e.g. %s for a z-stack, %s for "
                "a time-lapse of z-stacks or %s for a time-lapse of multichannel z-stacks (letters T, C, Z, Y, X, "
                "one per dimension, as many as the image has; the last two must be Y and X)", str(path), shape,
                Argument("axes", "ZYX"), Argument("axes", "TZYX"), Argument("axes", "TZCYX"))
    vol.axes = check_axes(vol.axes, shape)
    return vol


def _open_tiff(p: Path) -> Volume:
    import tifffile

    try:
        with _tifffile_messages() as messages:
            with tifffile.TiffFile(p) as tif:
                series = tif.series[0]
                interleaved = series.axes.upper().endswith("YXS")  # colour samples after X, e.g. RGB
                colour = (series.keyframe.photometric, series.keyframe.samplesperpixel)
                axes = series.axes.upper()
                axes = (axes[:-3] + "SYX" if interleaved else axes).replace("S", "C")
                if _planes_only_by_photometric(series):
                    axes = ""  # 3 or 4 planes tagged RGB(A) by the writer (tifffile's default): unknown axes
                try:
                    scale, units = _tiff_scale(tif, axes)
                except Exception:  # odd OME-XML/ImageJ metadata: keep the pixels, lose only the pixel size
                    scale, units = [1.0] * len(axes), {}
                from_meta = bool(tif.is_ome or tif.is_imagej)
                beyond_end = _data_end(series) > p.stat().st_size
            store = tifffile.imread(p, aszarr=True, series=0, level=0)
            arr = da.from_zarr(zarr.open_array(store, mode="r"))
            if interleaved:  # Y X S -> S Y X: the slices stay Y-X planes (a lazy view, nothing is read)
                arr = da.moveaxis(arr, -1, -3)
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"could not read {str(p)!r} as a TIFF ({type(exc).__name__}: {exc})") from exc
    damage = [m for m in messages if any(word in m.lower() for word in _DAMAGE_WORDS)]
    if beyond_end or damage:
        detail = damage[0] if damage else "its image data runs past the end of the file"
        raise ValueError(f"{str(p)!r} is damaged, probably truncated by an interrupted copy or save ({detail}); "
                         "copy or export it again from the original")
    for message in messages:  # harmless oddities, each said once (tifffile repeats them per open)
        log.warning(f"{p.name}: {message}")
    rgb = interleaved and _is_rgb(p, *colour)
    if len(axes) != arr.ndim:  # tifffile reports squeezed axes; fall back to asking the user
        axes, scale, units, from_meta = "", [1.0] * arr.ndim, {}, False
    return Volume(arr, axes, scale, units, from_meta, str(p), rgb=rgb)


def _is_rgb(p: Path, photometric, samples: int) -> bool:
    """Whether interleaved TIFF samples are R, G, B (colour priors); raises ValueError for RGB with
    extra samples (alpha), which is not an intensity to denoise."""
    import tifffile

    if photometric != tifffile.PHOTOMETRIC.RGB:
        return False  # other interleaved samples: channels, denoised one by one
    if samples != 3:
        raise ValueError(f"{str(p)!r} is RGB with {samples} samples per pixel (alpha or extra "
                         "samples); save it as plain RGB (3 samples) first, e.g. in Fiji: Image > Type > RGB Color")
    return True


def _planes_only_by_photometric(series) -> bool:
    """True for a TIFF without axis metadata (no OME/ImageJ/microscope format) whose planes tifffile
    calls colour samples (``S``) only because the writer tagged them RGB: ``tifffile.imwrite`` does so
    for any 3 or 4 x Y x X stack. Such a file says no more about its axes than a plain Zarr array."""
    tiff_axes = series.axes.upper()
    kind = str(getattr(series, "kind", "")).lower()
    return kind in _PLAIN_TIFF_KINDS and "S" in tiff_axes[:-2] and tiff_axes.endswith("YX")


@contextmanager
def _tifffile_messages() -> Generator[list[str], None, None]:
    """Collect tifffile's log messages (without the object prefix, each once) instead of printing them."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            text = text.split("> ", 1)[1] if text.startswith("<") and "> " in text else text
            if text not in messages:
                messages.append(text)

    tlog = logging.getLogger("tifffile")
    handler, propagate = Collect(logging.WARNING), tlog.propagate
    tlog.addHandler(handler)
    tlog.propagate = False
    try:
        yield messages
    finally:
        tlog.removeHandler(handler)
        tlog.propagate = propagate


def _data_end(series) -> int:
    """The byte just past the last image data of a tifffile series (its pages' strips or tiles)."""
    if series.dataoffset is not None:  # contiguous data, including pages the file no longer holds
        return int(series.dataoffset) + int(series.nbytes)
    end = 0
    for page in series.pages:
        if page is None:
            continue
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            end = max(end, int(offset) + int(count))
    return end


def _tiff_scale(tif, axes: str) -> tuple[list[float], dict[str, str]]:
    """Pixel sizes from OME-XML (PhysicalSize*, TimeIncrement) or ImageJ tags (resolution, spacing)."""
    sizes: dict[str, float] = {}
    units: dict[str, str] = {}
    if tif.is_ome:
        import tifffile

        image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
        pixels = (image[0] if isinstance(image, list) else image)["Pixels"]
        for ax, key in (("X", "PhysicalSizeX"), ("Y", "PhysicalSizeY"), ("Z", "PhysicalSizeZ"), ("T", "TimeIncrement")):
            if key in pixels:
                sizes[ax] = float(pixels[key])
                unit = ngff_unit(pixels.get(key + "Unit", "s" if ax == "T" else "µm"))
                if unit:
                    units[ax] = unit
    elif tif.is_imagej:
        meta = tif.imagej_metadata or {}
        page = tif.pages[0]
        for ax, tag in (("X", "XResolution"), ("Y", "YResolution")):
            t = page.tags.get(tag)
            if t is not None:
                num, den = t.value
                if num > 0 and den > 0:
                    sizes[ax] = den / num  # the tag is pixels per unit
        if "spacing" in meta:
            sizes["Z"] = float(meta["spacing"])
        if "finterval" in meta:
            sizes["T"] = float(meta["finterval"])
            units["T"] = "second"
        unit = ngff_unit(meta.get("unit"))
        if unit:
            units.update({ax: unit for ax in "XYZ" if ax in sizes})
    scale = [sizes.get(ax, 1.0) for ax in axes]
    return scale, {ax: u for ax, u in units.items() if ax in axes}


def _open_zarr(p: Path) -> Volume:
    try:
        node = zarr.open(str(p), mode="r")
    except Exception as exc:  # zarr raises several types for "not a store"
        raise ValueError(
            f"input folder {str(p)!r} is not a Zarr store (no .zarray/.zgroup/zarr.json found; {exc})"
        ) from exc
    if isinstance(node, zarr.Array):
        axes = node.attrs.get("_ARRAY_DIMENSIONS")  # xarray convention, if present
        axes = "".join(a[0] for a in axes).upper() if isinstance(axes, list) and axes else ""
        return Volume(da.from_zarr(node), axes, [1.0] * node.ndim, {}, False, str(p))
    group = node
    ms = _multiscales(group)
    if ms is None and "0" in group and isinstance(group["0"], zarr.Group):  # bioformats2raw layout
        group, ms = group["0"], _multiscales(group["0"])
    if ms is None:
        with warnings.catch_warnings():  # other files in the folder (e.g. a run's lock file) are no concern here
            warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
            arrays = sorted(name for name, _ in group.arrays())
            groups = dict(group.groups())
        images = sorted(name for name, sub in groups.items() if _multiscales(sub) is not None)
        if not arrays and not groups:
            raise ValueError(
                f"input {str(p)!r} is an empty Zarr group: it holds no arrays or images (an unfinished copy or "
                "write?); pass the Zarr array or OME-Zarr image that holds your data instead"
            )
        if images:  # e.g. a napari-scoredvi output: its images are denoised/, noise_variance/
            hint = f"; point to one of its images instead, e.g. {str(p / images[0])!r}"
        elif arrays:
            hint = f"; point to one of its arrays instead, e.g. {str(p / arrays[0])!r}"
        else:
            hint = "; point to the image or array inside it that holds your data"
        raise ValueError(f"input {str(p)!r} is a Zarr group without OME-Zarr 'multiscales' metadata{hint}")
    level = ms["datasets"][0]
    arr = group[level["path"]]
    axes_meta = ms.get("axes", [])
    names = [a["name"] if isinstance(a, dict) else a for a in axes_meta]
    axes = "".join(str(n)[0] for n in names).upper() if len(names) == arr.ndim else ""
    scale = np.ones(arr.ndim)
    for transforms in (level.get("coordinateTransformations", []), ms.get("coordinateTransformations", [])):
        for t in transforms:
            if t.get("type") == "scale" and len(t.get("scale", [])) == arr.ndim:
                scale = scale * np.asarray(t["scale"], dtype=float)
    units = {}
    for letter, a in zip(axes, axes_meta):
        unit = ngff_unit(a.get("unit")) if isinstance(a, dict) else None
        if unit:
            units[letter] = unit
    return Volume(da.from_zarr(arr), axes, scale.tolist(), units, bool(axes), str(p))


def _multiscales(group) -> dict | None:
    attrs = group.attrs.asdict()
    ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")  # NGFF 0.4 / 0.5
    return ms[0] if isinstance(ms, list) and ms else None
