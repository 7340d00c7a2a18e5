"""The score priors: K pre-trained bias-free blind Gaussian denoisers shipped with the package.

``load_priors`` returns one :class:`GaussianDenoiser` per mixture component. The weights were
trained by ``training/train_priors.py`` (see docs/explanation/priors.md): grayscale priors, which serve grey and
multichannel images channel by channel, and colour priors, which denoise the R, G, B of an RGB image
jointly.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import lru_cache
from importlib import resources

import torch
from torch import nn

from ..stopping import check as check_stop
from .models import build_prior
from .storage import unpack_state

WEIGHTS_FILE = "gray.pt"  # trained on pixel-independent noise
CORRELATED_WEIGHTS_FILE = "gray_corr.pt"  # fine-tuned from it, half the patches with correlated noise
COLOUR_WEIGHTS_FILE = "color.pt"  # RGB, half the per-range patches with correlated noise

#: the prior sets a fit can use, by the name :attr:`DenoiseInfo.prior_set` records
PRIOR_FILES = {"independent": WEIGHTS_FILE, "correlated": CORRELATED_WEIGHTS_FILE, "colour": COLOUR_WEIGHTS_FILE}


class GaussianDenoiser(nn.Module):
    """A blind Gaussian denoiser with a deepinv-style ``forward(x, sigma)``.

    ``x`` is (N, C, H, W) in [0, 1]-scaled units. A grayscale network denoises every channel on its
    own; a colour network takes the C = 3 channels (R, G, B) together. ``sigma`` is accepted for
    interface compatibility and ignored: the network is blind (it reads the noise level, uniform or
    spatially varying, from ``x``).
    """

    def __init__(self, net: nn.Module, noise_range: tuple[float, float]) -> None:
        super().__init__()
        self.net = net
        self.noise_range = noise_range  # std range it was trained on, units of [0, 1] data
        self.channels = int(getattr(net, "channels", 1))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.channels > 1:
            if c != self.channels:
                raise ValueError(f"this prior denoises {self.channels} channels together, got {c}")
            return self.net(x.contiguous(memory_format=self._format(x)))
        out = self.net(x.reshape(n * c, 1, h, w).contiguous(memory_format=self._format(x)))
        return out.reshape(n, c, h, w)

    @staticmethod
    def _format(x: torch.Tensor) -> torch.memory_format:
        return torch.channels_last if x.device.type == "cpu" else torch.contiguous_format


def self_ensemble(denoiser, x: torch.Tensor, n: int = 8) -> Generator[None, None, torch.Tensor]:
    """Mean of ``denoiser`` over the first ``n`` of the 8 flips/90-degree rotations of ``x``
    (N, C, H, W), each undone after denoising; ``n=1`` is a plain call. A generator: yields after each
    view's pass (so that long work can report progress and stop between passes), returns the mean."""
    out = torch.zeros_like(x)
    for t in range(n):
        k, flip = t % 4, t >= 4
        v = torch.rot90(x, k, (-2, -1))
        v = v.flip(-1) if flip else v
        d = denoiser(v)
        d = d.flip(-1) if flip else d
        out += torch.rot90(d, -k, (-2, -1))
        yield
    return out / n


@lru_cache(maxsize=3)
def _load_state(name: str) -> dict:
    ref = resources.files(__package__).joinpath("weights", name)
    with resources.as_file(ref) as path:
        if not path.exists():
            raise FileNotFoundError(f"the prior weights {path} are missing from the installed package; reinstall it")
        return torch.load(path, map_location="cpu", weights_only=True)


def load_priors(device: torch.device | str = "cpu", prior_set: str = "independent") -> list[GaussianDenoiser]:
    """The K shipped prior denoisers of ``prior_set`` (a key of :data:`PRIOR_FILES`: ``independent``,
    ``correlated`` for spatially correlated noise, ``colour`` for RGB; docs/explanation/priors.md), in eval mode,
    without gradients, on ``device``; each of their layers checks :func:`..stopping.stop_when` first."""
    if prior_set not in PRIOR_FILES:
        raise ValueError(f"prior_set must be one of {', '.join(PRIOR_FILES)}, got {prior_set!r}")
    state = _load_state(PRIOR_FILES[prior_set])
    cfg = state["config"]
    ranges = state["ranges_8bit"].tolist()
    priors = []
    for k, rng in enumerate(ranges):
        net = build_prior(cfg)
        net.load_state_dict(unpack_state(state[f"prior{k}"]))
        if torch.device(device).type == "cpu":
            net = net.to(memory_format=torch.channels_last)
        prior = GaussianDenoiser(net, (rng[0] / 255.0, rng[1] / 255.0)).to(device, torch.float32).eval()
        prior.requires_grad_(False)
        for layer in prior.modules():  # a Cancel lands within one layer (:mod:`..stopping`)
            if isinstance(layer, nn.Conv2d):
                layer.register_forward_pre_hook(check_stop)
        priors.append(prior)
    return priors
