"""s2ssl predict maps with segmentation models only: a multi-label model is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.inference.segmenter import segmenter_from_model
from s2ssl.models.downstream import MultilabelSceneNet, build_model, save_model
from s2ssl.models.resnet import ResNetEncoder


def test_multilabel_model_is_refused_with_its_reason(tmp_path: Path) -> None:
    net = MultilabelSceneNet(ResNetEncoder(18, 3), ["B02", "B03", "B04"], ["a", "b"], [0.1] * 3,
                             [0.1] * 3)  # fmt: skip
    arch = net.architecture()
    assert arch["kind"] == "multilabel"
    assert isinstance(build_model(arch), MultilabelSceneNet)
    save_model(net, tmp_path / "ml", {})
    with pytest.raises(ValueError, match="'multilabel' model: it predicts a set of classes"):
        segmenter_from_model(tmp_path / "ml")
