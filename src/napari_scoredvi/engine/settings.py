"""The settings of a denoising run, one typed object passed whole from the widget, the command line and
the batch pipeline down to the engine (instead of the same parameters through every signature)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .presets import DEFAULT_PRESET, Preset, get_preset

#: the prior sets the engine can use (``auto``: chosen from the image's kind and the measured noise
#: correlation, :func:`~napari_scoredvi.engine.api.choose_prior_set`; ``colour``: RGB images only)
PRIOR_SETS = ("auto", "independent", "correlated", "colour")
#: the most neighbouring slices on each side a slice of a stack can be denoised with (the shipped
#: context priors read 3 on each side; engine/context.py)
MAX_CONTEXT = 3
#: neighbouring slices on each side used by default for a stack's slices (docs/explanation/stacks.md)
DEFAULT_CONTEXT = 1


def check_lam(lam) -> float | None:
    """The prior weight as a float, or None (automatic); ValueError for anything else. 0 turns the
    score prior off: an ablation (the fit then explains the data alone), not a denoiser."""
    if lam is None:
        return None
    if not (isinstance(lam, (int, float, np.integer, np.floating)) and np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a number >= 0 or None (automatic), got {lam!r}")
    return float(lam)


@dataclass(frozen=True)
class DenoiseSettings:
    """How to denoise an image, or the slices of a stack.

    preset: a preset or its name (``fast``, the default; ``balanced``; ``variational``).
    device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (resolved where the work runs).
    seed: the image's seed; in a stack slice ``k`` is denoised with seed ``seed + k``. lam (the
    variational preset only; ValueError with another): prior weight, None = from the noise level.
    warm_start (the variational preset, stacks): start each slice's fit from the previous slice's
    networks; the prior ensemble fits nothing (see :attr:`warm_starts`). priors:
    which prior set: ``auto`` (the
    correlated-noise priors where the engine measures correlated noise, the colour priors for an RGB
    image with pixel-independent noise), ``independent``, ``correlated`` or ``colour`` (RGB only;
    docs/explanation/priors.md). context: neighbouring slices on each side of a stack's slice that
    the prior ensemble reads with it (0 = every slice on its own; at most :data:`MAX_CONTEXT`; the
    variational fit and the correlated and colour priors denoise every slice on its own).
    """

    preset: Preset = field(default_factory=lambda: get_preset(DEFAULT_PRESET))
    device: str = "auto"
    seed: int = 0
    lam: float | None = None
    warm_start: bool = True
    priors: str = "auto"
    context: int = DEFAULT_CONTEXT

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", get_preset(self.preset))
        object.__setattr__(self, "device", str(self.device))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "lam", check_lam(self.lam))
        object.__setattr__(self, "warm_start", bool(self.warm_start))
        if self.lam is not None and self.preset.kind != "variational":
            raise ValueError(f"lam (the prior weight) applies to the variational preset only; the {self.preset.name} "
                             "preset has no fit to weigh: leave lam at None")
        if self.priors not in PRIOR_SETS:
            raise ValueError(f"priors must be one of {', '.join(PRIOR_SETS)}, got {self.priors!r}")
        ok = isinstance(self.context, (int, np.integer)) and not isinstance(self.context, bool)
        if not ok or not 0 <= int(self.context) <= MAX_CONTEXT:
            raise ValueError(f"context must be a whole number of neighbouring slices on each side, 0 (every slice "
                             f"on its own) to {MAX_CONTEXT}, got {self.context!r}")
        object.__setattr__(self, "context", int(self.context))

    @property
    def warm_starts(self) -> bool:
        """Whether the slices of a stack warm-start from the one before (the variational preset with
        ``warm_start``); the prior ensemble's slices are independent."""
        return self.warm_start and self.preset.kind == "variational"

    def with_(self, **changes) -> DenoiseSettings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """JSON-ready (provenance, layer metadata)."""
        return {"preset": self.preset.as_dict(), "device": self.device, "seed": self.seed, "lam": self.lam,
                "warm_start": self.warm_starts, "priors": self.priors, "context": self.stack_context}

    @property
    def stack_context(self) -> int:
        """Neighbours on each side a stack's slice is denoised with: :attr:`context` for the prior
        ensemble, 0 for the variational fit (every slice on its own)."""
        return self.context if self.preset.kind == "ensemble" else 0
