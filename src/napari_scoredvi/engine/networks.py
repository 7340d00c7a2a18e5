"""The amortised variational posteriors: small CNNs that read the noisy image and output q's parameters.

For K mixture components and C channels, per pixel:
- ``q(x^k) = N(mu_k, sigma_k^2)``: :class:`UNet` image net; the mean is a residual on the guide
  ``D_k(y)``, the k-th prior denoiser applied to ``y`` once before the fit (the nets read both);
- ``q(tau_k) = Gamma(a_k, b_k)``, ``q(z) = Cat(r)``, ``q(pi) = Dir(d)``: :class:`AuxNet`, one
  shared trunk with three heads (cheaper than three separate CNNs; see docs/engine.md).
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

    def noise_variance(self) -> torch.Tensor:
        """``sum_k r_k b_k / a_k``: inverse expected precision, (N, C, H, W)."""
        return (self.r * (self.log_b - self.log_a).exp()).sum(1)

    def posterior_std(self) -> torch.Tensor:
        """``sqrt(sum_k r_k sigma_k^2)``, (N, C, H, W)."""
        return (self.r * self.var).sum(1).sqrt()


class PosteriorNets(nn.Module):
    """Both posterior networks for C channels and K components; ``forward(y)`` gives a :class:`Posterior`.

    ``beta0`` sets the initial noise variance (a = 1, b = beta0) and ``init_std`` the initial sigma.
    """

    def __init__(
        self, channels: int, k: int, levels: int, base: int, aux_depth: int, aux_width: int,
        beta0: float, init_std: float,
    ) -> None:
        super().__init__()
        self.c, self.k = channels, k
        self.image = UNet(channels * (k + 1), 2 * channels * k, levels, base)
        self.aux = AuxNet(channels * (k + 1), 2 * channels * k + 2 * k, aux_depth, aux_width)
        # zero heads: the fit starts exactly at the priors' estimates (mu_k = D_k(y)), sigma = init_std,
        # q(tau) at its prior mean (a = 1, b = beta0), uniform responsibilities; a random head put
        # mu_k about 0.15 (model units) away from D_k(y) and biased the output upwards (docs/engine.md)
        for head in (self.image.head, self.aux.body[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("log_beta0", torch.tensor(math.log(beta0)))
        self.register_buffer("log_init_var", torch.tensor(2 * math.log(init_std)))
        self.multiple = self.image.multiple

    def forward(self, y: torch.Tensor, guide: torch.Tensor) -> Posterior:
        """``y`` (N, C, H, W) noisy; ``guide`` (N, K, C, H, W) the priors' estimates ``D_k(y)``."""
        n, c, h, w = y.shape
        k = self.k
        inputs = torch.cat([y, guide.reshape(n, k * c, h, w)], dim=1)
        img = self.image(inputs).reshape(n, 2, k, c, h, w)
        mu = guide + img[:, 0]
        log_var = (img[:, 1] + self.log_init_var).clamp(LOG_MIN, LOG_MAX)
        aux = self.aux(inputs)
        tau = aux[:, : 2 * c * k].reshape(n, 2, k, c, h, w)
        log_a = tau[:, 0].clamp(LOG_MIN, LOG_MAX)
        log_b = (tau[:, 1] + self.log_beta0).clamp(LOG_MIN, LOG_MAX)
        r = torch.softmax(aux[:, 2 * c * k : 2 * c * k + k], dim=1)[:, :, None]
        log_d = aux[:, 2 * c * k + k :].clamp(LOG_MIN, LOG_MAX)[:, :, None]
        return Posterior(mu, log_var, log_a, log_b, r, log_d)
