"""The variational posterior's networks: small CNNs that read the noisy image and output q's parameters.

For K mixture components and C channels, per pixel:
- ``q(x^k) = N(mu_k, sigma_k^2)``: the :class:`UNet` image network;
- ``q(tau_k) = Gamma(a_k, b_k)``, ``q(z) = Cat(r)``, ``q(pi) = Dir(d)``: :class:`AuxNet`, one
  shared trunk with three heads.
All log-quantities are clamped to [log 1e-8, log 1e4].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOG_MIN, LOG_MAX = math.log(1e-8), math.log(1e4)


def _block(cin: int, cout: int, norm: bool = False) -> nn.Sequential:
    if norm:  # batch norm after each convolution, as the reference's image net (the variational preset)
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1),
        )
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1)
    )


class UNet(nn.Module):
    """U-Net with ``levels`` resolutions and ``base`` channels at full resolution (doubling down);
    ``norm``: batch norm after every convolution."""

    def __init__(self, cin: int, cout: int, levels: int = 3, base: int = 16, norm: bool = False) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        c = cin
        for w in widths:
            self.down.append(_block(c, w, norm))
            c = w
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i], norm)
                                for i in reversed(range(levels - 1)))
        self.head = nn.Conv2d(widths[0], cout, 1)
        self.multiple = 2 ** (levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class AuxNet(nn.Module):
    """Shared plain CNN trunk; the output channels are split into the noise/assignment/weight heads."""

    def __init__(self, cin: int, cout: int, depth: int = 4, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for _ in range(depth - 1):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.1)]
            c = width
        layers.append(nn.Conv2d(c, cout, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@dataclass
class Posterior:
    """q's parameters; image-shaped tensors are (N, K, C, H, W), assignment ones (N, K, 1, H, W)."""

    mu: torch.Tensor
    log_var: torch.Tensor
    log_a: torch.Tensor
    log_b: torch.Tensor
    r: torch.Tensor  # responsibilities, softmax over K
    log_d: torch.Tensor  # Dirichlet concentrations (log)

    @property
    def var(self) -> torch.Tensor:
        return self.log_var.exp()

    def denoised(self) -> torch.Tensor:
        """Posterior mean of the clean image, (N, C, H, W)."""
        return (self.r * self.mu).sum(1)

    def posterior_std(self) -> torch.Tensor:
        """``sqrt(sum_k r_k sigma_k^2)``, (N, C, H, W)."""
        return (self.r * self.var).sum(1).sqrt()


class PosteriorNets(nn.Module):
    """The posterior networks of the reference: an image U-Net and the noise/assignment/weight net,
    both reading only ``y`` (N, C, H, W), default (random) initialisation; ``forward(y)`` gives a
    :class:`Posterior`."""

    def __init__(self, channels: int, k: int, levels: int, base: int, aux_depth: int, aux_width: int,
                 init_std: float = 0.0, norm: bool = False) -> None:
        super().__init__()
        self.c, self.k = channels, k
        self.image = UNet(channels, 2 * channels * k, levels, base, norm)
        self.aux = AuxNet(channels, 2 * channels * k + 2 * k, aux_depth, aux_width)
        # init_std > 0 (a departure from the reference, measured in docs/explanation/prior-ensemble.md): q(x) starts at
        # N(y, init_std^2), the annealing's starting point, instead of a random mean with variance ~1
        self.from_y = init_std > 0
        if self.from_y:
            nn.init.zeros_(self.image.head.weight)
            nn.init.zeros_(self.image.head.bias)
        self.register_buffer("log_init_var", torch.tensor(2 * math.log(init_std) if init_std > 0 else 0.0))

    def forward(self, y: torch.Tensor) -> Posterior:
        n, c, h, w = y.shape
        k = self.k
        img = self.image(y).reshape(n, 2, k, c, h, w)
        aux = self.aux(y)
        tau = aux[:, : 2 * c * k].reshape(n, 2, k, c, h, w)
        return Posterior(
            mu=img[:, 0] + y[:, None] if self.from_y else img[:, 0],
            log_var=(img[:, 1] + self.log_init_var).clamp(LOG_MIN, LOG_MAX),
            log_a=tau[:, 0].clamp(LOG_MIN, LOG_MAX),
            log_b=tau[:, 1].clamp(LOG_MIN, LOG_MAX),
            r=torch.softmax(aux[:, 2 * c * k : 2 * c * k + k], dim=1)[:, :, None],
            log_d=aux[:, 2 * c * k + k :].clamp(LOG_MIN, LOG_MAX)[:, :, None],
        )
