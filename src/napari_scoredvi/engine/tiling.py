"""Running a per-tile computation over a large image: tiles of at most :data:`TILE` x :data:`TILE`
pixels, blended linearly where they overlap, so that the prior networks' feature maps of a large frame
fit in memory (those of a whole 2048 x 2048 frame would take about 1.7 GB)."""

from __future__ import annotations

from collections.abc import Callable, Generator

import torch

TILE = 1024
TILE_OVERLAP = 64


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """The first index of each tile along an axis of ``n`` pixels."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap)) + [n - tile]
    return sorted(set(starts))


def tile_count(size: tuple[int, int]) -> int:
    """How many tiles an image of ``size`` (H, W) is cut into."""
    return len(tile_starts(size[0], TILE, TILE_OVERLAP)) * len(tile_starts(size[1], TILE, TILE_OVERLAP))


def _ramp(n: int, overlap: int, first: bool, last: bool, device) -> torch.Tensor:
    weight = torch.ones(n, device=device, dtype=torch.float32)
    ramp = torch.linspace(0, 1, overlap + 2, device=device, dtype=torch.float32)[1:-1]
    if not first:
        weight[:overlap] = ramp
    if not last:
        weight[-overlap:] = ramp.flip(0)
    return weight


def tiled(
    fn: Callable[[slice, slice], Generator[object, None, torch.Tensor]], lead: tuple[int, ...],
    size: tuple[int, int], device: torch.device,
) -> Generator[object, None, torch.Tensor]:
    """``fn(rows, cols)``, a generator returning a (*lead, th, tw) tensor, over the tiles of an image of
    ``size`` (H, W), blended linearly over :data:`TILE_OVERLAP` pixels: returns (*lead, H, W) float32
    and passes on what ``fn`` yields. One tile (the whole image) when it is small enough."""
    h, w = size
    rows, cols = tile_starts(h, TILE, TILE_OVERLAP), tile_starts(w, TILE, TILE_OVERLAP)
    th, tw = min(TILE, h), min(TILE, w)
    if len(rows) == len(cols) == 1:
        return (yield from fn(slice(0, h), slice(0, w))).float()
    acc = torch.zeros(*lead, h, w, device=device, dtype=torch.float32)
    norm = torch.zeros(h, w, device=device, dtype=torch.float32)
    for r in rows:
        for c in cols:
            out = yield from fn(slice(r, r + th), slice(c, c + tw))
            weight = _ramp(th, TILE_OVERLAP, r == rows[0], r == rows[-1], device)[:, None] * _ramp(
                tw, TILE_OVERLAP, c == cols[0], c == cols[-1], device
            )[None, :]
            acc[..., r : r + th, c : c + tw] += out * weight
            norm[r : r + th, c : c + tw] += weight
    return acc / norm
