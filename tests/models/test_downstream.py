"""Downstream networks: shapes, self-contained input scaling, save / load round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2ssl.models.downstream import (
    SceneNet,
    SegmentationNet,
    Standardize,
    TimeSeriesSegmentationNet,
    build_model,
    load_model,
    save_model,
)
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D

BANDS = ("B02", "B03", "B04")
CLASSES = ("a", "b", "c")


def test_standardize_matches_the_formula() -> None:
    x = torch.rand(2, 3, 4, 4)
    norm = Standardize([0.1, 0.2, 0.3], [0.5, 1.0, 2.0])
    expected = (x - torch.tensor([0.1, 0.2, 0.3])[:, None, None]) / torch.tensor([0.5, 1.0, 2.0])[
        :, None, None
    ]
    assert torch.allclose(norm(x), expected)
    with pytest.raises(ValueError, match="std must be > 0"):
        Standardize([0.0], [0.0])


def test_segmentation_net_shapes_and_band_check() -> None:
    net = SegmentationNet(ResNetUNet(18, 3, 8), BANDS, CLASSES, [0.1] * 3, [0.2] * 3)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="takes 3 bands"):
        SegmentationNet(ResNetUNet(18, 3, 8), ("B02",), CLASSES, [0.1], [0.2])


def test_scene_net_features_are_global_pooled() -> None:
    net = SceneNet(ResNetEncoder(18, 3), ("B02", "B03", "B04"), ("a", "b"), [0.0] * 3, [1.0] * 3)
    assert net.features(torch.rand(2, 3, 32, 32)).shape == (2, 512)


@pytest.mark.parametrize("kind", ["segmentation", "scene", "timeseries"])
def test_save_load_round_trip_predicts_identically(tmp_path: Path, kind: str) -> None:
    torch.manual_seed(0)
    if kind == "segmentation":
        net = SegmentationNet(ResNetUNet(18, 3, 8), BANDS, CLASSES, [0.1, 0.2, 0.3], [0.2] * 3)
        inputs: tuple[torch.Tensor, ...] = (torch.rand(2, 3, 32, 32),)
    elif kind == "scene":
        net = SceneNet(ResNetEncoder(18, 3), BANDS, CLASSES, [0.1, 0.2, 0.3], [0.2] * 3)
        inputs = (torch.rand(2, 3, 32, 32),)
    else:
        net = TimeSeriesSegmentationNet(UNet3D(4, 4, 8, 2), BANDS, CLASSES)
        inputs = (torch.rand(2, 4, 3, 8, 8), torch.tensor([[10, 50, 90, 130]] * 2))
    net.eval()
    save_model(net, tmp_path / "m", {"init": "random"})
    loaded, meta = load_model(tmp_path / "m")
    assert meta["init"] == "random"
    assert meta["architecture"] == net.architecture()
    assert type(loaded) is type(net)
    with torch.no_grad():
        assert torch.equal(net(*inputs), loaded(*inputs))


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a fine-tuned model"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model(
            {
                "kind": "scene",
                "bands": ["B02"],
                "classes": ["a", "b"],
                "backbone": {
                    "kind": "unet3d",
                    "in_channels": 2,
                    "timesteps": 4,
                    "out_channels": 2,
                    "features": 1,
                },
            }
        )
