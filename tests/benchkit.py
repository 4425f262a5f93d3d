"""Tiny benchmark downloads written in the published layouts (EuroSAT MS, BigEarthNet v2,
PASTIS), and params that import them with ``fetch.source: benchmark``."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_origin

from s2ssl.config import set_dotted
from s2ssl.data.sources.benchmark.bigearthnet import BIGEARTHNET_BANDS
from s2ssl.data.sources.benchmark.eurosat import EUROSAT_CLASS_COUNTS, EUROSAT_FILE_BANDS
from testkit import TINY_SIZES, read_repo_params, write_params

EUROSAT_VALUE_STEP = 100
"""File band ``i`` of a fixture EuroSAT tif holds ``100 * (i + 1) + class position`` DN."""


def write_eurosat(
    root: Path, per_class: int = 3, classes: tuple[str, ...] | None = None, split_lists: bool = True
) -> Path:
    """``root/EuroSAT_MS/<Class>/<Class>_<n>.tif`` (13 bands, B8A last, 64 x 64 uint16) and,
    when ``split_lists``, ``eurosat-{train,val,test}.txt`` (``n`` 1 -> test, 2 -> val, rest
    train)."""
    names = classes or tuple(EUROSAT_CLASS_COUNTS)
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    rng = np.random.default_rng(0)
    for c in names:
        k = list(EUROSAT_CLASS_COUNTS).index(c)
        for n in range(1, per_class + 1):
            path = root / "EuroSAT_MS" / c / f"{c}_{n}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            base = np.asarray(
                [EUROSAT_VALUE_STEP * (i + 1) + k for i in range(len(EUROSAT_FILE_BANDS))]
            )
            data = base[:, None, None] + rng.integers(0, 3, (13, 64, 64))
            with rasterio.open(
                path, "w", driver="GTiff", width=64, height=64, count=13, dtype="uint16",
                crs=CRS.from_epsg(32633), transform=from_origin(500000 + 640 * n, 5000000, 10, 10),
            ) as dst:  # fmt: skip
                dst.write(data.astype(np.uint16))
            split = "test" if n == 1 else "val" if n == 2 else "train"
            lists[split].append(f"{c}_{n}.jpg")
    if split_lists:
        for split, items in lists.items():
            (root / f"eurosat-{split}.txt").write_text("\n".join(items) + "\n")
    return root


def write_pastis(
    root: Path, lengths: dict[int, int], folds: dict[int, int], size: int = 128
) -> Path:
    """A PASTIS download: ``metadata.geojson`` (Lambert-93 squares, ``Fold``, ``dates-S2`` as a
    dict of YYYYMMDD: weekly from 2018-09-15 for up to 4 dates, else from 2018-09-20),
    ``DATA_S2/S2_<id>.npy`` int16 ``T x 10 x size x size`` (date ``t`` of
    band ``b`` holds ``1000 + 100 * b + t``), ``ANNOTATIONS/TARGET_<id>.npy`` (3 x size x size
    uint8; channel 0: left half class 1, right half class 2, first row void 19, last row 0) and
    ``ANNOTATIONS/ParcelIDs_<id>.npy`` (left half parcel 1, right half 2)."""
    (root / "DATA_S2").mkdir(parents=True, exist_ok=True)
    (root / "ANNOTATIONS").mkdir(parents=True, exist_ok=True)
    features = []
    for pid, t in lengths.items():
        first = dt.date(2018, 9, 15) if t <= 4 else dt.date(2018, 9, 20)
        days = [(first + dt.timedelta(days=7 * i)).strftime("%Y%m%d") for i in range(t)]
        x0, y0 = 600000.0 + 2000 * pid, 6800000.0
        ring = [[x0, y0], [x0 + 10 * size, y0], [x0 + 10 * size, y0 - 10 * size],
                [x0, y0 - 10 * size], [x0, y0]]  # fmt: skip
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "ID_PATCH": pid,
                    "Fold": folds[pid],
                    "TILE": "t31tfm",
                    "N_Parcel": 2,
                    "dates-S2": {str(i): int(d) for i, d in enumerate(days)},
                },
            }
        )
        series = np.zeros((t, 10, size, size), np.int16)
        for b in range(10):
            for d in range(t):
                series[d, b] = 1000 + 100 * b + d
        np.save(root / "DATA_S2" / f"S2_{pid}.npy", series)
        target = np.zeros((3, size, size), np.uint8)
        target[0, :, : size // 2] = 1
        target[0, :, size // 2 :] = 2
        target[0, 0] = 19
        target[0, -1] = 0
        np.save(root / "ANNOTATIONS" / f"TARGET_{pid}.npy", target)
        parcels = np.ones((size, size), np.int64)
        parcels[:, size // 2 :] = 2
        np.save(root / "ANNOTATIONS" / f"ParcelIDs_{pid}.npy", parcels)
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2154"}},
        "features": features,
    }
    (root / "metadata.geojson").write_text(json.dumps(doc))
    return root


NATIVE = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
          "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}  # fmt: skip


def write_band(path: Path, data: np.ndarray, res: int) -> None:
    """A single-band GeoTIFF at ``res`` metres with the upper-left corner every band shares."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[-1], height=data.shape[-2],
        count=1 if data.ndim == 2 else data.shape[0], dtype=data.dtype,
        crs=CRS.from_epsg(32633), transform=Affine(res, 0, 390000, 0, -res, 5348400),
    ) as dst:  # fmt: skip
        dst.write(data if data.ndim == 3 else data[None])


