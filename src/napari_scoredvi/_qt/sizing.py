"""Keep the dock widgets narrow: long layer names and messages must not widen napari's window."""

from __future__ import annotations

#: characters a layer box shows before its width stops growing with the names in it
COMBO_CHARS = 18


def compact_combobox(box, chars: int = COMBO_CHARS) -> None:
    """A magicgui ComboBox whose width does not grow with its longest item (the list still shows it)."""
    from qtpy.QtWidgets import QComboBox

    native = box.native
    native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    native.setMinimumContentsLength(chars)


def wrap_label(label) -> None:
    """A magicgui Label whose long text wraps instead of widening the widget: word wrap alone is not
    enough (the layout still asks for the unwrapped width), so its width hint is ignored too."""
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    label.native.setSizePolicy(policy)
