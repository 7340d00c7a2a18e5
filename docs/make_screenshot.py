"""Make docs/images/napari-widget.png: the docked widget after a run on a 2-channel stack (two synthetic
noisy fluorescence channels, green and magenta, additively blended, as napari opens a 2-channel
image), in napari's grid mode with two layers per panel: the noisy channels, their denoised
versions (in the channels' own colours), and the first channel's noise-variance map, selected, with
its labelled colour bar. Each channel's current 2D slice (the widget's default scope) is denoised
with the ``fast`` preset, from the widget, as a user would.

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
    import numpy as np
    from napari.settings import get_settings
    from qtpy.QtWidgets import QApplication

    import napari
    from napari_scoredvi.io.synthetic import noisy_fluorescence_stack
    from napari_scoredvi.napari.layers import source_layer_name

    def settle(n: int = 20) -> None:
        for _ in range(n):
            QApplication.processEvents()
            time.sleep(0.05)

    get_settings().application.gui_notification_level = "error"  # no toasts, e.g. napari's PyQt5 notice
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1700, 720)
    channels = np.stack([noisy_fluorescence_stack(5, (256, 256), seed=s)[0] for s in (0, 7)])
    sources = viewer.add_image(channels, channel_axis=0, name=["channel 1", "channel 2"],
                               colormap=["green", "magenta"])
    viewer.dims.set_point(0, 2)
    _, widget = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    widget._preset_box.value = args.preset  # scope: the current 2D slice (the default)
    t0 = time.monotonic()
    for source in sources:  # as a user does: select the channel, press Run
        viewer.layers.selection.active = source
        widget.run()
        while widget.worker is not None and time.monotonic() - t0 < 1200:
            QApplication.processEvents()
            time.sleep(0.05)
    seconds = time.monotonic() - t0
    # grid cells are filled from the bottom of the layer list, two layers each: the noisy channels,
    # the denoised channels, the first channel's noise variance (shown) with the second's (hidden)
    order = [s.name for s in sources] + [source_layer_name(s, "denoised") for s in sources] + [
        source_layer_name(s, "noise_variance") for s in sources]
    for i, name in enumerate(order):
        viewer.layers.move(viewer.layers.index(viewer.layers[name]), i)
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.enabled, grid.shape, grid.stride = True, (1, 3), 2
    for name in order[:3:2]:  # one name per panel; the map's is its colour bar's label (the widget's)
        overlay = getattr(viewer.layers[name], "name_overlay", None)  # napari 0.6+
        if overlay is not None:
            overlay.visible, overlay.font_size = True, 9
    variance = viewer.layers[order[4]]
    variance.visible = True  # the user shows the map and selects it: its colour bar appears, labelled
    viewer.layers.selection.active = variance
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
