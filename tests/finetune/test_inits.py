"""Initialising downstream networks: pre-trained weights arrive bit for bit; clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import ClassSet
from s2ssl.config import Params, load_params
from s2ssl.data.stats import NormStats
from s2ssl.finetune.data import TaskData, TaskSplit
from s2ssl.finetune.inits import initial_model
from s2ssl.models.downstream import SceneNet, SegmentationNet, TimeSeriesSegmentationNet
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D
from s2ssl.synthetic_vocabulary import CROP_CLASSES, LANDCOVER_CLASSES
from testkit import REPO_PARAMS

N_BANDS = len(BAND_NAMES)


def _params() -> Params:
    return load_params(REPO_PARAMS)


def _split(n: int, t: int, size: int, labels: int) -> TaskSplit:
    g = torch.Generator().manual_seed(0)
    return TaskSplit(
        image=torch.randint(0, 3000, (n, t, N_BANDS, size, size), generator=g).to(torch.int16),
        doy=torch.arange(t).repeat(n, 1) * 10 + 60,
        label=torch.randint(0, labels, (n, size, size), generator=g),
        ids=tuple(f"s{i}" for i in range(n)),
        strata=np.zeros(n, np.int64),
        bands=tuple(BAND_NAMES),
    )


def _data(task: str, t: int = 1, size: int = 32) -> TaskData:
    classes = CROP_CLASSES if task == "croptype" else LANDCOVER_CLASSES
    split = _split(4, t, size, len(classes))
    stats = NormStats(
        bands=tuple(BAND_NAMES),
        mean=tuple(0.1 + 0.01 * i for i in range(N_BANDS)),
        std=tuple(0.05 + 0.001 * i for i in range(N_BANDS)),
        quantiles=(0.02, 0.98),
        low=(0.0,) * N_BANDS,
        high=(0.5,) * N_BANDS,
        n_pixels=100,
    )
    class_set = ClassSet.from_names(classes)
    return TaskData(task, "in_domain", class_set, split, split, split, stats, {}, Path("x"))


def _export(
    root: Path,
    method: str,
    module: nn.Module,
    architecture: dict[str, Any],
    bands: list[str],
    unit: str = "r0",
) -> Path:
    """Write an encoder the way ``s2ssl.ssl.pretrain.export_encoder`` does."""
    folder = root / method / "encoders" / unit
    folder.mkdir(parents=True)
    torch.save(module.state_dict(), folder / "weights.pt")
    meta = {
        "method": method,
        "architecture": architecture,
        "bands": bands,
        "normalization": {
            "kind": "standardize",
            "mean": [0.2] * len(bands),
            "std": [0.1] * len(bands),
        },
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def _randomised(module: nn.Module) -> nn.Module:
    """Give every parameter and buffer non-default values (so a copy is recognisable)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
            t.copy_(torch.randn(t.shape, generator=g))
    return module


def _assert_identical(source: nn.Module, target: nn.Module) -> None:
    src, dst = source.state_dict(), target.state_dict()
    assert src.keys() == dst.keys()
    for key, value in src.items():
        assert torch.equal(value, dst[key]), key


def test_seco_resnet_initialises_the_unet_encoder_bit_identically(tmp_path: Path) -> None:
    encoder = _randomised(ResNetEncoder(18, N_BANDS))
    arch = {"kind": "resnet", "depth": 18, "in_channels": N_BANDS, "bands": list(BAND_NAMES)}
    _export(tmp_path, "seco", encoder, arch, list(BAND_NAMES))
    model, info = initial_model("landcover", "seco", _params(), _data("landcover"), tmp_path)
    assert isinstance(model, SegmentationNet)
    _assert_identical(encoder, model.backbone.encoder)
    # the transferred keys are exactly the encoder's, under the model's prefix
    assert set(info.transferred) == {f"backbone.encoder.{k}" for k in encoder.state_dict()}
    assert info.encoder_sha256 is not None and len(info.encoder_sha256) == 64
    # the input standardisation is the encoder's (pre-training statistics), not the task's
    assert torch.allclose(model.normalize.mean, torch.full((N_BANDS,), 0.2))
    assert model.classifier.out_channels == len(LANDCOVER_CLASSES)


