"""Exported encoders also hold ``model.safetensors`` under timm / torchvision ResNet names and a
``config.json``: the names and shapes equal the published architecture's (fixtures/)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import s2ssl
from s2ssl.models.interchange import (
    CONFIG_FILE,
    SAFETENSORS_FILE,
    UNET3D_ARCHITECTURE,
    interchange_weights,
    read_interchange,
    tensor_shapes,
)
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.saved import write_saved
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D
from s2ssl.ssl.pretrain import export_encoder
from weightkit import reference_shapes

RGB = ["B02", "B03", "B04"]


def _meta(arch: dict, bands: list[str], method: str = "seco") -> dict:
    return {
        "method": method,
        "architecture": arch,
        "bands": bands,
        "normalization": {
            "kind": "standardize",
            "mean": [0.1] * len(bands),
            "std": [0.05] * len(bands),
        },
        "data_fingerprint": {"landcover": "abc123"},
    }


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_export_has_timm_names_and_shapes(tmp_path: Path, depth: int) -> None:
    encoder = ResNetEncoder(depth, 3)
    arch = {"kind": "resnet", "depth": depth, "in_channels": 3}
    write_saved(tmp_path / "enc", encoder.state_dict(), _meta(arch, RGB), interchange=True)

    tensors = load_file(str(tmp_path / "enc" / SAFETENSORS_FILE))
    reference = reference_shapes(depth)
    assert set(tensors) == set(reference)
    assert tensor_shapes(tensors) == reference
    assert tensors["bn1.num_batches_tracked"].dtype == torch.int64  # a BatchNorm buffer
    for name, value in encoder.state_dict().items():
        assert torch.equal(tensors[name], value)  # bit for bit

    config = json.loads((tmp_path / "enc" / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["architecture"] == f"resnet{depth}" and config["in_chans"] == 3
    assert config["num_classes"] == 0 and config["bands"] == RGB
    assert config["normalization"]["mean"] == [0.1] * 3
    assert config["input_scaling"]["dn_divisor"] == 10000
    assert config["method"] == "seco" and config["s2ssl_version"] == s2ssl.__version__
    assert config["data_fingerprint"] == {"landcover": "abc123"}
    assert f'timm.create_model("resnet{depth}", in_chans=3' in config["load_with"]


def test_unet_export_writes_its_resnet_encoder_under_timm_names(tmp_path: Path) -> None:
    unet = ResNetUNet(18, 12, 8)
    arch = {"kind": "unet", "depth": 18, "in_channels": 12, "out_channels": 8}
    bands = [f"B{i:02d}" for i in range(1, 13)]
    write_saved(tmp_path / "enc", unet.state_dict(), _meta(arch, bands, "dense"), interchange=True)
    tensors, config = read_interchange(tmp_path / "enc")
    assert tensor_shapes(tensors) == reference_shapes(18, in_chans=12)
    assert torch.equal(tensors["layer4.1.bn2.running_var"], unet.encoder.layer4[1].bn2.running_var)
    assert config["architecture"] == "resnet18" and config["in_chans"] == 12
    assert "decoder" in config["exported"] and config["method"] == "dense"


def test_unet3d_export_keeps_its_own_names(tmp_path: Path) -> None:
    net = UNet3D(13, 4, 8, 2)
    arch = {"kind": "unet3d", "in_channels": 13, "timesteps": 4, "out_channels": 8, "features": 2}
    write_saved(tmp_path / "enc", net.state_dict(), _meta(arch, RGB, "cscl"), interchange=True)
    tensors, config = read_interchange(tmp_path / "enc")
    assert set(tensors) == set(net.state_dict())
    assert config["architecture"] == UNET3D_ARCHITECTURE and "load_with" not in config


def test_unknown_kind_and_empty_unet_are_refused() -> None:
    with pytest.raises(ValueError, match="expected resnet, unet or unet3d"):
        interchange_weights({}, {"kind": "vit"})
    with pytest.raises(ValueError, match="no 'encoder"):
        interchange_weights({"decoder.0.weight": torch.zeros(1)}, {"kind": "unet", "depth": 18})


def test_read_interchange_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model\.safetensors and config\.json"):
        read_interchange(tmp_path)


def test_pretraining_export_writes_both_formats(tmp_path: Path) -> None:
    encoder = ResNetEncoder(18, 3)
    task = SimpleNamespace(
        method="seco",
        bands=RGB,
        norm_stats_json={},
        encoder_module=lambda: encoder,
        architecture=lambda: {"kind": "resnet", "depth": 18, "in_channels": 3, "bands": RGB},
        normalization=lambda: {"kind": "standardize", "mean": [0.0] * 3, "std": [1.0] * 3},
    )
    export_encoder(task, tmp_path / "enc", {"data_fingerprint": {"landcover": "f00"}})
    names = {p.name for p in (tmp_path / "enc").iterdir()}
    assert {"weights.pt", "meta.json", SAFETENSORS_FILE, CONFIG_FILE} <= names
    _, config = read_interchange(tmp_path / "enc")
    assert config["data_fingerprint"] == {"landcover": "f00"}
