"""Named settings of the fit: iterations, crop sampling, Monte Carlo samples and network sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    """One configuration of the variational fit (see docs/engine.md for how each was chosen).

    iterations: Adam steps. crop / crops: each step fits ``crops`` random ``crop`` x ``crop``
    windows of the image (the losses are per-pixel means, so crops give an unbiased estimate; the
    whole image goes through the fitted networks once at the end). samples: Monte Carlo draws of x
    per component per step. unet_levels / unet_base: image-net size. aux_depth / aux_width: the
    shared noise/assignment/weight net. lr / lr_final: Adam step size, cosine-decayed.
    warm_iterations: Adam steps of a fit that starts from the previous slice's networks (stacks).
    final_denoise: output ``sum_k r_k D_k(mu_k)`` instead of ``sum_k r_k mu_k`` (docs/engine.md).
    ensemble: flips/rotations (1, 4 or 8) the prior denoisers are averaged over outside the fit loop
    (the guide ``D_k(y)`` and the final denoising).
    stabilise: the priors denoise the image's generalised Anscombe transform (:mod:`.vst`, with the
    estimated noise level functions), mapped back by its unbiased inverse; only where the noise is
    pixel-independent (spatially correlated noise goes to its own priors untransformed).
    cold_start: ScoreDVI as published (:mod:`.variational`): networks that read only ``y`` from a
    random start, whole-image steps (``crop``/``crops`` unused), all K priors, the EMA of the
    posterior mean as the output; ``final_denoise`` and ``ensemble`` unused.
    """

    name: str
    iterations: int
    crop: int
    crops: int
    samples: int
    unet_levels: int
    unet_base: int
    aux_depth: int
    aux_width: int
    lr: float = 1e-3
    lr_final: float = 5e-4
    ema: float = 0.9
    warm_iterations: int = 40
    final_denoise: bool = False
    ensemble: int = 1
    stabilise: bool = False
    cold_start: bool = False
    #: cold_start only: 0 starts q(x) at the networks' random output (variance ~1), as the reference
    #: does; > 0 starts it at N(y, init_std^2) (model units), a shorter annealing
    init_std: float = 0.0
    #: cold_start only: batch norm in the image U-Net, as the reference's
    norm: bool = False

    def as_dict(self) -> dict:
        """JSON-ready. ``stabilise`` and ``cold_start`` appear only when set: stores and caches written
        before they existed (as False) keep matching."""
        out = asdict(self)
        if not self.stabilise:
            del out["stabilise"]
        if not self.cold_start:
            del out["cold_start"], out["init_std"], out["norm"]
        return out


PRESETS: dict[str, Preset] = {
    # The amortised prior ensemble: the posterior networks start at the priors' estimates D_k(y), and a
    # 20-40-step fit moved that start by -0.08..+0.05 dB on every benchmark set (docs/benchmarks.md,
    # "priors only" rows), so these presets run no fit steps: the K priors' estimates, mixed, denoised once
    # more (final_denoise) and averaged over ``ensemble`` flips/rotations (docs/engine.md, "Presets"),
    # on the variance-stabilised image where the noise is pixel-independent (stabilise: +0.44 dB on W2S)
    "fast": Preset("fast", iterations=0, crop=64, crops=4, samples=1, unet_levels=3, unet_base=16,
                   aux_depth=3, aux_width=16, warm_iterations=0, final_denoise=True, ensemble=1, stabilise=True),
    "balanced": Preset("balanced", iterations=0, crop=96, crops=4, samples=1, unet_levels=3, unet_base=24,
                       aux_depth=4, aux_width=16, warm_iterations=0, final_denoise=True, ensemble=8,
                       stabilise=True),
    # ScoreDVI as published: a cold-start variational fit of the whole image (docs/engine.md,
    # "The variational preset"); minutes per 256 x 256 slice on a CPU
    "variational": Preset("variational", iterations=500, crop=0, crops=1, samples=1, unet_levels=3, unet_base=16,
                          aux_depth=5, aux_width=32, lr=1e-3, lr_final=5e-4, ema=0.9, warm_iterations=150,
                          cold_start=True, norm=True),
}


def get_preset(preset: str | Preset) -> Preset:
    """A :class:`Preset` by name (``fast``, ``balanced``, ``variational``) or passed through."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        retired = " (`best` was retired on 2026-11-30: it scored as `balanced`)" if preset == "best" else ""
        raise ValueError(f"unknown preset {preset!r}{retired}: choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]
