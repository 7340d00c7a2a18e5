"""Widget choices remembered between napari sessions (e.g. the dask scheduler address), in a small
JSON file in the user's config folder (``NAPARI_SCOREDVI_CONFIG_DIR`` overrides the folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE_NAME = "widget.json"


def config_file() -> Path:
    folder = os.environ.get("NAPARI_SCOREDVI_CONFIG_DIR")
    if not folder:
        from platformdirs import user_config_dir

        folder = user_config_dir("napari-scoredvi", appauthor=False)
    return Path(folder) / FILE_NAME


def load() -> dict:
    """The remembered choices ({} when none, or when the file is unreadable)."""
    try:
        values = json.loads(config_file().read_text())
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def remember(**values) -> None:
    """Add ``values`` to the remembered choices (silently skipped where the folder is not writable)."""
    path = config_file()
    merged = {**load(), **values}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=1))
        tmp.replace(path)  # never a half-written file
    except OSError:
        pass
