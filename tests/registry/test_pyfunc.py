"""The python_function model: loading by alias in a fresh process, input errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from registrykit import BANDS, CONFIG, LC

from s2ssl.models.downstream import (
    SceneNet,
    SegmentationNet,
    TimeSeriesSegmentationNet,
    load_model,
    save_model,
)
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D
from s2ssl.registry.promotion import promote
from s2ssl.registry.pyfunc import predict_array
from s2ssl.registry.registration import register_model
from s2ssl.registry.versions import CHAMPION

_FRESH = """
import sys
import numpy as np
import mlflow
x_path, model_uri, out_path, *doy_path = sys.argv[1:]
x = np.load(x_path)
inputs = {"x": x, "doy": np.load(doy_path[0])} if doy_path else x
np.save(out_path, mlflow.pyfunc.load_model(model_uri).predict(inputs))
"""


def _predict_fresh(
    tmp_path: Path, model_uri: str, x: np.ndarray, doy: np.ndarray | None = None
) -> np.ndarray:
    """Load ``model_uri`` in a new interpreter (MLFLOW_TRACKING_URI from the env) and predict."""
    np.save(tmp_path / "x.npy", x)
    args = [sys.executable, "-c", _FRESH, str(tmp_path / "x.npy"), model_uri, "out.npy"]
    if doy is not None:
        np.save(tmp_path / "doy.npy", doy)
        args.append(str(tmp_path / "doy.npy"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(tmp_path / "out.npy")


@pytest.mark.parametrize("kind", ["segmentation", "timeseries", "scene"])
@pytest.mark.slow
def test_registered_model_loads_by_alias_in_a_fresh_process_and_predicts_the_same(
    uri: str, tmp_path: Path, kind: str
) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    doy = None
    if kind == "segmentation":
        task, net = (
            "landcover",
            SegmentationNet(ResNetUNet(18, 3, 8), BANDS, LC, [0.1, 0.12, 0.14], [0.05] * 3),
        )
        x = rng.uniform(0.01, 0.3, (2, 3, 32, 96)).astype(np.float32)  # not the example size
    elif kind == "timeseries":
        task, net = "croptype", TimeSeriesSegmentationNet(UNet3D(4, 4, 8, 2), BANDS, LC)
        x = rng.uniform(0.01, 0.3, (2, 4, 3, 8, 8)).astype(np.float32)
        doy = np.array([[10, 50, 90, 130]] * 2, dtype=np.float32)
    else:
        task, net = "scene", SceneNet(ResNetEncoder(18, 3), BANDS, LC, [0.1] * 3, [0.05] * 3)
        x = rng.uniform(0.01, 0.3, (3, 3, 32, 32)).astype(np.float32)
    net.eval()
    model_dir = save_model(net, tmp_path / "model", {"init": "random", "task": task, "test": {}})
    reg = register_model(CONFIG, task, model_dir, uri=uri)
    promote(CONFIG, task, uri=uri)
    out = _predict_fresh(tmp_path, f"models:/s2ssl-{task}@{CHAMPION}", x, doy)
    with torch.inference_mode():
        args = (
            (torch.from_numpy(x),) if doy is None else (torch.from_numpy(x), torch.from_numpy(doy))
        )
        expected = torch.softmax(net(*args), dim=1).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)
    loaded, _ = load_model(model_dir)
    inputs = x if doy is None else {"x": x, "doy": doy}
    np.testing.assert_array_equal(predict_array(loaded, inputs, "labels"), expected.argmax(axis=1))
    assert reg.version == "1"


def test_pyfunc_input_errors_name_the_problem(models: dict[str, Path]) -> None:
    net, _ = load_model(models["a"])
    with pytest.raises(ValueError, match="input has 4 bands, the model takes 3"):
        predict_array(net, np.zeros((1, 4, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        predict_array(net, np.zeros((4, 32, 32), np.float32))
    with pytest.raises(ValueError, match="output must be one of"):
        predict_array(net, np.zeros((1, 3, 32, 32), np.float32), "classes")
