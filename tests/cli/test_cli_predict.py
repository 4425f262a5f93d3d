"""`s2ssl predict` (s2ssl.cli.predict): a model saved by `s2ssl finetune` or registered in
MLflow maps GeoTIFFs from the CLI; `--area ... --date ...` fetches one scene through
fetch.source, then maps it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.warp import transform_bounds
from typer.testing import CliRunner

from s2ssl.cli import app
from s2ssl.models.downstream import SegmentationNet, save_model
from s2ssl.models.unet import ResNetUNet
from testkit import REPO_PARAMS, read_repo_params, save_tiny_segmentation_model, write_params

BANDS = ("B02", "B03", "B04", "B08")
CLASSES = ("water", "forest", "grassland")


def _saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = SegmentationNet(ResNetUNet(18, 4, 8), BANDS, CLASSES, [0.1] * 4, [0.1] * 4)
    return save_model(net.eval(), tmp_path / "model", {"init": "random"})


@pytest.mark.slow
def test_predict_cli_writes_a_georeferenced_map(
    tmp_path: Path, geotiff: Callable[..., Path], dn_raster: Callable[..., np.ndarray]
) -> None:
    model = _saved(tmp_path)
    src = geotiff(tmp_path / "scene.tif", dn_raster((4, 96, 80)), descriptions=list(BANDS))
    out = tmp_path / "maps"
    result = CliRunner().invoke(
        app, ["predict", str(src), "--model", str(model), "--out", str(out), "--tile-size", "64"]
    )
    assert result.exit_code == 0, result.output
    classes = next(out.rglob("classes*.tif"))
    with rasterio.open(src) as a, rasterio.open(classes) as b:
        assert (b.crs, b.transform, b.width, b.height) == (a.crs, a.transform, a.width, a.height)
        assert set(np.unique(b.read(1))) <= {0, 1, 2, 255}
    areas = json.loads(next(out.rglob("areas.json")).read_text())
    assert areas


def test_predict_cli_names_missing_bands(
    tmp_path: Path, geotiff: Callable[..., Path], dn_raster: Callable[..., np.ndarray]
) -> None:
    model = _saved(tmp_path)
    src = geotiff(tmp_path / "rgb.tif", dn_raster((3, 64, 64)), descriptions=["B02", "B03", "B04"])
    result = CliRunner().invoke(app, ["predict", str(src), "--model", str(model)])
    assert result.exit_code == 2
    assert "rgb.tif lacks band B08 that the model" in _output(result)


def test_predict_cli_takes_the_bands_of_an_unnamed_file(
    tmp_path: Path, geotiff: Callable[..., Path], dn_raster: Callable[..., np.ndarray]
) -> None:
    model = _saved(tmp_path)
    src = geotiff(tmp_path / "four.tif", dn_raster((4, 64, 64)))  # no band descriptions
    args = ["predict", str(src), "--model", str(model), "--out", str(tmp_path / "out")]
    args += ["--tile-size", "64"]
    unnamed = CliRunner().invoke(app, args)
    assert unnamed.exit_code == 2 and "give --bands" in _output(unnamed)
    done = CliRunner().invoke(app, [*args, "--bands", "B08,B04,B03,B02"])
    assert done.exit_code == 0, done.output
    areas = json.loads((tmp_path / "out" / "areas.json").read_text())
    assert areas["model"]["input_bands"] == ["B08", "B04", "B03", "B02"]
    assert areas["model"]["bands"] == list(BANDS)
    bad = CliRunner().invoke(app, [*args, "--bands", "B02,B13"])
    assert bad.exit_code == 2 and "unknown Sentinel-2 band(s) B13" in _output(bad)


@pytest.mark.slow
def test_predict_cli_takes_a_registered_model_uri(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    geotiff: Callable[..., Path],
    dn_raster: Callable[..., np.ndarray],
) -> None:
    import mlflow

    from s2ssl.config import load_params
    from s2ssl.registry.promotion import promote
    from s2ssl.registry.registration import register_model

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    previous = mlflow.get_tracking_uri()
    model = _saved(tmp_path)
    config = load_params(REPO_PARAMS).registry
    register_model(config, "landcover", model, uri=uri)
    src = geotiff(tmp_path / "scene.tif", dn_raster((4, 64, 64)), descriptions=list(BANDS))
    runner = CliRunner()
    missing = runner.invoke(app, ["predict", str(src), "--out", str(tmp_path / "none")])
    assert missing.exit_code == 2  # the default models:/s2ssl-landcover@champion: not promoted yet
    assert "aliases ['challenger']" in " ".join(missing.output.split())
    promote(config, "landcover", uri=uri)
    # a process-wide MLflow URI pointing elsewhere (as MLflow's own default does in a fresh
    # process) must not decide where models:/ URIs resolve: the configured store does
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/decoy/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # (set_tracking_uri exported the decoy)
    maps = {}
    for name, ref in (("registry", "models:/s2ssl-landcover@champion"), ("local", str(model))):
        out = tmp_path / name
        done = runner.invoke(
            app, ["predict", str(src), "--model", ref, "--out", str(out), "--tile-size", "64"]
        )
        assert done.exit_code == 0, done.output
        assert "Downloading artifacts" not in done.output  # MLflow's progress bars stay off
        with rasterio.open(next(out.rglob("classes*.tif"))) as f:
            maps[name] = f.read(1)
    mlflow.set_tracking_uri(previous)
    np.testing.assert_array_equal(maps["registry"], maps["local"])


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
        cloud = np.isin(scene.read(scene.count), [1, 2])  # the quality mask follows the bands
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


def test_every_option_reaches_predict_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from s2ssl.inference import dispatch
    from s2ssl.progress import progress_bar

    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def fake(*args: object, **kwargs: object) -> dispatch.MapsRun:
        calls.append((args, kwargs))
        return dispatch.MapsRun(out_dir=tmp_path, results=(), seconds=1.25)

    monkeypatch.setattr(dispatch, "predict_maps", fake)
    args = ["predict", "--area", AREA, "--date", "2021-07-01", "--params", "p.yaml"]
    args += ["--window-days", "3", "--max-cloud", "0.2", "--closest", "-m", "models:/m@a"]
    args += ["--out", str(tmp_path), "--tile-size", "64", "--overlap", "8", "--batch-size", "2"]
    args += ["--probabilities", "--device", "cpu", "--bands", "l2a"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "0 map(s) in 1.2 s" in _output(result)
    [(positional, kwargs)] = calls
    assert positional == (None,)
    on_scene = kwargs.pop("on_scene")
    assert callable(on_scene)
    assert kwargs == {
        "model": "models:/m@a",
        "out": tmp_path,
        "area": AREA,
        "date": "2021-07-01",
        "params": Path("p.yaml"),
        "window_days": 3.0,
        "max_cloud": 0.2,
        "closest": True,
        "tile_size": 64,
        "overlap": 8,
        "batch_size": 2,
        "probabilities": True,
        "device": "cpu",
        "progress": progress_bar,
        "input_bands": "l2a",
    }
    calls.clear()
    assert CliRunner().invoke(app, ["predict", "scene.tif"]).exit_code == 0
    [(positional, kwargs)] = calls
    assert positional == (Path("scene.tif"),)
    assert kwargs["model"] == "models:/s2ssl-landcover@champion"
    assert (kwargs["out"], kwargs["params"]) == (Path("predictions"), Path("params.yaml"))
    assert (kwargs["tile_size"], kwargs["overlap"], kwargs["batch_size"]) == (256, None, 8)
    assert (kwargs["device"], kwargs["probabilities"], kwargs["closest"]) == ("auto", False, False)
    assert kwargs["input_bands"] is None
