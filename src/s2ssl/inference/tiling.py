"""Sliding-window prediction of rasters of any size, with overlap blending and bounded memory.

**Tile grid.** Tiles are squares of ``tile`` pixels placed every ``stride = tile - overlap``
pixels from the top-left corner; the last tile of a row or column is aligned with the raster's
border, so it overlaps its neighbour a little more and reads only real pixels. A raster smaller
than one tile along an axis is reflect-padded to a tile there and the prediction cropped.

**Blending.** Each tile's probabilities are weighted by a separable window and the weighted sum is
divided by the summed weights. Along each side that touches another tile, the window is 0 over
the outermost ``overlap // 4`` pixels (the predictions most distorted by the network's own zero
padding), then rises as ``sin²`` to 1 at ``overlap - overlap // 4``; on sides at the raster border
it stays 1. Two regular neighbours' ramps sum to 1 over their overlap, and every pixel has a
positive weight from some tile. For a network whose receptive field reaches less than
``overlap // 4`` pixels, the blended result equals a single pass over the whole raster up to
float rounding: there are no seams.

**Blocks and memory.** The raster is processed in column blocks of at most ``block_width``
pixels; within a block, tile rows are processed top to bottom and each finished band of output
rows is handed to the sink at once, so only about ``tile`` rows of input and of probabilities are
held: memory ≈ 4 B × (bands + classes + 1) × tile × (block_width + tile) plus one batch. Tiles
straddling a block boundary are predicted once per block (extra work ≈ tile / block_width).
A batch never spans two tile rows.

**Nodata.** Sources return a validity mask with the input; the engine passes it to the sink with
the probabilities (the sink writes nodata there). Sources fill invalid inputs with 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from rasterio.windows import Window

from s2ssl.inference.segmenter import (
    Segmenter,
    SegmenterSpec,
    check_segmenter,
    move_segmenter,
    resolve_device,
)
from s2ssl.progress import ProgressFactory, no_progress

__all__ = [
    "ArraySource",
    "ColumnBlock",
    "TileSink",
    "TileSource",
    "TilingPlan",
    "TilingStats",
    "axis_weights",
    "plan_tiles",
    "predict_tiled",
    "tile_origins",
]

DEFAULT_BLOCK_WIDTH: int = 4096
"""Default width in pixels of the column blocks processed at once."""


class TileSource(Protocol):
    """Where the engine reads model input from (a GeoTIFF, a store sample, an array)."""

    @property
    def height(self) -> int:
        """Raster height in pixels."""
        ...

    @property
    def width(self) -> int:
        """Raster width in pixels."""
        ...

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance ``(*lead, h, w)`` float32 (``lead`` = ``(C,)`` or ``(T, C)``, invalid
        pixels filled with 0) and validity ``(h, w)`` bool of ``window`` (inside the raster)."""
        ...


class TileSink(Protocol):
    """Where the engine writes finished probabilities to (class maps, probability rasters)."""

    def write(self, window: Window, proba: np.ndarray, valid: np.ndarray) -> None:
        """Take the final blended probabilities ``(K, h, w)`` float32 and validity ``(h, w)``
        of ``window``; every pixel of the raster is written exactly once."""
        ...


class ArraySource:
    """A :class:`TileSource` over an in-memory array ``(*lead, H, W)`` and its validity.

    Args:
        x: reflectance, float32-convertible, at least 3-D (``(C, H, W)`` or ``(T, C, H, W)``).
        valid: ``(H, W)`` bool; None means every pixel is valid. Invalid inputs are zeroed.
    """

    def __init__(self, x: np.ndarray, valid: np.ndarray | None = None) -> None:
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim < 3:
            raise ValueError(f"x must be (C, H, W) or (T, C, H, W), got shape {arr.shape}")
        ok = np.ones(arr.shape[-2:], bool) if valid is None else np.asarray(valid, dtype=bool)
        if ok.shape != arr.shape[-2:]:
            raise ValueError(f"valid must have shape {arr.shape[-2:]}, got {ok.shape}")
        ok = ok & np.isfinite(arr).all(axis=tuple(range(arr.ndim - 2)))
        self._x = np.where(ok, arr, np.float32(0))
        self._valid = ok

    @property
    def height(self) -> int:
        """Raster height in pixels."""
        return int(self._x.shape[-2])

    @property
    def width(self) -> int:
        """Raster width in pixels."""
        return int(self._x.shape[-1])

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """The reflectance and validity of ``window``."""
        rows, cols = window.toslices()
        return self._x[..., rows, cols], self._valid[rows, cols]


