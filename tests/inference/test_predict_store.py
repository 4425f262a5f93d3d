"""End to end: store samples in; one COG class map per sample, probabilities, areas out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from s2ssl.bands import BAND_NAMES, MASK_CLOUD
from s2ssl.data.store import write_dataset
from s2ssl.inference.maps import NODATA_CLASS, read_class_names
from s2ssl.inference.predict_store import predict_store

FOUR = ("B02", "B03", "B04", "B08")


def read(path: Path) -> tuple[np.ndarray, rasterio.profiles.Profile, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags(ns="IMAGE_STRUCTURE")


def test_store_samples_keep_their_own_grids(tmp_path: Path, tiny, dn_raster) -> None:
    n, t, h, w = 3, 2, 40, 50
    image = np.stack(
        [np.stack([dn_raster((13, h, w), seed=10 * i + d) for d in range(t)]) for i in range(n)]
    )
    mask = np.zeros((n, t, h, w), np.uint8)
    mask[:, 0] = MASK_CLOUD  # the first date is cloudy: the clearest date is the second
    mask[0, 1, :5, :5] = MASK_CLOUD
    transforms = [[10.0, 0.0, 300_000.0 + 1000 * i, 0.0, -10.0, 5_000_000.0] for i in range(n)]
    index = pd.DataFrame(
        {
            "sample_id": ["s-0", "s/1", "s-2"],
            "split": ["train", "test", "test"],
            "crs": ["EPSG:32633", "EPSG:32634", "EPSG:32633"],
            "transform": transforms,
            "dates": [["2021-05-01", "2022-06-01"]] * n,
            "dn_offset": [[0, -1000]] * n,
        }
    )
    path = write_dataset(
        tmp_path / "ds", {"image": image, "mask": mask}, index, attrs={"bands": list(BAND_NAMES)}
    )
    res = predict_store(
        tiny, path, tmp_path / "out", probabilities=True, device="cpu", tile_size=32, overlap=8
    )  # samples at least one tile large: no padding, so a whole-sample pass is the reference
    assert [r.classes_path.name for r in res.results] == ["s-0.tif", "s_1.tif", "s-2.tif"]
    for i, r in enumerate(res.results):
        classes, profile, structure = read(r.classes_path)
        assert profile["crs"] == rasterio.crs.CRS.from_user_input(index["crs"][i])
        assert tuple(profile["transform"])[:6] == tuple(transforms[i])
        assert (profile["height"], profile["width"]) == (h, w) and structure["LAYOUT"] == "COG"
        assert r.areas["date_index"] == 1 and r.areas["date"] == "2022-06-01"
        refl = (image[i, 1, [BAND_NAMES.index(b) for b in FOUR]].astype(np.float32) - 1000) / 1e4
        if i == 0:
            refl[:, :5, :5] = 0.0  # masked inputs are zeroed
        expected = np.argmax(tiny.whole(refl), axis=0)
        if i == 0:
            expected[:5, :5] = NODATA_CLASS
        np.testing.assert_array_equal(classes[0], expected)
        assert read_class_names(r.classes_path) == tiny.class_names
        assert r.probabilities_path is not None and r.probabilities_path.exists()
    areas = json.loads(res.areas_path.read_text())
    assert set(areas["samples"]) == {"s-0", "s_1", "s-2"}
    assert areas["total"]["nodata_pixels"] == 25
    assert areas["total"]["total_area_ha"] == pytest.approx(n * h * w * 0.01)
    assert res.quicklook_path is not None and res.quicklook_path.exists()

    test_only = predict_store(tiny, path, tmp_path / "test", split="test", quicklook=False)
    assert [r.classes_path.stem for r in test_only.results] == ["s_1", "s-2"]
    picked = predict_store(tiny, path, tmp_path / "ids", ids=["s-2"], date_index=0)
    assert picked.results[0].areas["nodata_pixels"] == h * w  # date 0 is all cloud
    with pytest.raises(ValueError, match=r"unknown sample id\(s\) \['nope'\]"):
        predict_store(tiny, path, tmp_path / "x", ids=["nope"])
    with pytest.raises(ValueError, match="date_index=5 does not fit"):
        predict_store(tiny, path, tmp_path / "x", date_index=5)
    with pytest.raises(ValueError, match=r"rgb lacks band B08 that the model"):
        write_dataset(
            tmp_path / "rgb",
            {"image": image[:, :, [3, 2, 1]]},
            index,
            attrs={"bands": ["B04", "B03", "B02"]},
        )
        predict_store(tiny, tmp_path / "rgb", tmp_path / "x")


def test_store_time_series_segmenter_reads_every_date(tmp_path: Path) -> None:
    class Series:
        bands = ("B04", "B08")
        class_names = ("low", "high")
        tile_size = 32
        n_dates = 3

        def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
            ndvi = ((x[:, :, 1] - x[:, :, 0]) / (x[:, :, 1] + x[:, :, 0] + 1e-6)).amax(dim=1)
            high = (ndvi > 0.3).float()[:, None]
            return torch.cat([1 - high, high], dim=1)

    n_t, h, w = 3, 32, 40
    image = np.full((1, n_t, 13, h, w), 1000, np.uint16)
    image[0, 2, 7, :, :20] = 3000  # B08 high on the last date, left half: NDVI 0.5
    image[0, :, :, 0, 0] = 0  # no data on every date
    mask = np.zeros((1, n_t, h, w), np.uint8)
    mask[0, :2, 5, 5] = MASK_CLOUD  # cloudy on two dates only: still predicted
    index = pd.DataFrame(
        {
            "sample_id": ["ts"],
            "crs": ["EPSG:32633"],
            "transform": [[10.0, 0.0, 0.0, 0.0, -10.0, 0.0]],
            "dn_offset": [[0, 0, 0]],
        }
    )
    path = write_dataset(tmp_path / "ts", {"image": image, "mask": mask}, index)
    res = predict_store(Series(), path, tmp_path / "out", quicklook=False)
    classes = read(res.results[0].classes_path)[0][0]
    expected = np.zeros((h, w), np.uint8)
    expected[:, :20] = 1
    expected[0, 0] = NODATA_CLASS
    np.testing.assert_array_equal(classes, expected)
    assert res.results[0].areas["date_index"] is None
    with pytest.raises(ValueError, match="reads 4 dates but dataset"):
        Series.n_dates = 4
        predict_store(Series(), path, tmp_path / "x")


def _store(root: Path, image: np.ndarray, bands: list[str] | None) -> Path:
    n = image.shape[0]
    index = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "crs": ["EPSG:32633"] * n,
            "transform": [[10.0, 0.0, 300_000.0, 0.0, -10.0, 5_000_000.0]] * n,
            "dn_offset": [[0]] * n,
        }
    )
    attrs = {} if bands is None else {"bands": bands}
    return write_dataset(root, {"image": image}, index, attrs=attrs)


def test_store_bands_are_selected_by_name(tmp_path: Path, tiny, make_tiny, dn_raster) -> None:
    h = w = 32
    l2a = list(BAND_NAMES[:10] + BAND_NAMES[11:])
    image = dn_raster((12, h, w))[None, None]  # one sample, one date, Level-2A bands
    named = _store(tmp_path / "named", image, l2a)
    res = predict_store(
        tiny, named, tmp_path / "out", device="cpu", tile_size=32, overlap=8, quicklook=False
    )  # one whole tile: no padding
    refl = image[0, 0, [l2a.index(b) for b in FOUR]].astype(np.float32) / 1e4
    classes, _, _ = read(res.results[0].classes_path)
    whole = tiny.whole(refl)
    top2 = np.sort(whole, axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # not a near-tie
    np.testing.assert_array_equal(classes[0][clear], np.argmax(whole, axis=0)[clear])
    areas = json.loads(res.areas_path.read_text())
    assert areas["model"]["input_bands"] == l2a and areas["model"]["input_bands_preset"] == "l2a"
    with pytest.raises(ValueError, match=r"named lacks band B10 that the model \(trained on l1c\)"):
        predict_store(make_tiny(bands=BAND_NAMES), named, tmp_path / "x")
    unnamed = _store(tmp_path / "unnamed", image, None)  # an older store: 12 bands = l2a
    again = predict_store(tiny, unnamed, tmp_path / "out2", tile_size=32, overlap=8)
    np.testing.assert_array_equal(read(again.results[0].classes_path)[0], classes)
    five = _store(tmp_path / "five", image[:, :, :5], None)
    with pytest.raises(ValueError, match="5 bands carry no Sentinel-2 band names"):
        predict_store(tiny, five, tmp_path / "x")
