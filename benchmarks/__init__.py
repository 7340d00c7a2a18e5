"""The benchmarks of napari-scoredvi: ``python -m benchmarks --help`` (from the repository root)."""
