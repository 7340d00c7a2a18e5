"""Bias-free blind Gaussian denoisers used as score priors.

A bias-free CNN with ReLUs is positively homogeneous (``D(a x) = a D(x)`` for ``a > 0``), which
makes it generalise across noise levels and intensity scales (Mohan et al., ICLR 2020). The network
predicts the noise residual; ``forward`` returns the denoised image, shape ``(N, C, H, W)``.
"""

from __future__ import annotations

import torch
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

    def config(self) -> dict[str, int]:
        return {"channels": self.channels, "depth": self.depth, "width": self.width}
