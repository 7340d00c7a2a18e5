"""Qt dialogs of the dock widgets."""

from __future__ import annotations

from pathlib import Path


def ask_existing_output(path: Path) -> str:
    """Ask what to do with an existing output store: ``"resume"``, ``"replace"`` or ``"cancel"``."""
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox()
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle("ScoreDVI: output exists")
    box.setText(f"The output {str(path)!r} already exists.")
    box.setInformativeText("Resume keeps its finished slices and does the rest (same layer and settings only). "
                           "Replace deletes it and starts again.")
    resume = box.addButton("Resume", QMessageBox.AcceptRole)
    replace = box.addButton("Replace", QMessageBox.DestructiveRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(resume)
    box.exec_()
    return {resume: "resume", replace: "replace"}.get(box.clickedButton(), "cancel")
