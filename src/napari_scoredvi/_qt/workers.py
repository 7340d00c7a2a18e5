"""napari thread workers used by the dock widgets."""

from __future__ import annotations

from napari.qt.threading import GeneratorWorker


class ClosingGeneratorWorker(GeneratorWorker):
    """napari's generator worker, but a quit (Cancel, or napari closing) closes the generator in the
    worker thread, so its cleanup (store status, cluster tasks) runs at once and off the UI thread."""

    def work(self):
        try:
            return super().work()
        finally:
            self._gen.close()
