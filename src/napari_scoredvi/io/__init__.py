"""Image I/O: reading TIFF/Zarr volumes, the OME-Zarr output store, slice grids, synthetic test images."""
