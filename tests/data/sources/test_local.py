"""fetch.source: local — GeoTIFF import on real pixels (the BigEarthNet example patches and the
eo-learn patch), multi-date samples with labels, and bad files skipped by name."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from s2ssl.bands import BAND_NAMES, L2A_BAND_NAMES, MASK_CLEAR, band_index
from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import Params, parse_params
from s2ssl.data.fetch import fetch
from s2ssl.data.sources.base import INDEX_COLUMNS
from s2ssl.data.store import open_dataset
from testkit import REPO_ROOT, read_repo_params

SHARED = REPO_ROOT.parent / "shared" / "data"
EOLEARN = SHARED / "eolearn_slovenia_testpatch.npz"
BEN_NPZ = SHARED / "bigearthnet_v1_s2_examples.npz"
UTM33 = CRS.from_epsg(32633)


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """A north-up geotransform (rasterio's own helper warns about ``*`` on Affine)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def local_params(datasets: dict[str, dict[str, Any]], start: str = "2015-01-01") -> Params:
    raw = read_repo_params()
    raw["fetch"]["source"] = "local"
    raw["fetch"]["start_date"] = start
    raw["fetch"]["datasets"] = list(datasets)
    raw["fetch"]["local"] = datasets
    return parse_params(raw)


def write_tif(path: Path, bands: np.ndarray, transform: Any = None, crs: CRS | None = UTM33):
    """``bands`` [C, H, W] as a GeoTIFF (10 m grid at an arbitrary UTM 33N origin by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    transform = transform or from_origin(450000, 5100000, 10, 10)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=bands.shape[1],
        width=bands.shape[2],
        count=bands.shape[0],
        dtype=bands.dtype,
        crs=crs,
        transform=transform,
    ) as dst:
        dst.write(bands)
    return path


@pytest.fixture(scope="module")
def ben_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six BigEarthNet example patches as their original per-band GeoTIFFs (from the
    ``bigearthnet-common`` wheel), or rebuilt from ../shared/data; skipped when neither exists."""
    root = tmp_path_factory.mktemp("ben")
    spec = importlib.util.find_spec("bigearthnet_common")
    if spec is not None and spec.submodule_search_locations:
        tarball = Path(spec.submodule_search_locations[0]) / "BigEarthNet-S2-Example.tar.bz2"
        with tarfile.open(tarball) as tar:
            tar.extractall(root, filter="data")
        return root
    if not BEN_NPZ.exists():
        pytest.skip("neither bigearthnet-common nor ../shared/data is available")
    z = np.load(BEN_NPZ)
    groups = {
        10: ("b10m", ("B02", "B03", "B04", "B08")),
        20: ("b20m", ("B05", "B06", "B07", "B8A", "B11", "B12")),
        60: ("b60m", ("B01", "B09")),
    }
    for k, name in enumerate(z["names"]):
        for res, (key, names) in groups.items():
            for i, band in enumerate(names):
                write_tif(
                    root / str(name) / f"{name}_{band}.tif",
                    z[key][k, i : i + 1],
                    from_origin(450000, 5100000, res, res),
                )
    return root


def test_bigearthnet_band_files_import_with_20_and_60_m_resampled(ben_dir: Path, tmp_path: Path):
    params = local_params({"landcover": {"path": str(ben_dir), "patch_size": 112}})
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(tmp_path / "raw" / "landcover")
    assert len(ds) == 6 and not result.skipped
    assert ds.bands == L2A_BAND_NAMES  # the configured l2a bands: the band files BigEarthNet has
    assert ds.specs["image"].shape == (1, 12, 112, 112) and "filled_bands" not in ds.attrs
    assert list(ds.index.columns[: len(INDEX_COLUMNS)]) == list(INDEX_COLUMNS)
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        folder = Path(row["source_file"])
        image = ds.read("image", i)[0]
        with rasterio.open(folder / f"{folder.name}_B02.tif") as src:
            b02 = src.read(1)
            assert row["crs"] == src.crs.to_string()
            assert row["transform"][2] == pytest.approx(src.transform.c + 4 * 10)  # centred tile
        b02_tile = np.maximum(b02[4:116, 4:116], 1)
        np.testing.assert_array_equal(image[ds.bands.index("B02")], b02_tile)
        with rasterio.open(folder / f"{folder.name}_B05.tif") as src:  # 20 m, 60 x 60
            b05 = src.read(1).astype(float)
        up = image[ds.bands.index("B05")].astype(float)
        assert up.mean() == pytest.approx(b05[2:58, 2:58].mean(), rel=0.02)
        assert np.corrcoef(up[::2, ::2].ravel(), b05[2:58, 2:58].ravel())[0, 1] > 0.8
        assert (ds.read("mask", i) == MASK_CLEAR).all()
        name_date = folder.name.split("_")[2][:8]
        assert row["dates"] == [f"{name_date[:4]}-{name_date[4:6]}-{name_date[6:]}"]
        assert list(row["dn_offset"]) == [0] and list(row["processing_baseline"]) == ["03.01"]
    if BEN_NPZ.exists():  # the same pixels as the independent copy in ../shared/data
        z = np.load(BEN_NPZ)
        names = [str(n) for n in z["names"]]
        for i in range(len(ds)):
            k = names.index(Path(ds.index.iloc[i]["source_file"]).name)
            image = ds.read("image", i)[0]
            for j, band in enumerate(("B02", "B03", "B04", "B08")):
                expected = np.maximum(z["b10m"][k, j, 4:116, 4:116], 1)
                np.testing.assert_array_equal(image[ds.bands.index(band)], expected)


@pytest.mark.skipif(not EOLEARN.exists(), reason="../shared/data is absent (a user's fresh clone)")
def test_eolearn_multiband_reflectance_with_a_label_raster(tmp_path: Path):
    z = np.load(EOLEARN)
    k = 0
    stamp = str(z["timestamps"][z["ref_scene_timestamp_idx"][k]])
    day = dt.date.fromisoformat(stamp[:10])
    refl = np.moveaxis(z["ref_scenes_l1c"][k], -1, 0)  # [13, 101, 100], L1C order
    assert list(z["l1c_bands"]) == list(BAND_NAMES)
    x0, y1 = z["bbox_utm33n"][0], z["bbox_utm33n"][3]
    transform = from_origin(x0, y1, 10, 10)
    name = f"slovenia_{day:%Y%m%d}"
    write_tif(tmp_path / "in" / f"{name}.tif", refl.astype(np.float32), transform)
    write_tif(tmp_path / "in" / f"{name}_lulc.tif", z["lulc"][None].astype(np.uint16), transform)
    classes = {
        1: "cropland",
        2: "forest",
        3: "grassland",
        4: "grassland",
        5: "water",
        6: "wetland",
        8: "artificial",
        9: "bare",
    }
    params = local_params(
        {
            "landcover": {
                "path": str(tmp_path / "in"),
                "patch_size": 96,
                "labels": {"landcover": "_lulc"},
                "label_classes": {"landcover": classes},
                "ignore_values": {"landcover": [0]},
                "region": "slovenia",
            }
        }
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert not result.skipped
    ds = open_dataset(tmp_path / "raw" / "landcover")
    own = ("cropland", "forest", "grassland", "water", "wetland", "artificial", "bare")
    assert len(ds) == 1 and ds.classes("landcover").names == own  # ascending raster value
    assert ds.classes("landcover").ignored_values == (0,) and ds.bands == L2A_BAND_NAMES
    row = ds.index.iloc[0]
    assert row["dates"] == [day.isoformat()] and list(row["dn_offset"]) == [0]
    assert row["lat"] == pytest.approx(45.87, abs=0.05) and row["hemisphere"] == "north"
    y0, xo = (101 - 96) // 2, (100 - 96) // 2
    window = (slice(None), slice(y0, y0 + 96), slice(xo, xo + 96))
    image = ds.read("image", 0)[0]
    expected = np.maximum(np.rint(refl[window] * 10000), 1)[[band_index(b) for b in ds.bands]]
    np.testing.assert_array_equal(image, expected.astype(np.uint16))
    labels = ds.read("landcover", 0)
    lulc = z["lulc"][window[1:]]
    assert (labels[lulc == 2] == own.index("forest")).all()
    assert (labels[lulc == 4] == own.index("grassland")).all()
    assert (labels[lulc == 3] == own.index("grassland")).all()
    assert (labels[lulc == 0] == LABEL_IGNORE).all()
    assert (labels == own.index("forest")).mean() > 0.6


def test_bad_files_are_reported_by_name_and_skipped(tmp_path: Path):
    rng = np.random.default_rng(0)
    good = rng.integers(100, 3000, (13, 32, 32)).astype(np.uint16)
    root = tmp_path / "in"
    write_tif(root / "good_20200101.tif", good)
    write_tif(root / "three_bands_20200102.tif", good[:3])
    write_tif(root / "nocrs_20200103.tif", good, crs=None)
    write_tif(
        root / "degrees_20200104.tif",
        good,
        from_origin(14.0, 46.0, 1e-4, 1e-4),
        CRS.from_epsg(4326),
    )
    write_tif(root / "nodate.tif", good)
    (root / "garbage_20200105.tif").write_bytes(b"II*\x00 this is not a tiff at all")
    for band in L2A_BAND_NAMES:
        if band != "B05":  # a band folder missing B05
            write_tif(root / "T33_20200106" / f"T33_20200106_{band}.tif", good[:1])
    params = local_params({"landcover": {"path": str(root), "patch_size": 32}})
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert len(open_dataset(tmp_path / "raw" / "landcover")) == 1
    reasons = {Path(s.item).name: s.reason for s in result.skipped}
    assert reasons == {
        "three_bands_20200102": "wrong band count",
        "nocrs_20200103": "no CRS",
        "degrees_20200104": "geographic CRS",
        "nodate": "no acquisition date",
        "garbage_20200105": "unreadable",
        "T33_20200106": "missing bands",
    }
    report = json.loads((tmp_path / "reports" / "acquisition.json").read_text())
    assert report["datasets"]["landcover"]["skipped_by_reason"]["wrong band count"] == 1
    assert any("three_bands_20200102.tif" in s["detail"] for s in report["skipped"])
    assert result.summary["landcover.n_skipped"] == 6

    (root / "good_20200101.tif").unlink()
    with pytest.raises(ValueError, match="nothing imported"):
        fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert len(open_dataset(tmp_path / "raw" / "landcover")) == 1  # previous dataset intact


def test_multi_date_samples_stack_dates_and_derive_parcels(tmp_path: Path):
    root = tmp_path / "sits"
    crop = np.zeros((1, 16, 16), np.uint8)
    crop[0, :8, :7] = 1  # winter wheat
    crop[0, :8, 9:] = 4  # maize
    crop[0, 10:, :] = 1  # a second wheat parcel
    for d, day in enumerate(("20210401", "20210601", "20210801", "20211001")):
        dn = np.full((12, 16, 16), 1000 + 100 * d, np.uint16)  # Level-2A: 12 bands
        write_tif(root / "field_a" / f"S2B_MSIL2A_{day}_N0300_x.tif", dn)
    write_tif(root / "field_a" / "field_a_crop.tif", crop)
    write_tif(
        root / "field_b" / "S2B_MSIL2A_20210401_N0300_x.tif", np.ones((12, 16, 16), np.uint16)
    )
    params = local_params(
        {
            "croptype": {
                "path": str(root),
                "patch_size": 16,
                "n_dates": 3,
                "labels": {"croptype": "_crop"},
                "label_classes": {"croptype": {0: "background", 1: "wheat", 4: "maize"}},
            }
        }
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert [(Path(s.item).name, s.reason) for s in result.skipped] == [("field_b", "too few dates")]
    ds = open_dataset(tmp_path / "raw" / "croptype")
    assert len(ds) == 1 and ds.specs["image"].shape == (3, 12, 16, 16)
    assert ds.classes("croptype").names == ("background", "wheat", "maize")
    assert ds.classes("croptype").values == (0, 1, 4)
    assert ds.index.iloc[0]["dates"] == ["2021-04-01", "2021-08-01", "2021-10-01"]  # evenly spread
    image = ds.read("image", 0)
    assert list(image[:, ds.bands.index("B02"), 0, 0]) == [1000, 1200, 1300]
    stored = np.select([crop[0] == 1, crop[0] == 4], [1, 2], 0)  # maize is the third class
    np.testing.assert_array_equal(ds.read("croptype", 0), stored)
    parcel = ds.read("parcel", 0)
    assert parcel.max() == 3 and (parcel[crop[0] == 0] == 0).all()
    assert len(np.unique(parcel[:8, :7])) == 1 and parcel[0, 0] != parcel[12, 0]
