"""The test run keeps its hands off the user's napari settings and caches (tests/conftest.py)."""

import os
import sys
from pathlib import Path

import pytest

from conftest import NAPARI_TEST_HOME


def _inside(path, folder) -> bool:
    return Path(folder).resolve() in Path(path).resolve().parents


def test_napari_settings_and_caches_go_to_a_temporary_folder():
    pytest.importorskip("napari")
    from napari.settings import _napari_settings
    from napari.utils._platformdirs import user_cache_dir, user_config_dir

    assert _inside(_napari_settings._CFG_PATH, NAPARI_TEST_HOME), _napari_settings._CFG_PATH
    assert os.environ["NAPARI_CONFIG"] == _napari_settings._CFG_PATH
    if sys.platform.startswith("linux"):  # macOS, Windows: platformdirs ignores XDG_*
        assert _inside(user_cache_dir(), NAPARI_TEST_HOME) and _inside(user_config_dir(), NAPARI_TEST_HOME)
