"""`s2ssl predict --area ... --date ...`: fetch one scene through fetch.source, then map it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from typer.testing import CliRunner

from s2ssl.cli import app
from testkit import read_repo_params, save_tiny_segmentation_model, write_params

AREA = "2.0,48.0,2.02,48.015"  # inside the synthetic region north_west


def _output(result: object) -> str:
    return " ".join(str(getattr(result, "output", "")).split())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_segmentation_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.slow
def test_predict_an_area_of_the_synthetic_world(
    tmp_path: Path, tiny_params: Path, model: Path
) -> None:
    out = tmp_path / "maps"
    args = ["predict", "--area", AREA, "--date", "2021-07-01", "--params", str(tiny_params)]
    result = CliRunner().invoke(app, [*args, "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "scene synthetic north_west on 2021-07-01" in _output(result)
    assert {"scene.tif", "scene.json", "classes.tif", "areas.json", "quicklook.png"} <= {
        p.name for p in out.iterdir()
    }
    with rasterio.open(out / "classes.tif") as classes, rasterio.open(out / "scene.tif") as scene:
        assert classes.crs == scene.crs and classes.crs.to_string() == "EPSG:32631"
        assert (classes.transform, classes.shape) == (scene.transform, scene.shape)
        lon0, lat0, lon1, lat1 = transform_bounds(classes.crs, "EPSG:4326", *classes.bounds)
        labels = classes.read(1)
        cloud = np.isin(scene.read(14), [1, 2])
    a, b, c, d = (float(v) for v in AREA.split(","))
    assert lon0 <= a and lat0 <= b and lon1 >= c and lat1 >= d  # the map covers the area
    assert lon1 - lon0 < (c - a) + 0.002 and lat1 - lat0 < (d - b) + 0.002  # and not much more
    assert set(np.unique(labels)) <= {0, 1, 2, 255}
    assert (labels[cloud] == 255).all() and (labels[~cloud] != 255).all()
    areas = json.loads((out / "areas.json").read_text())
    assert areas["input"] == str(out / "scene.tif")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one input"),
        (["scene.tif", "--area", AREA, "--date", "2021-07-01"], "give exactly one input"),
        (["--area", AREA], "--area needs --date YYYY-MM-DD"),
        (["scene.tif", "--date", "2021-07-01"], "--date only go with --area"),
        (["--area", "2.0,48.0,2.02", "--date", "2021-07-01"], "LON_MIN,LAT_MIN,LON_MAX,LAT_MAX"),
        (["--area", AREA, "--date", "1 July 2021"], "YYYY-MM-DD"),
    ],
)
def test_input_errors_name_the_expected_form(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["predict", *args, "--model", "no-such-model"])
    assert result.exit_code == 2
    assert message in _output(result)


@pytest.mark.slow
def test_a_southern_area_and_a_local_source(tmp_path: Path, tiny_params: Path, model: Path) -> None:
    runner = CliRunner()
    south = "-61.00,-34.00,-60.99,-33.99"  # south_pampa; '-' values parse as the option's value
    out = tmp_path / "south"
    fetch = ["--params", str(tiny_params), "--model", str(model)]
    result = runner.invoke(
        app, ["predict", "--area", south, "--date", "2021-01-15", *fetch, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(out / "classes.tif") as classes:
        assert classes.crs.to_string() == "EPSG:32720"
    outside = runner.invoke(
        app,
        [
            "predict",
            "--area",
            "14.5,46.0,14.51,46.01",
            "--date",
            "2021-07-01",
            *fetch,
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert outside.exit_code == 2 and "lies in no region" in _output(outside)
    raw = read_repo_params()
    raw["fetch"]["source"] = "local"
    raw["fetch"]["datasets"] = ["landcover"]
    raw["fetch"]["local"] = {"landcover": {"path": str(tmp_path)}}
    local = write_params(tmp_path / "local.yaml", raw)
    result = runner.invoke(
        app, ["predict", "--area", AREA, "--date", "2021-07-01", "--params", str(local)]
    )
    assert result.exit_code == 2 and "nothing to fetch" in _output(result)