@dataclass(frozen=True, slots=True)
class ColumnBlock:
    """Output columns ``[start, stop)`` and the origins of the tile columns that cover them."""

    start: int
    stop: int
    origins: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TilingPlan:
    """Where the tiles of a ``height`` × ``width`` raster go."""

    height: int
    width: int
    tile: int
    overlap: int
    row_origins: tuple[int, ...]
    blocks: tuple[ColumnBlock, ...]

    @property
    def n_tiles(self) -> int:
        """Tiles predicted (tiles straddling column blocks count once per block)."""
        return len(self.row_origins) * sum(len(b.origins) for b in self.blocks)


@dataclass(frozen=True, slots=True)
class TilingStats:
    """What :func:`predict_tiled` did."""

    n_tiles: int
    n_batches: int
    device: str
    seconds: float


def tile_origins(size: int, tile: int, stride: int) -> tuple[int, ...]:
    """Tile start offsets along an axis of ``size`` pixels: ``0, stride, 2·stride, ...`` and a last
    one aligned with the border (``max(size, tile) - tile``), without duplicates."""
    if size < 1 or tile < 1 or stride < 1:
        raise ValueError(
            f"size, tile and stride must be >= 1, got size={size}, tile={tile}, stride={stride}"
        )
    last = max(size, tile) - tile
    origins = list(range(0, last, stride))
    origins.append(last)
    return tuple(origins)


def axis_weights(tile: int, overlap: int, taper_low: bool, taper_high: bool) -> np.ndarray:
    """The 1-D blending window of one tile side to side (float32, length ``tile``).

    On a tapered side: 0 over ``overlap // 4`` pixels, then ``sin²`` up to 1 at
    ``overlap - overlap // 4`` pixels from the edge; untapered sides (raster borders) stay 1.
    """
    w = np.ones(tile, np.float64)
    if overlap > 0:
        dead = overlap // 4
        ramp_len = overlap - 2 * dead
        t = np.clip((np.arange(tile) - dead + 0.5) / ramp_len, 0.0, 1.0)
        ramp = np.sin(0.5 * np.pi * t) ** 2
        if taper_low:
            w = np.minimum(w, ramp)
        if taper_high:
            w = np.minimum(w, ramp[::-1])
    return w.astype(np.float32)


