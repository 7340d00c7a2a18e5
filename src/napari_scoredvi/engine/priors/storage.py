"""How prior weights are stored in the shipped files: large convolution kernels as 8-bit integers.

A file holds ``config``, ``ranges_8bit`` and one state dict ``prior<k>`` per component. In it, every
weight tensor of more than :data:`PACK_MIN_ELEMENTS` values is stored as int8 with one float32 scale
per output channel (symmetric: scale = max |w| / 127, the scale under the key ``<name>#scale``); the
small ones (the first and last convolutions) stay float16. That halves the grey files against
float16 (13 -> 6.7 MB) at a cost of at most 0.01 dB on Set12 (docs/explanation/priors.md). Plain int8 tensors,
not torch's quantized tensor types, which torch has deprecated: the files must load in later
versions. Files written before packing hold float16 tensors only; :func:`unpack_state` reads both.
"""

from __future__ import annotations

import torch

PACK_MIN_ELEMENTS = 5000  # smaller kernels (1 -> 32 and 32 -> 1 channels) stay float16
SCALE_SUFFIX = "#scale"  # cannot occur in a parameter name


def pack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The shipped form of a network's state dict (float tensors of any precision)."""
    out = {}
    for name, t in state.items():
        t = t.detach().float().cpu()
        if t.ndim >= 2 and t.numel() > PACK_MIN_ELEMENTS:
            scale = (t.abs().flatten(1).amax(1) / 127).clamp_min(1e-12)
            shape = (-1,) + (1,) * (t.ndim - 1)
            out[name] = torch.round(t / scale.view(shape)).clamp(-127, 127).to(torch.int8)
            out[name + SCALE_SUFFIX] = scale
        else:
            out[name] = t.half()
    return out


def unpack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A float32 state dict from its shipped form, packed or float16 only."""
    out = {}
    for name, t in state.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        if t.dtype == torch.int8:
            scale = state[name + SCALE_SUFFIX]
            out[name] = t.float() * scale.view((-1,) + (1,) * (t.ndim - 1))
        else:
            out[name] = t.float()
    return out