def band_values(band: str, step: int = 1000) -> np.ndarray:
    """Band ``band`` at its native size: ``step * (position in l2a + 1) + pixel number``."""
    size = 1200 // NATIVE[band]
    base = step * (BIGEARTHNET_BANDS.index(band) + 1)
    return (base + np.arange(size * size).reshape(size, size)).astype(np.uint16)


def write_patch(root: Path, patch_id: str, skip: tuple[str, ...] = (), step: int = 1000) -> Path:
    folder = root / "BigEarthNet-S2" / patch_id.rsplit("_", 2)[0] / patch_id
    for band, res in NATIVE.items():
        if band not in skip:
            write_band(folder / f"{patch_id}_{band}.tif", band_values(band, step), res)
    return folder


def write_metadata(path: Path, rows: list[dict]) -> None:
    """A metadata.parquet with the columns and types of the published file."""
    columns = {
        "patch_id": pa.array([r["patch_id"] for r in rows], pa.string()),
        "labels": pa.array([r["labels"] for r in rows], pa.list_(pa.string())),
        "split": pa.array([r.get("split", "train") for r in rows], pa.string()),
        "country": pa.array([r.get("country", "Austria") for r in rows], pa.string()),
        "s1_name": pa.array([f"S1_{r['patch_id'][-5:]}" for r in rows], pa.string()),
        "s2v1_name": pa.array([f"v1_{r['patch_id'][-5:]}" for r in rows], pa.string()),
        "contains_seasonal_snow": pa.array([r.get("snow", False) for r in rows], pa.bool_()),
        "contains_cloud_or_shadow": pa.array([r.get("cloud", False) for r in rows], pa.bool_()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _bigearthnet_common_file(name: str) -> Path:
    """A data file of the installed ``bigearthnet-common`` wheel (a ``dev`` dependency), found
    without importing the package; the test fails when it is not there."""
    try:
        dist = importlib.metadata.distribution("bigearthnet-common")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            "bigearthnet-common is not installed; it is a dev dependency (pip install -e .[dev])"
        )
    path = Path(str(dist.locate_file(f"bigearthnet_common/{name}")))
    if not path.is_file():
        pytest.fail(f"{path} not found in the bigearthnet-common {dist.version} install")
    return path


def extract_v1_examples(root: Path) -> Path:
    """The six real BigEarthNet v1 Sentinel-2 example patches of the ``bigearthnet-common`` wheel
    (a ``dev`` dependency), extracted under ``root`` without importing the package."""
    with tarfile.open(_bigearthnet_common_file("BigEarthNet-S2-Example.tar.bz2")) as tar:
        tar.extractall(root, filter="data")
    return root


V1_LIST_FILES = (
    "train.csv",
    "val.csv",
    "test.csv",
    "patches_with_seasonal_snow.csv",
    "patches_with_cloud_and_shadow.csv",
)
"""The BigEarthNet v1 split and snow / cloud lists the ``bigearthnet-common`` wheel ships."""


def extract_v1_lists(folder: Path, names: Sequence[str] = V1_LIST_FILES) -> Path:
    """The real BigEarthNet-19 split lists and snow / cloud lists shipped (bz2-compressed) in the
    ``bigearthnet-common`` wheel, written to ``folder`` byte for byte as published."""
    import bz2

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        packed = _bigearthnet_common_file(f"{name}.bz2")
        (folder / name).write_bytes(bz2.decompress(packed.read_bytes()))
    return folder


def benchmark_params(
    path: Path, fmt: str, benchmark: dict[str, Any], *, bands: str = "l2a", **dotted: Any
) -> Path:
    """Tiny params importing ``benchmark`` (the ``fetch.benchmark`` section) into ``path``."""
    raw = read_repo_params()
    for key, value in TINY_SIZES.items():
        set_dotted(raw, key, value)
    raw["bands"] = bands
    raw["fetch"]["source"] = "benchmark"
    raw["fetch"]["datasets"] = ["croptype" if fmt == "pastis" else "scene"]
    raw["fetch"]["start_date"] = "2017-01-01"
    raw["fetch"]["end_date"] = "2021-12-31"
    defaults = {
        "split_dir": None,
        "splits": {"train": 0.6, "val": 0.2, "test": 0.2},
        "folds": {"train": [1, 2, 3], "val": [4], "test": [5]},
        "exclude_snow_cloud": True,
        "max_per_split": None,
    }
    raw["fetch"]["benchmark"] = {**defaults, "format": fmt, **benchmark}
    for key, value in dotted.items():
        set_dotted(raw, key, value)
    return write_params(path, raw)
