"""Make docs/images/napari-widget.png: the docked widget beside the noisy slice, its denoised
version and its noise-variance map with its colour bar, side by side (napari's grid mode, each
panel labelled with its layer's name), on the plugin's sample stack: the widget's default scope,
the current 2D slice, with the ``fast`` preset.

The canvas needs OpenGL on an X display; headless, run it under Xvfb with Qt's xcb platform
(Debian 12: ``apt-get install xvfb libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0`` for Qt's
xcb plugin), with QT_QPA_PLATFORM unset:

    xvfb-run -a python docs/make_screenshot.py [--preset fast]

Qt's offscreen platform (QT_QPA_PLATFORM=offscreen) drew a black canvas under Xvfb here; the script
checks for that and stops instead of writing a black picture.

napari reads its settings from a temporary file here, so the picture does not depend on (or
change) your napari settings; notifications (toasts) are off, so none covers the canvas.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="fast")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "napari-widget.png")
    args = p.parse_args()

    settings_dir = tempfile.TemporaryDirectory()
    os.environ["NAPARI_CONFIG"] = str(Path(settings_dir.name) / "settings.yaml")  # read when napari loads
    from napari.settings import get_settings
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_scoredvi.napari.layers import source_layer_name

    def settle(n: int = 20) -> None:
        for _ in range(n):
            QApplication.processEvents()
            time.sleep(0.05)

    get_settings().application.gui_notification_level = "error"  # no toasts, e.g. napari's PyQt5 notice
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 700)
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    viewer.layers.remove("clean ground truth")  # hidden anyway; it would take a grid cell
    source = viewer.layers["noisy fluorescence stack"]
    # side by side, as a user would set it before Run (the grid button below the layer list)
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.enabled, grid.shape = True, (1, 3)
    _, widget = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    widget._preset_box.value = args.preset  # scope: the current 2D slice (the default)
    t0 = time.monotonic()
    widget.run()
    while widget.worker is not None and time.monotonic() - t0 < 1200:
        QApplication.processEvents()
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    names = [source.name] + [source_layer_name(source, out) for out in ("denoised", "noise_variance")]
    # grid cells are filled from the bottom of the layer list: noisy, denoised, noise variance
    for i, name in enumerate(names):
        viewer.layers.move(viewer.layers.index(viewer.layers[name]), i)
    for name in names:
        layer = viewer.layers[name]
        layer.blending = "translucent"  # each cell of the grid shows one layer on its own
        overlay = getattr(layer, "name_overlay", None)  # each panel labelled with its layer's name (napari 0.6+)
        if overlay is not None:
            overlay.visible, overlay.font_size = True, 9
    colorbar = viewer.layers[names[2]].colorbar  # shown by the widget; below the panel's label here
    colorbar.position, colorbar.size = "bottom_right", (18, 180)
    viewer.layers.selection.active = source
    viewer.reset_view()
    settle()
    if viewer.screenshot(canvas_only=True)[..., :3].max() == 0:
        raise SystemExit("the canvas rendered black (no OpenGL drawing on this Qt platform); run under "
                         "xvfb-run with QT_QPA_PLATFORM unset (Qt's xcb platform), see this script's docstring")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out} ({seconds:.0f} s of denoising with preset {args.preset!r})")
    print(f"status line: {widget._status.value}")
    viewer.close()
    settings_dir.cleanup()


if __name__ == "__main__":
    main()
