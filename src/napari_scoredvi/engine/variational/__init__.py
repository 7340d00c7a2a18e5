"""ScoreDVI's variational fit as published (the ``variational`` preset): :func:`.fit.denoise_variational`."""

from .fit import VariationalOutput, denoise_variational

__all__ = ["VariationalOutput", "denoise_variational"]
