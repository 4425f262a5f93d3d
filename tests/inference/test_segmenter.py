"""Loading a saved model as a :class:`~s2ssl.inference.segmenter.Segmenter`."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.classes import FALLBACK_PALETTE, ClassSet
from s2ssl.inference.segmenter import check_segmenter, model_class_set, segmenter_from_model
from s2ssl.models.downstream import SceneNet, save_model
from s2ssl.models.resnet import ResNetEncoder

BANDS = ("B02", "B03", "B04", "B08")
CLASSES = ("water", "forest", "grassland")


def test_only_segmentation_models_make_maps(tmp_path: Path) -> None:
    net = SceneNet(ResNetEncoder(18, 4), BANDS, CLASSES, [0.1] * 4, [0.1] * 4)
    save_model(net, tmp_path / "scene", {})
    with pytest.raises(ValueError, match="single-date segmentation model"):
        segmenter_from_model(tmp_path / "scene")


def test_saved_model_gives_its_bands_and_classes(tmp_path: Path) -> None:
    from s2ssl.models.downstream import SegmentationNet
    from s2ssl.models.unet import ResNetUNet

    net = SegmentationNet(ResNetUNet(18, 4, 8), BANDS, CLASSES, [0.1] * 4, [0.1] * 4)
    save_model(net, tmp_path / "seg", {})
    seg = segmenter_from_model(tmp_path / "seg", tile_size=64)
    spec = check_segmenter(seg)
    assert spec.bands == BANDS and spec.class_names == CLASSES and spec.tile_size == 64
    assert spec.class_set.names == CLASSES  # no colours recorded: the fallback palette
    assert spec.class_set.colours == FALLBACK_PALETTE[:3]


def test_model_class_set_reads_recorded_colours() -> None:
    recorded = ClassSet.from_names(CLASSES, ("#0000ff", "#00ff00", "#ffff00"))
    arch = {"classes": recorded.to_json(), "class_names": list(CLASSES)}
    assert model_class_set(arch, CLASSES).colours == ("#0000ff", "#00ff00", "#ffff00")
    assert model_class_set({"classes": list(CLASSES)}, CLASSES) == ClassSet.from_names(CLASSES)
    with pytest.raises(ValueError, match="inconsistent"):
        model_class_set(arch, ("forest", "water", "grassland"))