def plan_tiles(
    height: int, width: int, tile: int, overlap: int, block_width: int = DEFAULT_BLOCK_WIDTH
) -> TilingPlan:
    """The tile grid of a raster and its split into column blocks.

    Raises:
        ValueError: non-positive sizes, ``overlap`` outside ``[0, tile)``, or ``block_width``
            smaller than the tile.
    """
    for name, v in (("height", height), ("width", width), ("tile", tile)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise ValueError(
            f"overlap must be an int in [0, tile) = [0, {tile}) pixels, got {overlap!r} "
            f"(a quarter of the tile, {tile // 4}, is a good default)"
        )
    if isinstance(block_width, bool) or not isinstance(block_width, int) or block_width < tile:
        raise ValueError(
            f"block_width must be an int >= the tile size ({tile} px), got {block_width!r}"
        )
    stride = tile - overlap
    cols = tile_origins(width, tile, stride)
    blocks = []
    for start in range(0, width, block_width):
        stop = min(start + block_width, width)
        blocks.append(
            ColumnBlock(start, stop, tuple(x for x in cols if x < stop and x + tile > start))
        )
    return TilingPlan(
        height=height,
        width=width,
        tile=tile,
        overlap=overlap,
        row_origins=tile_origins(height, tile, stride),
        blocks=tuple(blocks),
    )


def _pad_to(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Reflect-pad the last two axes of ``a`` at their high ends to ``rows`` × ``cols``."""
    pr, pc = rows - a.shape[-2], cols - a.shape[-1]
    if pr <= 0 and pc <= 0:
        return a
    widths = [(0, 0)] * (a.ndim - 2) + [(0, max(pr, 0)), (0, max(pc, 0))]
    mode = "reflect" if min(a.shape[-2:]) > 1 else "edge"
    return np.pad(a, widths, mode=mode)  # type: ignore[call-overload]


class _Blender:
    """Runs batches of tiles through the segmenter and checks what comes back."""

    def __init__(
        self, segmenter: Segmenter, spec: SegmenterSpec, device: torch.device, tile: int
    ) -> None:
        self.segmenter = segmenter
        self.spec = spec
        self.device = device
        self.tile = tile
        self.n_batches = 0

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device, non_blocking=True)
        with torch.inference_mode():
            p = self.segmenter.predict_proba(x)
        expected = (tiles.shape[0], self.spec.n_classes, self.tile, self.tile)
        if not isinstance(p, torch.Tensor) or tuple(p.shape) != expected:
            got = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(
                f"{type(self.segmenter).__name__}.predict_proba returned {got} for input "
                f"{tuple(x.shape)}; expected probabilities of shape (N, K, tile, tile) = "
                f"{expected} (K = {self.spec.n_classes} classes: {list(self.spec.class_names)})"
            )
        self.n_batches += 1
        return p.detach().to("cpu", torch.float32).numpy()


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_tiled(
    segmenter: Segmenter,
    source: TileSource,
    sink: TileSink,
    *,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 8,
    block_width: int = DEFAULT_BLOCK_WIDTH,
    device: str | torch.device | None = None,
    progress: ProgressFactory = no_progress,
    description: str = "predict",
) -> TilingStats:
    """Predict every pixel of ``source`` with ``segmenter`` tile by tile and hand the blended
    probabilities to ``sink`` block by block (see the module docstring for the scheme).

    Args:
        segmenter: the model (:class:`~s2ssl.inference.segmenter.Segmenter`).
        source: input reflectance in the segmenter's band order, with validity.
        sink: receives ``(window, probabilities (K, h, w), valid (h, w))`` once per output block.
        tile_size: tile edge in pixels (None: ``segmenter.tile_size``).
        overlap: pixels shared by neighbouring tiles (None: a quarter of the tile).
        batch_size: tiles per forward pass.
        block_width: widest column block processed at once (bounds memory).
        device: ``"auto"``/None (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        progress: progress factory, advanced once per tile (:mod:`s2ssl.progress`).
        description: the progress label.

    Raises:
        ValueError: invalid sizes, or the segmenter returning probabilities of the wrong shape.
    """
    spec = check_segmenter(segmenter)
    tile = spec.tile_size if tile_size is None else tile_size
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile!r}")
    ov = tile // 4 if overlap is None else overlap
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    plan = plan_tiles(source.height, source.width, tile, ov, block_width)
    dev = resolve_device(device)
    move_segmenter(segmenter, dev)
    run = _Blender(segmenter, spec, dev, tile)
    k = spec.n_classes
    h_pad, w_pad = max(plan.height, tile), max(plan.width, tile)
    windows = {
        (lo, hi): axis_weights(tile, ov, lo, hi) for lo in (False, True) for hi in (False, True)
    }
    start = time.perf_counter()
    with progress(description, plan.n_tiles) as advance:
        for block in plan.blocks:
            xa, xb = block.origins[0], block.origins[-1] + tile
            width = xb - xa
            acc = np.zeros((k, tile, width), np.float32)
            wsum = np.zeros((tile, width), np.float32)
            wx = [windows[(x > 0, x + tile < w_pad)] for x in block.origins]
            rows = plan.row_origins
            for i, y in enumerate(rows):
                window = Window(xa, y, min(xb, plan.width) - xa, min(y + tile, plan.height) - y)
                x, valid = source.read(window)
                strip = _pad_to(np.asarray(x, np.float32), tile, width)
                if spec.n_dates > 1 and (strip.ndim != 4 or strip.shape[0] != spec.n_dates):
                    raise ValueError(
                        f"the segmenter expects {spec.n_dates} dates (input (T, C, H, W)); the "
                        f"source gives {tuple(strip.shape[:-2])} before (H, W)"
                    )
                wrow = windows[(y > 0, y + tile < h_pad)]
                for batch in _batches(list(range(len(block.origins))), batch_size):
                    tiles = np.stack(
                        [
                            strip[..., :, block.origins[j] - xa : block.origins[j] - xa + tile]
                            for j in batch
                        ]
                    )
                    proba = run(tiles)
                    for p, j in zip(proba, batch, strict=True):
                        c = block.origins[j] - xa
                        w2 = wrow[:, None] * wx[j][None, :]
                        acc[:, :, c : c + tile] += p * w2
                        wsum[:, c : c + tile] += w2
                    advance(len(batch))
                stop = rows[i + 1] if i + 1 < len(rows) else plan.height
                n_final = stop - y
                c0, c1 = block.start - xa, block.stop - xa
                out = acc[:, :n_final, c0:c1] / wsum[:n_final, c0:c1]
                sink.write(
                    Window(block.start, y, block.stop - block.start, n_final),
                    out,
                    np.asarray(valid, bool)[:n_final, c0:c1],
                )
                if i + 1 < len(rows):
                    shift = rows[i + 1] - y
                    acc[:, : tile - shift] = acc[:, shift:].copy()
                    acc[:, tile - shift :] = 0.0
                    wsum[: tile - shift] = wsum[shift:].copy()
                    wsum[tile - shift :] = 0.0
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return TilingStats(
        n_tiles=plan.n_tiles,
        n_batches=run.n_batches,
        device=str(dev),
        seconds=time.perf_counter() - start,
    )
