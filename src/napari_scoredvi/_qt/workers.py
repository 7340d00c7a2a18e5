"""napari thread workers used by the dock widgets."""

from __future__ import annotations

from napari.qt.threading import GeneratorWorker

from ..engine.result import Cancelled
from ..engine.stopping import stop_when


class ClosingGeneratorWorker(GeneratorWorker):
    """napari's generator worker, but a quit (Cancel, or napari closing) stops the work inside a prior
    network's pass (:func:`~napari_scoredvi.engine.stopping.stop_when`), not only between yields, and
    closes the generator in the worker thread, so its cleanup (store status, cluster tasks) runs at once
    and off the UI thread."""

    def work(self):
        try:
            with stop_when(lambda: self.abort_requested):
                return super().work()
        except Cancelled:
            self.aborted.emit()
            return None
        finally:
            self._gen.close()
