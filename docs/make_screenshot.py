"""Make docs/images/napari-widget.png: the docked widget beside its outputs on the sample data.

Needs a display; headless, run it under Xvfb:

    xvfb-run -a python docs/make_screenshot.py [--preset fast]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="fast")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "napari-widget.png")
    args = p.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 700)
    viewer.open_sample("napari-scoredvi", "noisy_stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-scoredvi", "ScoreDVI denoise")
    widget._preset_box.value = args.preset
    widget.run()
    t0 = time.monotonic()
    while widget.worker is not None and time.monotonic() - t0 < 600:
        QApplication.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        QApplication.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out} ({time.monotonic() - t0:.0f} s of denoising with preset {args.preset!r})")
    viewer.close()


if __name__ == "__main__":
    main()
