"""Sliding-window prediction: tile grid, blending window, tiled == whole, block-wise memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from s2ssl.inference.segmenter import TorchSegmenter, check_segmenter, resolve_device
from s2ssl.inference.tiling import (
    ArraySource,
    axis_weights,
    plan_tiles,
    predict_tiled,
    tile_origins,
)


class Collect:
    """A sink that assembles the raster and counts how often each pixel is written."""

    def __init__(self, k: int, h: int, w: int) -> None:
        self.proba = np.full((k, h, w), np.nan, np.float32)
        self.valid = np.zeros((h, w), bool)
        self.writes = np.zeros((h, w), np.int64)

    def write(self, window: Window, proba: np.ndarray, valid: np.ndarray) -> None:
        rows, cols = window.toslices()
        self.proba[:, rows, cols] = proba
        self.valid[rows, cols] = valid
        self.writes[rows, cols] += 1


class Spy(ArraySource):
    """An ArraySource that records the windows read."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__(x)
        self.windows: list[Window] = []

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        self.windows.append(window)
        return super().read(window)


def reflectance(c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 0.5, (c, h, w)).astype(np.float32)


def test_tile_origins_cover_the_axis_and_end_at_the_border() -> None:
    assert tile_origins(300, 64, 48) == (0, 48, 96, 144, 192, 236)
    assert tile_origins(64, 64, 48) == (0,)
    assert tile_origins(40, 64, 48) == (0,)  # smaller than a tile: padded
    assert tile_origins(65, 64, 48) == (0, 1)
    for n in range(1, 200):
        o = tile_origins(n, 32, 24)
        covered = np.zeros(max(n, 32), bool)
        for s in o:
            covered[s : s + 32] = True
        assert covered.all() and o[-1] == max(n, 32) - 32


def test_axis_weights_dead_margin_ramp_and_partition_of_unity() -> None:
    w = axis_weights(64, 16, True, True)
    assert w.dtype == np.float32
    assert (w[:4] == 0).all() and (w[-4:] == 0).all()  # dead margin = overlap // 4
    assert (w[12:52] == 1).all()
    assert np.all(np.diff(w[:12]) >= 0)
    # two regular neighbours' ramps sum to one over the overlap
    np.testing.assert_allclose(w[-16:] + w[:16], 1.0, atol=1e-6)
    assert (axis_weights(64, 16, False, False) == 1).all()
    assert (axis_weights(64, 0, True, True) == 1).all()


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 100, 129, 217, 300])
@pytest.mark.parametrize("overlap", [0, 1, 5, 16, 31, 40])
def test_every_pixel_gets_a_positive_total_weight(n: int, overlap: int) -> None:
    tile = 64
    origins = tile_origins(n, tile, tile - overlap)
    total = np.zeros(max(n, tile))
    n_pad = max(n, tile)
    for s in origins:
        total[s : s + tile] += axis_weights(tile, overlap, s > 0, s + tile < n_pad)
    assert total[:n].min() > 0


def test_plan_counts_tiles_per_block_and_validates() -> None:
    plan = plan_tiles(217, 300, 64, 16, block_width=128)
    assert [(b.start, b.stop) for b in plan.blocks] == [(0, 128), (128, 256), (256, 300)]
    assert plan.blocks[1].origins == (96, 144, 192, 236)
    assert plan.n_tiles == len(plan.row_origins) * sum(len(b.origins) for b in plan.blocks)
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(10, 10, 64, 64)
    with pytest.raises(ValueError, match="block_width"):
        plan_tiles(10, 10, 64, 16, block_width=32)
    with pytest.raises(ValueError, match="height"):
        plan_tiles(0, 10, 64, 16)


# Tiles of a 217 x 300 raster with 64 px tiles, by hand. Along an axis the origins are
# 0, s, 2s, ... below (size - 64) plus (size - 64) itself, with stride s = 64 - overlap; a tile
# is counted once in every column block it touches (origin < block stop, origin + 64 > start).
#   overlap 16 (s 48): rows 0 48 96 144 153 (5); cols 0 48 96 144 192 236 (6)
#     one block: 5 x 6 = 30
#     blocks of 64, [0,64) [64,128) [128,192) [192,256) [256,300):
#       {0,48} {48,96} {96,144} {144,192,236} {236} -> 2+2+2+3+1 = 10 -> 5 x 10 = 50
#   overlap 32 (s 32): rows 0 32 64 96 128 153 (6); cols 0 32 ... 224 236 (9)
#     blocks of 100: {0,32,64,96} {64,96,128,160,192} {160,192,224,236} -> 13 -> 6 x 13 = 78
#   overlap 8 (s 56): rows 0 56 112 153 (4); cols 0 56 112 168 224 236 (6)
#     blocks of 128: {0,56,112} {112,168,224,236} {224,236} -> 9 -> 4 x 9 = 36
@pytest.mark.parametrize(
    ("block_width", "batch_size", "overlap", "n_tiles"),
    [(4096, 8, 16, 30), (64, 3, 16, 50), (100, 1, 32, 78), (128, 5, 8, 36)],
)
def test_tiled_equals_whole_raster_without_seams(
    tiny, block_width: int, batch_size: int, overlap: int, n_tiles: int
) -> None:
    x = reflectance(4, 217, 300)
    sink = Collect(3, 217, 300)
    stats = predict_tiled(
        tiny,
        ArraySource(x),
        sink,
        overlap=overlap,
        batch_size=batch_size,
        block_width=block_width,
        device="cpu",
    )
    calls = list(tiny.calls)
    assert (sink.writes == 1).all()  # every pixel written exactly once
    np.testing.assert_allclose(sink.proba, tiny.whole(x), atol=2e-5)
    assert stats.n_tiles == n_tiles
    assert all(shape[0] <= batch_size and shape[2:] == (64, 64) for shape in calls)
    assert stats.device == "cpu"


