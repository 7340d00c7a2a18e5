"""The headless engine: one 2D image (optionally with channels) in; denoised image, noise variance and
posterior std out (:mod:`.api`). Nothing here knows about files, stacks, napari or Qt."""
