"""The presets, typed by the method they run: the prior ensemble (:mod:`.ensemble`) or ScoreDVI's
variational fit as published (:mod:`.variational`). Each kind has only the fields its method uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, TypeAlias


@dataclass(frozen=True)
class EnsemblePreset:
    """The prior ensemble (:mod:`.ensemble`): the K prior denoisers' estimates ``D_k(y)``, mixed, denoised
    once more and averaged over flips/rotations; no fit, every slice on its own.

    ensemble: the flips/90-degree rotations (1, 4 or 8) each prior pass is averaged over.
    stabilise: the priors denoise the image's generalised Anscombe transform (:mod:`.vst`), mapped
    back by its unbiased inverse, where the noise is pixel-independent. final_pass: the mixed
    estimate is ``sum_k r_k D_k(D_k(y))`` (each estimate denoised once more) instead of
    ``sum_k r_k D_k(y)``. ``stabilise`` and ``final_pass`` are on in the shipped presets; off, they are
    the ablations the benchmarks measure.
    """

    kind: ClassVar[str] = "ensemble"
    name: str
    ensemble: int = 1
    stabilise: bool = True
    final_pass: bool = True

    def as_dict(self) -> dict:
        """JSON-ready (provenance, layer metadata)."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class VariationalPreset:
    """ScoreDVI's variational fit of the whole image as published (:mod:`.variational`).

    iterations: Adam steps of a fit from a random start; warm_iterations: those of a fit that starts
    from the previous slice's networks (stacks). unet_levels / unet_base: the image network's
    resolutions and channels at full resolution; aux_depth / aux_width: the noise/assignment/weight
    network. lr / lr_final: Adam's step size, cosine-decayed. ema: weight of the running value in
    the moving average of the posterior mean that is returned. init_std: 0 starts q(x) at the
    networks' random output (variance about 1), as the reference does; > 0 at N(y, init_std^2)
    (model units). norm: batch norm in the image network, as the reference's.
    """

    kind: ClassVar[str] = "variational"
    name: str
    iterations: int = 500
    warm_iterations: int = 150
    unet_levels: int = 3
    unet_base: int = 16
    aux_depth: int = 5
    aux_width: int = 32
    lr: float = 1e-3
    lr_final: float = 5e-4
    ema: float = 0.9
    init_std: float = 0.0
    norm: bool = True

    def as_dict(self) -> dict:
        """JSON-ready (provenance, layer metadata)."""
        return {"kind": self.kind, **asdict(self)}


#: a preset of either kind
Preset: TypeAlias = EnsemblePreset | VariationalPreset

#: the default preset of the widget, the command line, the Python API and the demo
DEFAULT_PRESET = "fast"

PRESETS: dict[str, Preset] = {
    # the prior ensemble: one pass per prior (fast), or each pass averaged over the 8 flips/rotations
    # (balanced: about 4x the time for a few hundredths of a dB; `python -m benchmarks speed`)
    "fast": EnsemblePreset("fast", ensemble=1),
    "balanced": EnsemblePreset("balanced", ensemble=8),
    # ScoreDVI as published: a cold-start variational fit of the whole image; minutes per 256 x 256
    # slice on a CPU
    "variational": VariationalPreset("variational"),
}


def get_preset(preset: str | Preset) -> Preset:
    """A preset by name (``fast``, ``balanced``, ``variational``) or passed through."""
    if isinstance(preset, (EnsemblePreset, VariationalPreset)):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]
