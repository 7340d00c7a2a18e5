"""Bias-free blind Gaussian denoisers used as score priors.

A bias-free CNN with ReLUs is positively homogeneous (``D(a x) = a D(x)`` for ``a > 0``), which
makes it generalise across noise levels and intensity scales (Mohan et al., ICLR 2020). The network
predicts the noise residual; ``forward`` returns the denoised image, shape ``(N, C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BiasFreeDnCNN(nn.Module):
    """DnCNN without additive constants: ``depth`` 3x3 convolutions of ``width`` channels."""

    def __init__(self, channels: int = 1, depth: int = 10, width: int = 32) -> None:
        super().__init__()
        self.channels, self.depth, self.width = channels, depth, width
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.ReLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` (N, C, H, W), any noise level; returns the same shape."""
        return x - self.body(x)

    def config(self) -> dict[str, int | str]:
        return {"arch": "dncnn", "channels": self.channels, "depth": self.depth, "width": self.width}


def _block(cin: int, cout: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.ReLU()]
    return nn.Sequential(*layers)


class BiasFreeUNet(nn.Module):
    """A bias-free U-Net: ``levels`` scales of ``width * 2**l`` channels, ``convs`` 3x3 convolutions
    per block, average-pool down, bias-free transposed-convolution up, additive skips.

    Its receptive field (about 100 px at 3 levels) is what strong, signal-dependent fluorescence noise
    needs: a 10-layer DnCNN (21 px) cannot tell slow intensity changes from noise there.
    """

    def __init__(self, channels: int = 1, width: int = 32, levels: int = 3, convs: int = 2) -> None:
        super().__init__()
        self.channels, self.width, self.levels, self.convs = channels, width, levels, convs
        widths = [width * 2**level for level in range(levels)]
        self.head = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        self.down = nn.ModuleList(_block(w, w, convs) for w in widths[:-1])
        self.widen = nn.ModuleList(nn.Conv2d(a, b, 1, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        self.bottom = _block(widths[-1], widths[-1], convs)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(b, a, 2, stride=2, bias=False) for a, b in zip(widths[:-1], widths[1:])
        )
        self.dec = nn.ModuleList(_block(w, w, convs) for w in widths[:-1])
        self.tail = nn.Conv2d(width, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` (N, C, H, W), any size and noise level; returns the same shape."""
        h, w = x.shape[-2:]
        m = 2 ** (self.levels - 1)
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # both paddings keep the network positively homogeneous; reflect needs a wide enough image
            x_pad = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "constant")
        else:
            x_pad = x
        f = self.head(x_pad)
        skips = []
        for block, widen in zip(self.down, self.widen):
            f = block(f)
            skips.append(f)
            f = widen(F.avg_pool2d(f, 2))
        f = self.bottom(f)
        for up, dec in zip(reversed(self.up), reversed(self.dec)):
            f = dec(up(f) + skips.pop())
        return x - self.tail(f)[..., :h, :w]

    def config(self) -> dict[str, int | str]:
        return {"arch": "unet", "channels": self.channels, "width": self.width, "levels": self.levels,
                "convs": self.convs}


def build_prior(config: dict) -> nn.Module:
    """The network a saved ``config()`` describes (weights files without ``arch`` are DnCNNs)."""
    cfg = dict(config)
    arch = cfg.pop("arch", "dncnn")
    if arch == "unet":
        return BiasFreeUNet(**cfg)
    if arch == "dncnn":
        return BiasFreeDnCNN(**cfg)
    raise ValueError(f"unknown prior architecture {arch!r} in the weights file")
