"""Image tiles: a batch of images cut into non-overlapping square tiles."""

from __future__ import annotations

from torch import Tensor

__all__ = ["cut_tiles"]


def cut_tiles(x: Tensor, tile: int) -> Tensor:
    """Non-overlapping ``tile × tile`` tiles of ``[N, ..., H, W]``: ``[N · gh · gw, ..., t, t]``.

    Tiles of one sample are consecutive, in row-major order (``gh = H / tile``, ``gw = W /
    tile``). EuroSAT-like scenes are such tiles labelled by their majority land-cover class: a
    whole 64 px synthetic patch is nearly always majority "cropland", a 32 px tile is not.
    """
    *lead, h, w = x.shape
    if tile < 1 or h % tile or w % tile:
        raise ValueError(f"tile size {tile} must divide the image size {h}x{w}")
    n, inner = lead[0], lead[1:]
    gh, gw = h // tile, w // tile
    k = len(inner)
    y = x.reshape(n, *inner, gh, tile, gw, tile)
    # [n, *inner, gh, t, gw, t] -> [n, gh, gw, *inner, t, t]
    order = [0, k + 1, k + 3, *range(1, k + 1), k + 2, k + 4]
    return y.permute(order).reshape(n * gh * gw, *inner, tile, tile)
