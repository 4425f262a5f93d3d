"""Non-overlapping tiles of image batches (s2ssl.data.tiles)."""

from __future__ import annotations

import pytest
import torch

from s2ssl.data.tiles import cut_tiles


def test_tiles_of_a_sample_are_consecutive_in_row_major_order() -> None:
    x = torch.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)  # [N, C, H, W]
    tiles = cut_tiles(x, 2)
    assert tiles.shape == (8, 3, 2, 2)
    for n in range(2):
        for gy in range(2):
            for gx in range(2):
                expected = x[n, :, 2 * gy : 2 * gy + 2, 2 * gx : 2 * gx + 2]
                assert torch.equal(tiles[n * 4 + gy * 2 + gx], expected)


def test_label_maps_without_a_channel_axis() -> None:
    y = torch.arange(2 * 4 * 6).reshape(2, 4, 6)  # [N, H, W]
    tiles = cut_tiles(y, 2)
    assert tiles.shape == (12, 2, 2)
    assert torch.equal(tiles[5], y[0, 2:4, 4:6])


def test_tile_size_must_divide_the_image() -> None:
    with pytest.raises(ValueError, match="must divide"):
        cut_tiles(torch.zeros(1, 3, 5, 4), 2)
    with pytest.raises(ValueError, match="must divide"):
        cut_tiles(torch.zeros(1, 3, 4, 4), 0)
