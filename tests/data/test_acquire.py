"""One scene over an area and a date (s2ssl.data.acquire): the grid, the synthetic source, the
GeoTIFF's bands and radiometry as predict reads them, and the errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from s2ssl.bands import L2A_BAND_NAMES, MASK_CLOUD
from s2ssl.config import Params, parse_params
from s2ssl.data.acquire import acquire_scene, area_grid, parse_area, parse_date, read_acquisition
from s2ssl.data.sources import sampling
from s2ssl.inference.rasters import RasterInput
from testkit import read_repo_params

BBOX = (2.0, 48.0, 2.03, 48.02)  # inside the synthetic region north_west (1..4 E, 47..49 N)
DAY = dt.date(2022, 7, 1)  # baseline 04.00: DN carry the -1000 offset


def params(**changes: object) -> Params:
    raw = read_repo_params()
    raw.update(changes)
    return parse_params(raw)


@pytest.fixture(scope="module")
def synthetic_params() -> Params:
    return params()


# --------------------------------------------------------------------------- parsing and grid
def test_area_and_date_parsing_name_the_expected_format() -> None:
    assert parse_area("14.5,46.0,14.55,46.04") == (14.5, 46.0, 14.55, 46.04)
    assert parse_area(" -61, -34 , -60.9,-33.9 ") == (-61.0, -34.0, -60.9, -33.9)
    for bad in ("14.5,46.0,14.55", "a,b,c,d", "14.6,46,14.5,46.1", "14,85,15,86", "nan,1,2,3"):
        with pytest.raises(ValueError, match="LON_MIN,LAT_MIN,LON_MAX,LAT_MAX"):
            parse_area(bad)
    assert parse_date("2021-07-01") == dt.date(2021, 7, 1)
    for bad in ("2021-7-1", "01.07.2021", "2021-02-30", ""):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            parse_date(bad)


def test_the_grid_is_the_utm_envelope_of_the_box_at_10_m() -> None:
    grid = area_grid(BBOX)
    assert grid.crs == "EPSG:32631"  # 2 E: UTM zone 31 north
    a, b, x0, d, e, y0 = grid.transform
    assert (a, b, d, e) == (10.0, 0.0, 0.0, -10.0)
    to_utm = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    minx, miny, maxx, maxy = to_utm.transform_bounds(*BBOX, densify_pts=21)
    assert minx - 10 < x0 <= minx and maxy <= y0 < maxy + 10  # origin within a pixel
    # size from the box: its extent in pixels, plus at most one pixel per edge snapped outwards
    assert (maxx - minx) / 10 <= grid.width < (maxx - minx) / 10 + 2
    assert (maxy - miny) / 10 <= grid.height < (maxy - miny) / 10 + 2
    gx0, gy0, gx1, gy1 = grid.bounds
    for lon, lat in [
        (BBOX[0], BBOX[1]),
        (BBOX[2], BBOX[3]),
        (BBOX[0], BBOX[3]),
        (BBOX[2], BBOX[1]),
    ]:
        x, y = to_utm.transform(lon, lat)
        assert gx0 <= x <= gx1 and gy0 <= y <= gy1  # every corner of the box is covered
    south = area_grid((-61.0, -34.0, -60.99, -33.99))
    assert south.crs == "EPSG:32720"


def test_too_large_an_area_is_refused_with_its_size() -> None:
    with pytest.raises(ValueError, match=r"smaller area") as info:
        area_grid((2.0, 47.5, 3.0, 48.5), max_size=2048)
    assert "km" in str(info.value) and "2048" in str(info.value)


# --------------------------------------------------------------------------- synthetic
@pytest.mark.slow
def test_synthetic_scene_is_georeferenced_named_and_in_the_training_radiometry(
    synthetic_params: Params, tmp_path: Path
) -> None:
    path = acquire_scene(synthetic_params, BBOX, DAY, tmp_path)
    assert path == tmp_path / "scene.tif"
    grid = area_grid(BBOX)
    with rasterio.open(path) as ds:
        assert ds.crs.to_string() == grid.crs
        assert tuple(ds.transform)[:6] == grid.transform
        assert (ds.width, ds.height) == (grid.width, grid.height)
        assert ds.descriptions == (*L2A_BAND_NAMES, "mask")  # bands: l2a, nothing filled
        assert ds.dtypes[0] == "uint16" and ds.count == 13
        tags = ds.tags()
        dn = ds.read(list(range(1, 13)))
        mask = ds.read(13)
    assert tags["S2SSL_BANDS"] == ",".join(L2A_BAND_NAMES)
    assert tags["ACQUISITION_DATE"] == "2022-07-01" and tags["PROCESSING_BASELINE"] == "04.00"
    assert tags["BOA_ADD_OFFSET"] == "-1000" and tags["S2SSL_REGION"] == "north_west"
    assert dn.min() >= 1  # DN 0 is reserved for no data
    # predict reads it as (DN - 1000) / 10000, the radiometry of the training datasets
    with RasterInput(path, L2A_BAND_NAMES) as raster:
        assert raster.radiometry.dn_offset == -1000
        x, valid = raster.read(rasterio.windows.Window(0, 0, grid.width, grid.height))
    expected = (dn.astype(np.float32) - 1000.0) / 10000.0
    np.testing.assert_allclose(x[:, valid], expected[:, valid], rtol=1e-6, atol=1e-7)
    assert not valid[mask == MASK_CLOUD].any()
    # magnitudes as in the synthetic landcover dataset: vegetation-like NIR, dark blue
    assert 0.0 < np.median(x[1][valid]) < 0.2 and 0.1 < np.median(x[7][valid]) < 0.6
    info = read_acquisition(path)
    assert info["source"] == "synthetic" and info["acquisition"]["region"] == "north_west"
    assert info["grid"]["crs"] == grid.crs and info["bands"][-1] == "mask"
    assert json.loads((tmp_path / "scene.json").read_text()) == info


def test_synthetic_scene_is_deterministic(synthetic_params: Params, tmp_path: Path) -> None:
    first = acquire_scene(synthetic_params, BBOX, DAY, tmp_path / "a").read_bytes()
    again = acquire_scene(synthetic_params, BBOX, DAY, tmp_path / "b").read_bytes()
    assert first == again
    other_seed = params(seed=7)
    assert acquire_scene(other_seed, BBOX, DAY, tmp_path / "c").read_bytes() != first
    other_day = acquire_scene(synthetic_params, BBOX, dt.date(2022, 1, 10), tmp_path / "d")
    assert other_day.read_bytes() != first


def test_an_area_outside_every_region_lists_the_regions(
    synthetic_params: Params, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="lies in no region") as info:
        acquire_scene(synthetic_params, (14.5, 46.0, 14.55, 46.04), DAY, tmp_path)
    message = str(info.value)
    for region in synthetic_params.fetch.synthetic.regions:
        assert region.name in message
    assert "1,47,4,49" in message  # north_west's box, in the --area format
    assert not (tmp_path / "scene.tif").exists()
    # straddling a region's edge is outside too
    with pytest.raises(ValueError, match="lies in no region"):
        acquire_scene(synthetic_params, (3.99, 48.0, 4.01, 48.01), DAY, tmp_path)


def test_synthetic_size_is_capped(synthetic_params: Params, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="smaller area"):
        acquire_scene(synthetic_params, (1.5, 47.5, 3.5, 48.5), DAY, tmp_path)
    with pytest.raises(ValueError, match="64 px"):
        acquire_scene(synthetic_params, BBOX, DAY, tmp_path, max_size=64)


def test_local_source_has_nothing_to_fetch(tmp_path: Path) -> None:
    raw = read_repo_params()
    raw["fetch"]["source"] = "local"
    raw["fetch"]["datasets"] = ["landcover"]
    raw["fetch"]["local"] = {"landcover": {"path": str(tmp_path)}}
    with pytest.raises(ValueError, match=r"nothing to fetch.*s2ssl predict scene\.tif"):
        acquire_scene(parse_params(raw), BBOX, DAY, tmp_path)


# --------------------------------------------------------------------------- choosing a date
def _scene(day: str, cloud: float, ident: str = "") -> sampling.CatalogScene:
    when = dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")
    return sampling.CatalogScene(ident or f"S2_{day}", when, cloud, "04.00", "product_id")


def test_pick_acquisition_least_cloudy_or_closest() -> None:
    scenes = [
        _scene("2021-06-21", 3.0),
        _scene("2021-06-30", 8.0),
        _scene("2021-07-05", 3.0),
        _scene("2021-07-05", 1.0, "S2_2021-07-05_other_tile"),
        _scene("2021-07-20", 0.5),  # outside the window
        _scene("2021-07-02", 40.0),  # above the cloud filter
    ]
    window = sampling.window_around(dt.date(2021, 7, 1), 15)
    best, days = sampling.pick_acquisition(scenes, dt.date(2021, 7, 1), window, 10.0)
    assert best.id == "S2_2021-07-05_other_tile"  # least cloudy tile of the least cloudy day
    assert [d.date.isoformat() for d in days] == ["2021-06-21", "2021-06-30", "2021-07-05"]
    closest, _ = sampling.pick_acquisition(scenes, dt.date(2021, 7, 1), window, 10.0, "closest")
    assert closest.date == dt.date(2021, 6, 30)
    tie = [_scene("2021-06-27", 2.0), _scene("2021-07-03", 2.0)]
    best, _ = sampling.pick_acquisition(tie, dt.date(2021, 7, 1), window, 10.0)
    assert best.date == dt.date(2021, 7, 3)  # equally clear: the closer day
    assert sampling.pick_acquisition(scenes, dt.date(2021, 7, 1), window, 0.1) is None
    with pytest.raises(ValueError, match="least_cloudy, closest"):
        sampling.pick_acquisition(scenes, dt.date(2021, 7, 1), window, 10.0, "newest")
