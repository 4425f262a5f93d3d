"""`s2ssl predict` on a model saved by `s2ssl finetune`: a georeferenced map from the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from s2ssl.cli import app
from s2ssl.finetune.models import SceneNet, SegmentationNet, save_model
from s2ssl.inference.segmenter import segmenter_from_model
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet

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
    assert "B08" in result.output


def test_only_segmentation_models_make_maps(tmp_path: Path) -> None:
    net = SceneNet(ResNetEncoder(18, 4), BANDS, CLASSES, [0.1] * 4, [0.1] * 4)
    save_model(net, tmp_path / "scene", {})
    with pytest.raises(ValueError, match="single-date segmentation model"):
        segmenter_from_model(tmp_path / "scene")


@pytest.mark.slow
def test_predict_cli_takes_a_registered_model_uri(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    geotiff: Callable[..., Path],
    dn_raster: Callable[..., np.ndarray],
) -> None:
    import mlflow

    from s2ssl.config import RegisterConfig
    from s2ssl.tracking.registry import promote, register_model

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    previous = mlflow.get_tracking_uri()
    model = _saved(tmp_path)
    register_model(RegisterConfig(), "landcover", model, uri=uri)
    src = geotiff(tmp_path / "scene.tif", dn_raster((4, 64, 64)), descriptions=list(BANDS))
    runner = CliRunner()
    missing = runner.invoke(app, ["predict", str(src), "--out", str(tmp_path / "none")])
    assert missing.exit_code == 2  # the default models:/s2ssl-landcover@champion: not promoted yet
    assert "aliases ['challenger']" in " ".join(missing.output.split())
    promote(RegisterConfig(), "landcover", uri=uri)
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
        with rasterio.open(next(out.rglob("classes*.tif"))) as f:
            maps[name] = f.read(1)
    mlflow.set_tracking_uri(previous)
    np.testing.assert_array_equal(maps["registry"], maps["local"])