def test_dense_unet_initialises_the_whole_unet(tmp_path: Path) -> None:
    unet = _randomised(ResNetUNet(18, N_BANDS, 16))
    arch = {
        "kind": "unet",
        "depth": 18,
        "in_channels": N_BANDS,
        "out_channels": 16,
        "decoder_channels": list(unet.decoder_channels),
    }
    _export(tmp_path, "dense", unet, arch, list(BAND_NAMES))
    model, info = initial_model("landcover", "dense", _params(), _data("landcover"), tmp_path)
    _assert_identical(unet, model.backbone)
    assert len(info.transferred) == len(unet.state_dict())
    assert model.classifier.in_channels == 16  # a fresh 1x1 classifier on the U-Net output


def test_scene_takes_the_resnet_or_the_unets_encoder(tmp_path: Path) -> None:
    unet = _randomised(ResNetUNet(18, 3, 8))
    arch = {
        "kind": "unet",
        "depth": 18,
        "in_channels": 3,
        "out_channels": 8,
        "decoder_channels": list(unet.decoder_channels),
    }
    _export(tmp_path, "dense", unet, arch, ["B04", "B03", "B02"])
    model, _ = initial_model("scene", "dense", _params(), _data("scene"), tmp_path)
    assert isinstance(model, SceneNet)
    assert model.bands == ("B04", "B03", "B02")  # an RGB encoder brings its bands
    _assert_identical(unet.encoder, model.encoder)


def test_cscl_stage2_reloads_the_3d_unet_with_a_fresh_classifier(tmp_path: Path) -> None:
    backbone = _randomised(UNet3D(N_BANDS + 1, 4, 8, 2))
    arch = {
        "kind": "unet3d",
        "in_channels": N_BANDS + 1,
        "timesteps": 4,
        "out_channels": 8,
        "features": 2,
    }
    folder = _export(tmp_path, "cscl", backbone, arch, list(BAND_NAMES))
    meta = json.loads((folder / "meta.json").read_text())
    meta["normalization"] = {"kind": "reflectance_doy"}
    (folder / "meta.json").write_text(json.dumps(meta))
    model, info = initial_model(
        "croptype", "cscl", _params(), _data("croptype", t=4, size=8), tmp_path
    )
    assert isinstance(model, TimeSeriesSegmentationNet)
    _assert_identical(backbone, model.backbone)
    assert model.classifier.out_channels == len(CROP_CLASSES)
    assert all(k.startswith("backbone.") for k in info.transferred)


def test_random_init_uses_the_task_bands_and_statistics(tmp_path: Path) -> None:
    data = _data("landcover")
    params = _params()
    model, info = initial_model("landcover", "random", params, data, tmp_path)
    assert info.encoder is None and info.transferred == ()
    assert model.bands == params.band_names
    assert "B10" not in model.bands  # the repository's params: bands l2a
    expected = data.norm_stats.select(params.band_names).mean
    assert torch.allclose(model.normalize.mean, torch.tensor(expected))


def test_missing_encoder_says_which_stage_to_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dvc repro pretrain@moco"):
        initial_model("landcover", "moco", _params(), _data("landcover"), tmp_path)


def test_time_series_encoder_cannot_initialise_single_date_tasks(tmp_path: Path) -> None:
    backbone = UNet3D(N_BANDS + 1, 4, 8, 2)
    arch = {
        "kind": "unet3d",
        "in_channels": N_BANDS + 1,
        "timesteps": 4,
        "out_channels": 8,
        "features": 2,
    }
    _export(tmp_path, "cscl", backbone, arch, list(BAND_NAMES))
    with pytest.raises(ValueError, match=r"pretrain.cscl.labels: landcover"):
        initial_model("landcover", "cscl", _params(), _data("landcover"), tmp_path)


def test_wrong_number_of_dates_is_refused(tmp_path: Path) -> None:
    backbone = UNet3D(N_BANDS + 1, 8, 8, 2)
    arch = {
        "kind": "unet3d",
        "in_channels": N_BANDS + 1,
        "timesteps": 8,
        "out_channels": 8,
        "features": 2,
    }
    _export(tmp_path, "cscl", backbone, arch, list(BAND_NAMES))
    with pytest.raises(ValueError, match=r"takes 8 dates, fine-tuning 4"):
        initial_model("croptype", "cscl", _params(), _data("croptype", t=4, size=8), tmp_path)
