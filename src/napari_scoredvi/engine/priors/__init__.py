"""The score priors: K pre-trained bias-free blind Gaussian denoisers shipped with the package.

``load_priors`` returns one :class:`GaussianDenoiser` per mixture component. The weights were
trained by ``python -m napari_scoredvi.priors.train`` (see docs/priors.md) on grayscale images;
multichannel and RGB images are served channel by channel.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import torch
from torch import nn

from .models import build_prior

WEIGHTS_FILE = "gray.pt"  # trained on pixel-independent noise
CORRELATED_WEIGHTS_FILE = "gray_corr.pt"  # fine-tuned from it, half the patches with correlated noise


class GaussianDenoiser(nn.Module):
    """A blind Gaussian denoiser with a deepinv-style ``forward(x, sigma)``.

    ``x`` is (N, C, H, W) in [0, 1]-scaled units; every channel is denoised on its own by the
    grayscale network. ``sigma`` is accepted for interface compatibility and ignored: the network
    is blind (it reads the noise level, uniform or spatially varying, from ``x``).
    """

    def __init__(self, net: nn.Module, noise_range: tuple[float, float]) -> None:
        super().__init__()
        self.net = net
        self.noise_range = noise_range  # std range it was trained on, units of [0, 1] data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        out = self.net(x.reshape(n * c, 1, h, w).contiguous(memory_format=self._format(x)))
        return out.reshape(n, c, h, w)

    @staticmethod
    def _format(x: torch.Tensor) -> torch.memory_format:
        return torch.channels_last if x.device.type == "cpu" else torch.contiguous_format


def self_ensemble(denoiser, x: torch.Tensor, n: int = 8) -> torch.Tensor:
    """Mean of ``denoiser`` over the first ``n`` of the 8 flips/90-degree rotations of ``x``
    (N, C, H, W), each undone after denoising. ``n=1`` is a plain call."""
    out = torch.zeros_like(x)
    for t in range(n):
        k, flip = t % 4, t >= 4
        v = torch.rot90(x, k, (-2, -1))
        v = v.flip(-1) if flip else v
        d = denoiser(v)
        d = d.flip(-1) if flip else d
        out += torch.rot90(d, -k, (-2, -1))
    return out / n


@lru_cache(maxsize=2)
def _load_state(name: str) -> dict:
    ref = resources.files(__package__).joinpath("weights", name)
    with resources.as_file(ref) as path:
        if not path.exists():
            raise FileNotFoundError(f"the prior weights {path} are missing from the installed package; reinstall it")
        return torch.load(path, map_location="cpu", weights_only=True)


def load_priors(device: torch.device | str = "cpu", correlated: bool = False) -> list[GaussianDenoiser]:
    """The K shipped prior denoisers, in eval mode, without gradients, on ``device``; with
    ``correlated``, those trained for spatially correlated noise too (docs/priors.md)."""
    state = _load_state(CORRELATED_WEIGHTS_FILE if correlated else WEIGHTS_FILE)
    cfg = state["config"]
    ranges = state["ranges_8bit"].tolist()
    priors = []
    for k, rng in enumerate(ranges):
        net = build_prior(cfg)
        net.load_state_dict({n: t.float() for n, t in state[f"prior{k}"].items()})  # shipped as float16
        if torch.device(device).type == "cpu":
            net = net.to(memory_format=torch.channels_last)
        prior = GaussianDenoiser(net, (rng[0] / 255.0, rng[1] / 255.0)).to(device, torch.float32).eval()
        prior.requires_grad_(False)
        priors.append(prior)
    return priors
