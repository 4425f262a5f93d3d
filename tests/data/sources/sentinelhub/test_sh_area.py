"""One scene over an area and a date from Sentinel Hub (s2ssl.data.acquire with
fetch.source: sentinelhub), against the imitation on 127.0.0.1 through the real client."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from sh_server import CLIENT_SECRET, Imitation, ShImitation, baseline_of, product_id

from s2ssl.bands import L2A_BAND_NAMES, MASK_CLEAR, MASK_CLOUD
from s2ssl.config import Params, parse_params
from s2ssl.data.acquire import acquire_scene, area_grid, read_acquisition
from s2ssl.data.sources.sentinelhub.auth import SentinelHubCredentialsError
from s2ssl.inference.rasters import RasterInput
from testkit import read_repo_params, save_tiny_segmentation_model, write_params

AREA = (14.50, 46.00, 14.53, 46.02)  # Slovenia, ~230 x 225 px
DAY = dt.date(2022, 7, 1)  # baseline 04.00: raw DN carry the +1000 offset


def sh_area_params(tmp_path: Path, **sentinelhub: Any) -> dict[str, Any]:
    """The repo's params (as a mapping) with source sentinelhub and fast retries."""
    raw = read_repo_params()
    raw["fetch"]["source"] = "sentinelhub"
    raw["fetch"]["datasets"] = ["landcover"]
    cfg: dict[str, Any] = {
        "max_cloud_coverage": 0.5,
        "cache_dir": str(tmp_path / "cache"),
        "regions": [{"name": "slovenia", "bbox": [14.0, 45.9, 14.6, 46.3]}],
        "retry": {"backoff_s": 0.0, "max_backoff_s": 0.0},
    }
    cfg.update(sentinelhub)
    raw["fetch"]["sentinelhub"] = cfg
    return raw


def parsed(tmp_path: Path, **sentinelhub: Any) -> Params:
    return parse_params(sh_area_params(tmp_path, **sentinelhub))


def acceptable(state: Imitation, centre: dt.date, days: int, max_cc: float) -> list[dt.date]:
    window = (centre - dt.timedelta(days=days), centre + dt.timedelta(days=days))
    return [d for d in state.acquisitions(*window) if state.cloud_cover(d) <= max_cc]


def test_the_least_cloudy_acquisition_of_the_window_is_downloaded(
    sh: ShImitation, tmp_path: Path
) -> None:
    params = parsed(tmp_path)
    path = acquire_scene(params, AREA, DAY, tmp_path / "out", sleep=lambda s: None)
    days = acceptable(sh.state, DAY, 15, 50.0)  # the landcover window, the 50 % filter
    assert len(days) >= 2
    best = min(days, key=lambda d: (sh.state.cloud_cover(d), abs((d - DAY).days), d))
    info = read_acquisition(path)
    acq = info["acquisition"]
    assert acq["date"] == best.isoformat()
    assert acq["product_id"] == product_id(best, "sentinel-2-l2a")
    assert acq["cloud_cover_percent"] == pytest.approx(sh.state.cloud_cover(best))
    assert acq["processing_baseline"] == baseline_of(best) and acq["dn_offset"] == -1000
    assert [c["date"] for c in info["search"]["candidates"]] == [d.isoformat() for d in days]
    assert info["search"]["window_days"] == 15 and info["from_cache"] is False
    assert info["requests"]["catalog"] == info["requests"]["process"] == 1
    assert info["requests"]["processing_units"] > 0  # as the service reported them
    grid = area_grid(AREA)
    assert sh.state.process_log[-1]["size"] == (grid.width, grid.height)
    assert sh.state.process_log[-1]["day"] == best
    with rasterio.open(path) as ds:
        assert ds.crs.to_string() == grid.crs == "EPSG:32633"
        assert tuple(ds.transform)[:6] == grid.transform
        assert ds.descriptions == (*L2A_BAND_NAMES, "mask")  # bands: l2a, nothing filled
        assert ds.tags()["PRODUCT_ID"] == acq["product_id"]
        assert ds.tags()["S2SSL_BANDS"] == ",".join(L2A_BAND_NAMES)
        assert "S2SSL_FILLED_BANDS" not in ds.tags()
        dn, mask = ds.read(list(range(1, 13))), ds.read(13)
    # B01 encodes the acquisition day, raw with the 04.00 offset, which predict removes again
    doy = best.timetuple().tm_yday
    assert (dn[0] == 1000 + doy + 1000).all()
    with RasterInput(path, ("B01", "B11")) as raster:
        x, valid = raster.read(rasterio.windows.Window(0, 0, grid.width, grid.height))
    assert np.allclose(x[0][valid], (1000 + doy) / 10000)
    assert info["bands"] == [*L2A_BAND_NAMES, "mask"] and "filled_bands" not in info
    cloud_rows = round(grid.height * sh.state.cloud_cover(best) / 100)
    assert (mask[:cloud_rows] == MASK_CLOUD).all() and (mask[cloud_rows:] == MASK_CLEAR).all()
    assert not valid[:cloud_rows].any() and valid[cloud_rows:].all()


