"""Loading a saved model as a :class:`~s2ssl.inference.segmenter.Segmenter`."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.inference.segmenter import segmenter_from_model
from s2ssl.models.downstream import SceneNet, save_model
from s2ssl.models.resnet import ResNetEncoder

BANDS = ("B02", "B03", "B04", "B08")
CLASSES = ("water", "forest", "grassland")


def test_only_segmentation_models_make_maps(tmp_path: Path) -> None:
    net = SceneNet(ResNetEncoder(18, 4), BANDS, CLASSES, [0.1] * 4, [0.1] * 4)
    save_model(net, tmp_path / "scene", {})
    with pytest.raises(ValueError, match="single-date segmentation model"):
        segmenter_from_model(tmp_path / "scene")