def test_without_overlap_there_are_seams(tiny) -> None:
    """The equality test above is a real test: naive stitching differs at tile edges."""
    x = reflectance(4, 217, 300)
    sink = Collect(3, 217, 300)
    predict_tiled(tiny, ArraySource(x), sink, overlap=0, device="cpu")
    diff = np.abs(sink.proba - tiny.whole(x)).max(axis=0)
    assert diff.max() > 0.05
    assert diff[:, 63].max() > 0.05  # at a tile edge
    assert diff[2:60, 2:60].max() < 1e-5  # not inside a tile


def test_block_wise_reads_stay_within_one_tile_row_of_one_block(tiny) -> None:
    x = reflectance(4, 217, 300)
    spy = Spy(x)
    sink = Collect(3, 217, 300)
    predict_tiled(tiny, spy, sink, overlap=16, block_width=64, device="cpu")
    assert max(w.height for w in spy.windows) <= 64
    assert max(w.width for w in spy.windows) <= 64 + 2 * 64
    np.testing.assert_allclose(sink.proba, tiny.whole(x), atol=2e-5)


def test_small_raster_is_padded_to_one_tile_and_cropped(tiny) -> None:
    x = reflectance(4, 20, 37)
    sink = Collect(3, 20, 37)
    predict_tiled(tiny, ArraySource(x), sink, device="cpu")
    assert (sink.writes == 1).all()
    assert tiny.calls == [(1, 4, 64, 64)]
    # away from the padded far edges the result is the whole-raster pass
    np.testing.assert_allclose(sink.proba[:, :-1, :-1], tiny.whole(x)[:, :-1, :-1], atol=2e-5)


def test_validity_is_passed_through_and_invalid_inputs_are_zeroed(tiny) -> None:
    x = reflectance(4, 70, 90)
    x[:, 10:20, 30:40] = np.nan
    valid = np.ones((70, 90), bool)
    valid[50:, :5] = False
    sink = Collect(3, 70, 90)
    predict_tiled(tiny, ArraySource(x, valid), sink, device="cpu")
    expected = valid.copy()
    expected[10:20, 30:40] = False
    np.testing.assert_array_equal(sink.valid, expected)
    assert np.isfinite(sink.proba).all()


def test_wrong_probability_shape_is_a_clear_error(tiny) -> None:
    class Bad(type(tiny)):  # type: ignore[misc]
        def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
            return super().predict_proba(x)[:, :2]

    with pytest.raises(ValueError, match=r"expected probabilities of shape \(N, K, tile, tile\)"):
        predict_tiled(Bad(), ArraySource(reflectance(4, 30, 30)), Collect(3, 30, 30))


def test_time_series_segmenter_gets_dates_as_a_dimension() -> None:
    class Series:
        bands = ("B04", "B08")
        class_names = ("a", "b")
        tile_size = 32
        n_dates = 3

        def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[1:] == (3, 2, 32, 32)
            ndvi = (x[:, :, 1] - x[:, :, 0]).mean(dim=1, keepdim=True)
            return torch.cat([torch.sigmoid(ndvi), 1 - torch.sigmoid(ndvi)], dim=1)

    x = np.random.default_rng(1).uniform(0, 0.5, (3, 2, 50, 45)).astype(np.float32)
    sink = Collect(2, 50, 45)
    predict_tiled(Series(), ArraySource(x), sink, device="cpu")
    expected = 1 / (1 + np.exp(-(x[:, 1] - x[:, 0]).mean(axis=0)))
    np.testing.assert_allclose(sink.proba[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="expects 3 dates"):
        predict_tiled(Series(), ArraySource(x[0]), Collect(2, 50, 45))


def test_segmenter_validation_messages() -> None:
    class NoBands:
        class_names = ("a",)
        tile_size = 32

        def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(TypeError, match="lacks bands"):
        check_segmenter(NoBands())

    class Unknown(NoBands):
        bands = ("B04", "B13")

    with pytest.raises(ValueError, match=r"unknown Sentinel-2 band name\(s\) \['B13'\]"):
        check_segmenter(Unknown())

    class Dupes(NoBands):
        bands = ("B04",)
        class_names = ("a", "a")

    with pytest.raises(ValueError, match="repeated"):
        check_segmenter(Dupes())

    class BadTile(NoBands):
        bands = ("B04",)
        tile_size = 0

    with pytest.raises(ValueError, match="tile_size must be >= 1"):
        check_segmenter(BadTile())


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_torch_segmenter_standardises_and_softmaxes() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 1)
    seg = TorchSegmenter(conv, ("B04", "B08"), ("a", "b", "c"), 32, mean=[0.1, 0.2], std=[0.5, 2])
    x = torch.rand(2, 2, 32, 32)
    p = seg.predict_proba(x)
    mean = torch.tensor([0.1, 0.2]).view(1, 2, 1, 1)
    std = torch.tensor([0.5, 2.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(p, torch.softmax(conv((x - mean) / std), dim=1))
    with pytest.raises(ValueError, match="one value per band"):
        TorchSegmenter(conv, ("B04", "B08"), ("a", "b", "c"), mean=[0.1])
    with pytest.raises(ValueError, match="positive"):
        TorchSegmenter(conv, ("B04", "B08"), ("a", "b", "c"), std=[1.0, 0.0])