def test_closest_pick_a_smaller_window_and_the_cache(sh: ShImitation, tmp_path: Path) -> None:
    params = parsed(tmp_path)
    path = acquire_scene(
        params, AREA, DAY, tmp_path / "a", window_days=6, pick="closest", sleep=lambda s: None
    )
    days = acceptable(sh.state, DAY, 6, 50.0)
    closest = min(days, key=lambda d: (abs((d - DAY).days), sh.state.cloud_cover(d), d))
    assert read_acquisition(path)["acquisition"]["date"] == closest.isoformat()
    before = dict(sh.state.counts)
    again = acquire_scene(
        params, AREA, DAY, tmp_path / "b", window_days=6, pick="closest", sleep=lambda s: None
    )
    assert dict(sh.state.counts) == before  # catalog answer and scene come from the cache
    assert read_acquisition(again)["from_cache"] is True
    assert again.read_bytes() == path.read_bytes()


def test_transient_errors_are_retried(sh: ShImitation, tmp_path: Path) -> None:
    sh.state.inject("catalog", [503])
    sh.state.inject("process", [429, 500])
    sleeps: list[float] = []
    path = acquire_scene(parsed(tmp_path), AREA, DAY, tmp_path, sleep=sleeps.append)
    assert path.is_file() and len(sleeps) == 3
    assert sh.state.counts["process_requests"] == 3


def test_an_empty_window_says_what_to_change(sh: ShImitation, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no Sentinel-2 L2A acquisition.*--window-days"):
        acquire_scene(
            parsed(tmp_path), AREA, DAY, tmp_path, max_cloud_coverage=0.0, sleep=lambda s: None
        )
    assert sh.state.counts["process_requests"] == 0
    assert not (tmp_path / "scene.tif").exists()


def test_missing_credentials_fail_before_any_request(
    sh: ShImitation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SH_CLIENT_ID")
    with pytest.raises(SentinelHubCredentialsError, match="SH_CLIENT_ID"):
        acquire_scene(parsed(tmp_path), AREA, DAY, tmp_path)
    assert sum(sh.state.counts.values()) == 0


def test_too_large_an_area_is_refused_before_any_request(sh: ShImitation, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"2500 px \(25 km\).*smaller area"):
        acquire_scene(parsed(tmp_path), (14.0, 45.9, 14.4, 46.2), DAY, tmp_path)
    assert sum(sh.state.counts.values()) == 0


@pytest.mark.slow
def test_predict_an_area_from_sentinel_hub_end_to_end(
    sh: ShImitation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from typer.testing import CliRunner

    from s2ssl.cli import app

    caplog.set_level(logging.DEBUG)
    params = write_params(tmp_path / "params.yaml", sh_area_params(tmp_path))
    model = save_tiny_segmentation_model(tmp_path / "model")
    out = tmp_path / "maps"
    area = ",".join(map(str, AREA))
    args = ["predict", "--area", area, "--date", str(DAY), "--params", str(params)]
    args += ["--model", str(model), "--out", str(out), "--tile-size", "64"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = read_acquisition(out / "scene.tif")
    assert info["acquisition"]["product_id"] in " ".join(result.output.split())
    with rasterio.open(out / "classes.tif") as classes, rasterio.open(out / "scene.tif") as scene:
        assert (classes.crs, classes.transform) == (scene.crs, scene.transform)
        labels = classes.read(1)
        cloud = scene.read(scene.count) == MASK_CLOUD  # the mask band comes last
    assert cloud.any() and (labels[cloud] == 255).all() and (labels[~cloud] != 255).all()
    everything = result.output + caplog.text
    everything += "".join(p.read_text() for p in out.glob("*.json"))
    assert CLIENT_SECRET not in everything
