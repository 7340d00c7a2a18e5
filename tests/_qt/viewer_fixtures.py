"""Fixtures shared by the Qt tests that open a real napari viewer (import them into a test module)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def gl_extensions_known(qapp):
    """Ask OpenGL for its extensions once, before any napari canvas exists.

    napari asks the first time it shows a float image (``napari._vispy.utils.gl.get_gl_extensions``,
    cached) and, when a canvas exists already, without making a GL context current; under Qt's
    offscreen platform the answer was then sometimes None, and adding a float layer failed
    (``'NoneType' object has no attribute 'decode'``; 1 run in 6 of a one-layer test here, 0 in 10
    with this fixture). Asked before any canvas, napari makes its own context current."""
    try:
        from napari._vispy.utils.gl import get_gl_extensions
    except ImportError:  # no napari: the Qt tests skip themselves
        yield
        return
    for _ in range(3):
        if get_gl_extensions():
            break
        get_gl_extensions.cache_clear()
    yield
