"""Benchmark inference throughput: predicted km² per second of a ResNet-18 U-Net over a large
13-band GeoTIFF, end to end through :func:`s2ssl.inference.predict.predict_raster` (windowed
reads, DN → reflectance, sliding-window inference with blending, COG class map, areas).

Prints ONE JSON object on stdout; progress on stderr. Usage::

    python benchmarks/bench_predict.py                       # 2048 x 2048, CPU (and GPU if any)
    python benchmarks/bench_predict.py --size 1024 --devices cpu
    python benchmarks/bench_predict.py --devices cuda --batch-size 32

The model has random weights (throughput does not depend on them): ``ResNetUNet(depth=18,
in_channels=13, out_channels=7)`` wrapped in a :class:`~s2ssl.inference.segmenter.TorchSegmenter`
with per-band standardisation. The raster is synthetic uint16 DN at 10 m (so one pixel is
100 m²), tiled and deflate-compressed like a real scene. Reported per device: wall seconds,
``km2_per_s``, ``tiles_per_s``, ``megapixels_per_s`` and the tile count (including tiles
re-predicted at column-block boundaries, none at the default block width for this size), and
``model_fraction``, the share of the wall time spent in the model's forward pass (the rest is
reading, blending and writing).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from s2ssl.bands import BAND_NAMES
from s2ssl.inference.predict import predict_raster
from s2ssl.inference.segmenter import TorchSegmenter
from s2ssl.models.unet import ResNetUNet
from s2ssl.synthetic_vocabulary import LANDCOVER_CLASSES


def log(message: str) -> None:
    print(f"[bench_predict] {message}", file=sys.stderr, flush=True)


class Timed:
    """A segmenter proxy that accumulates the wall time spent in ``predict_proba``."""

    def __init__(self, inner: TorchSegmenter) -> None:
        self.inner = inner
        self.bands = inner.bands
        self.class_names = inner.class_names
        self.tile_size = inner.tile_size
        self.seconds = 0.0

    def to(self, device: torch.device) -> Timed:
        self.inner.to(device)
        return self

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        p = self.inner.predict_proba(x)
        if p.is_cuda:
            torch.cuda.synchronize(p.device)
        self.seconds += time.perf_counter() - t
        return p


def write_scene(path: Path, size: int, seed: int = 0) -> Path:
    """A ``size`` x ``size`` 13-band uint16 GeoTIFF (UTM 33N, 10 m), written in 512-row strips."""
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": len(BAND_NAMES),
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": Affine(10.0, 0.0, 400_000.0, 0.0, -10.0, 5_100_000.0),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    base = rng.uniform(300, 3500, (len(BAND_NAMES), 1, 1)).astype(np.float32)
    with rasterio.open(path, "w", **profile) as ds:
        for i, band in enumerate(BAND_NAMES, start=1):
            ds.set_band_description(i, band)
        ds.update_tags(PROCESSING_BASELINE="05.09")
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            block = base + rng.normal(0, 400, (len(BAND_NAMES), h, size)).astype(np.float32)
            ds.write(
                block.clip(1, 10_000).astype(np.uint16),
                window=rasterio.windows.Window(0, r0, size, h),
            )
    return path


def landcover_segmenter(tile: int = 256) -> Timed:
    """The timed random-init ResNet-18 U-Net land-cover segmenter (13 bands, 7 classes)."""
    torch.manual_seed(0)
    unet = ResNetUNet(depth=18, in_channels=len(BAND_NAMES), out_channels=len(LANDCOVER_CLASSES))
    return Timed(
        TorchSegmenter(
            unet,
            BAND_NAMES,
            LANDCOVER_CLASSES,
            tile_size=tile,
            mean=[0.15] * len(BAND_NAMES),
            std=[0.1] * len(BAND_NAMES),
        )
    )


def predict_once(
    segmenter: Timed, scene: Path, out: Path, device: str, overlap: int, batch_size: int
) -> dict[str, float | int | str]:
    """One :func:`predict_raster` of ``scene`` on ``device`` and its throughput figures."""
    segmenter.seconds = 0.0
    res = predict_raster(
        segmenter,
        scene,
        out,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        quicklook=False,
    )
    km2 = res.area_km2
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
    return {
        "device": res.device,
        "device_name": name or platform.machine(),
        "seconds": round(res.seconds, 3),
        "area_km2": round(km2, 3),
        "km2_per_s": round(km2 / res.seconds, 3),
        "tiles": res.n_tiles,
        "tiles_per_s": round(res.n_tiles / res.seconds, 3),
        "megapixels_per_s": round(res.height * res.width / res.seconds / 1e6, 4),
        "model_seconds": round(segmenter.seconds, 3),
        "model_fraction": round(segmenter.seconds / res.seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="raster edge in pixels")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--devices", default="auto", help="comma-separated: cpu, cuda; auto = cpu (+ cuda if any)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = (
        ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        if args.devices == "auto"
        else [d.strip() for d in args.devices.split(",") if d.strip()]
    )
    segmenter = landcover_segmenter(args.tile)
    results: dict[str, dict[str, float | int | str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        t = time.perf_counter()
        scene = write_scene(Path(tmp) / "scene.tif", args.size)
        log(f"wrote a {args.size}x{args.size}x13 raster in {time.perf_counter() - t:.1f} s")
        for device in devices:
            log(f"predicting on {device} ...")
            results[device] = predict_once(
                segmenter, scene, Path(tmp) / f"out_{device}", device, args.overlap, args.batch_size
            )
            log(f"{device}: {results[device]}")
    print(
        json.dumps(
            {
                "benchmark": "predict",
                "model": "ResNetUNet(depth=18, in_channels=13, out_channels=7), random weights",
                "raster": f"{args.size}x{args.size} px, 13 bands uint16, 10 m",
                "tile_size": args.tile,
                "overlap": args.overlap,
                "batch_size": args.batch_size,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "cpu_count": __import__("os").cpu_count(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
