"""napari helpers without Qt: layers, sample data, remembered widget choices."""
