"""predict_maps: the input decides the prediction (GeoTIFF, folder, store dataset, area), the
model is resolved after every cheap check, errors name what to give instead."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import rasterio

from s2ssl.bands import BAND_NAMES
from s2ssl.data.store import write_dataset
from s2ssl.inference import dispatch
from s2ssl.inference.dispatch import DEFAULT_MODEL, MapsRun, predict_maps
from testkit import read_repo_params, save_tiny_segmentation_model, write_params

BANDS = ("B02", "B03", "B04", "B08")
AREA = "2.0,48.0,2.02,48.015"  # inside the synthetic region north_west


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_segmentation_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the model is resolved (the checks before it must refuse first)."""

    def refuse(model: str) -> None:
        raise AssertionError(f"the model {model!r} was resolved")

    monkeypatch.setattr(dispatch, "resolve_model", refuse)


def test_the_default_model_is_the_registered_champion() -> None:
    assert DEFAULT_MODEL == "models:/s2ssl-landcover@champion"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one input: SOURCE"),
        ({"source": Path("scene.tif"), "area": AREA, "date": "2021-07-01"}, "exactly one input"),
        ({"area": AREA}, "--area needs --date YYYY-MM-DD"),
        ({"source": Path("scene.tif"), "date": "2021-07-01"}, "--date only go with --area"),
        (
            {"source": Path("s.tif"), "window_days": 3.0, "max_cloud": 0.2, "closest": True},
            "--window-days, --max-cloud, --closest only go with --area",
        ),
        ({"area": "2.0,48.0,2.02", "date": "2021-07-01"}, "LON_MIN,LAT_MIN,LON_MAX,LAT_MAX"),
        ({"area": AREA, "date": "1 July 2021"}, "is not a calendar date YYYY-MM-DD"),
        (
            {"area": AREA, "date": "2021-07-01", "params": Path("absent.yaml")},
            "params file not found",
        ),
        ({"source": Path("s.tif"), "input_bands": "B02,B13"}, "unknown Sentinel-2 band"),
        (
            {"area": AREA, "date": "2021-07-01", "input_bands": "l2a"},
            "a fetched --area scene names its own bands",
        ),
    ],
)
def test_input_errors_come_before_the_model(
    kwargs: dict[str, Any], message: str, no_model: None, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        predict_maps(model="no-such-model", out=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_local_fetch_source_cannot_fetch_an_area(no_model: None, tmp_path: Path) -> None:
    raw = read_repo_params()
    raw["fetch"]["source"] = "local"
    raw["fetch"]["datasets"] = ["landcover"]
    raw["fetch"]["local"] = {"landcover": {"path": str(tmp_path)}}
    local = write_params(tmp_path / "local.yaml", raw)
    with pytest.raises(ValueError, match="nothing to fetch for an area"):
        predict_maps(area=AREA, date="2021-07-01", params=local, out=tmp_path / "out")


def test_an_unknown_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'no-such-model' is neither an MLflow model URI"):
        predict_maps(tmp_path / "scene.tif", model="no-such-model", out=tmp_path / "out")


def test_a_geotiff_gives_one_map(
    model: Path,
    tmp_path: Path,
    geotiff: Callable[..., Path],
    dn_raster: Callable[..., np.ndarray],
) -> None:
    src = geotiff(tmp_path / "scene.tif", dn_raster((4, 64, 80)), descriptions=list(BANDS))
    out = tmp_path / "maps"
    run = predict_maps(src, model=str(model), out=out, tile_size=64, device="cpu")
    assert isinstance(run, MapsRun)
    assert (run.out_dir, run.n_maps, run.scene) == (out, 1, None)
    assert run.results[0].classes_path == out / "classes.tif"
    assert run.seconds == run.results[0].seconds
    assert {"classes.tif", "areas.json", "quicklook.png"} <= {p.name for p in out.iterdir()}
    with rasterio.open(src) as a, rasterio.open(out / "classes.tif") as b:
        assert (b.crs, b.transform, b.shape) == (a.crs, a.transform, a.shape)


def test_a_folder_gives_one_map_per_geotiff(
    model: Path,
    tmp_path: Path,
    geotiff: Callable[..., Path],
    dn_raster: Callable[..., np.ndarray],
) -> None:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i, name in enumerate(("a", "b")):
        geotiff(folder / f"{name}.tif", dn_raster((4, 40, 48), seed=i), descriptions=list(BANDS))
    out = tmp_path / "maps"
    run = predict_maps(folder, model=str(model), out=out, tile_size=64, probabilities=True)
    assert [r.classes_path for r in run.results] == [
        out / "a" / "classes.tif",
        out / "b" / "classes.tif",
    ]
    assert all(r.probabilities_path is not None for r in run.results)
    assert run.seconds == pytest.approx(sum(r.seconds for r in run.results))


def test_a_store_dataset_gives_one_map_per_sample(
    model: Path, tmp_path: Path, dn_raster: Callable[..., np.ndarray]
) -> None:
    n, h, w = 2, 40, 48
    image = np.stack([dn_raster((13, h, w), seed=i)[None] for i in range(n)])
    index = pd.DataFrame(
        {
            "sample_id": ["s-0", "s-1"],
            "crs": ["EPSG:32633"] * n,
            "transform": [[10.0, 0.0, 300_000.0 + 1000 * i, 0.0, -10.0, 5e6] for i in range(n)],
        }
    )
    attrs = {"bands": list(BAND_NAMES)}
    path = write_dataset(tmp_path / "ds", {"image": image}, index, attrs=attrs)
    out = tmp_path / "maps"
    run = predict_maps(path, model=str(model), out=out, tile_size=64)
    assert [r.classes_path.name for r in run.results] == ["s-0.tif", "s-1.tif"]
    assert set(json.loads((out / "areas.json").read_text())["samples"]) == {"s-0", "s-1"}
    assert run.seconds >= sum(r.seconds for r in run.results)
    with pytest.raises(ValueError, match="records its own bands: drop --bands"):
        predict_maps(path, model="no-such-model", out=tmp_path / "x", input_bands="l1c")


def test_an_area_is_fetched_then_mapped(model: Path, tmp_path: Path, tiny_params: Path) -> None:
    seen: list[tuple[dict[str, Any], Path]] = []
    out = tmp_path / "maps"
    run = predict_maps(
        area=AREA,
        date="2021-07-01",
        params=tiny_params,
        model=str(model),
        out=out,
        on_scene=lambda info, scene: seen.append((info, scene)),
    )
    assert run.scene == out / "scene.tif" and run.n_maps == 1
    assert [scene for _, scene in seen] == [out / "scene.tif"]
    info = seen[0][0]
    assert info["source"] == "synthetic" and info["acquisition"]["region"] == "north_west"
    assert run.results[0].areas["input"] == str(out / "scene.tif")


def test_a_time_series_model_is_refused_before_the_fetch(
    model: Path, tmp_path: Path, tiny_params: Path, monkeypatch: pytest.MonkeyPatch, make_tiny
) -> None:
    class Series(make_tiny):
        n_dates = 3

    monkeypatch.setattr(dispatch, "segmenter_from_model", lambda path, tile: Series())
    out = tmp_path / "maps"
    with pytest.raises(ValueError, match="time-series model but --area fetches one date"):
        predict_maps(area=AREA, date="2021-07-01", params=tiny_params, model=str(model), out=out)
    assert not (out / "scene.tif").exists()
