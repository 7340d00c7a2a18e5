"""Qt dialogs of the dock widgets."""

from __future__ import annotations

from pathlib import Path


def ask_existing_output(path: Path, owner: str | None = None) -> str:
    """Ask what to do with an existing output store: ``"resume"``, ``"replace"`` or ``"cancel"``.

    owner: None for a store of the same image (Resume, Replace, Cancel); else the image whose results it
    holds (:func:`..napari.request.store_owner`): those are never resumed, so only Replace (saying whose
    results it deletes) or Cancel (the default) is offered."""
    from qtpy.QtWidgets import QMessageBox

    box = QMessageBox()
    box.setIcon(QMessageBox.Question if owner is None else QMessageBox.Warning)
    box.setWindowTitle("ScoreDVI: output exists")
    if owner is None:
        box.setText(f"The output {str(path)!r} already exists.")
        box.setInformativeText("Resume keeps its finished slices and does the rest (same layer and settings "
                               "only). Replace deletes it and starts again.")
        resume = box.addButton("Resume", QMessageBox.AcceptRole)
    else:
        box.setText(f"The output {str(path)!r} holds the results of {owner}.")
        box.setInformativeText(f"Replace deletes the results of {owner} and starts again; Cancel keeps them "
                               "(then pick another output path).")
        resume = None
    replace = box.addButton("Replace", QMessageBox.DestructiveRole)
    cancel = box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(resume if resume is not None else cancel)
    box.exec_()
    clicked = box.clickedButton()
    if clicked is replace:
        return "replace"
    return "resume" if resume is not None and clicked is resume else "cancel"
