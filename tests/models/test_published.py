"""Published checkpoints: each known key layout is recognised and re-keyed bit for bit, the load
report says what happened, and anything that leaves an encoder parameter unmatched is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from s2ssl.models.adapt import adapt_first_conv
from s2ssl.models.published import (
    SECO_STANDARDISATION,
    SSL4EO_L1C_BANDS,
    load_published,
)
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.saved import write_saved
from weightkit import seco_checkpoint, ssl4eo_checkpoint, torchvision_state


def _same(encoder: ResNetEncoder, backbone: dict[str, torch.Tensor], skip: str = "") -> None:
    state = encoder.state_dict()
    assert set(state) == set(backbone)
    for name, value in backbone.items():
        if name != skip:
            assert torch.equal(state[name], value), name


@pytest.mark.parametrize(("depth", "mlp"), [(18, True), (50, False)])
def test_ssl4eo_moco_is_recognised_and_its_projection_dropped(
    tmp_path: Path, depth: int, mlp: bool
) -> None:
    checkpoint, backbone = ssl4eo_checkpoint(depth, 13, mlp=mlp)
    path = tmp_path / f"B13_rn{depth}_moco_0099.pth"
    torch.save(checkpoint, path)
    loaded = load_published(path)
    report = loaded.report
    assert report.layout == "ssl4eo_moco" and report.architecture == f"resnet{depth}"
    _same(loaded.encoder, backbone)
    assert loaded.bands == SSL4EO_L1C_BANDS and loaded.bands.index("B8A") == 8
    assert loaded.mean == (0.0,) * 13 and loaded.std == (1.0,) * 13
    assert "DN / 10000" in report.scaling
    assert report.missing == () and report.shape_mismatches == ()
    assert "module.encoder_q.fc" in " ".join(report.unexpected)
    assert report.as_dict()["unexpected"]["module.encoder_k"] > 100
    assert report.matched == tuple(backbone)
    json.dumps(report.as_dict())  # recordable
    assert "ssl4eo_moco (resnet" in report.summary()


def test_seco_is_rekeyed_from_sequential_indices_and_its_rgb_order_permuted(
    tmp_path: Path,
) -> None:
    checkpoint, backbone = seco_checkpoint(18)
    path = tmp_path / "seco_resnet18_1m.ckpt"
    torch.save(checkpoint, path)
    loaded = load_published(path)
    assert loaded.report.layout == "seco"
    assert loaded.bands == ("B02", "B03", "B04")
    conv = loaded.encoder.conv1.weight
    source = backbone["conv1.weight"]  # channels B04, B03, B02
    assert torch.equal(conv[:, 0], source[:, 2]) and torch.equal(conv[:, 2], source[:, 0])
    _same(loaded.encoder, backbone, skip="conv1.weight")
    assert any("permuted" in note for note in loaded.report.notes)
    assert loaded.mean == tuple(SECO_STANDARDISATION[b][0] for b in loaded.bands)
    # red: quantiles 0..129 of reflectance x 255, ImageNet red mean 0.485 / std 0.229
    assert SECO_STANDARDISATION["B04"] == pytest.approx((0.485 * 129 / 255, 0.229 * 129 / 255))
    assert {"heads_q", "encoder_k", "queue"} <= set(loaded.report.as_dict()["unexpected"])


def test_torchgeo_weights_need_their_bands_then_load(tmp_path: Path) -> None:
    state = torchvision_state(50, 13)
    path = tmp_path / "resnet50_ssl4eo_s12_all_moco.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"does not say which bands"):
        load_published(path)
    loaded = load_published(path, bands=list(SSL4EO_L1C_BANDS))
    assert loaded.report.layout == "torchgeo" and "fc.weight" in loaded.report.unexpected
    state.pop("fc.weight"), state.pop("fc.bias")
    _same(loaded.encoder, state)
    path.with_suffix(".json").write_text(
        json.dumps({"bands": list(SSL4EO_L1C_BANDS), "mean": [0.1] * 13, "std": [0.2] * 13})
    )
    sidecar = load_published(path, format="torchgeo")
    assert sidecar.bands == SSL4EO_L1C_BANDS and sidecar.std == (0.2,) * 13


def test_our_own_exports_load_from_both_formats(tmp_path: Path) -> None:
    encoder = ResNetEncoder(18, 3)
    meta = {
        "method": "seco",
        "architecture": {"kind": "resnet", "depth": 18, "in_channels": 3},
        "bands": ["B02", "B03", "B04"],
        "normalization": {"kind": "standardize", "mean": [0.1, 0.2, 0.3], "std": [1.0] * 3},
    }
    write_saved(tmp_path / "enc", encoder.state_dict(), meta, interchange=True)
    for target in (tmp_path / "enc", tmp_path / "enc" / "model.safetensors"):
        loaded = load_published(target)
        assert loaded.report.layout == "s2ssl" and loaded.mean == (0.1, 0.2, 0.3)
        _same(loaded.encoder, encoder.state_dict())
    (tmp_path / "enc" / "model.safetensors").unlink()
    loaded = load_published(tmp_path / "enc" / "weights.pt")
    assert loaded.report.layout == "s2ssl" and loaded.bands == ("B02", "B03", "B04")


def test_a_wrong_prefix_is_refused_naming_the_layouts_tried(tmp_path: Path) -> None:
    state = {f"backbone.{k}": v for k, v in torchvision_state(18, 13).items()}
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(
        ValueError, match=r"no known key layout.*s2ssl, ssl4eo_moco, seco, torchgeo"
    ):
        load_published(path)


def test_a_missing_backbone_parameter_is_refused_by_name(tmp_path: Path) -> None:
    checkpoint, _ = ssl4eo_checkpoint(18, 13)
    del checkpoint["state_dict"]["module.encoder_q.layer4.1.bn2.running_var"]
    path = tmp_path / "partial.pth"
    torch.save(checkpoint, path)
    with pytest.raises(
        ValueError, match=r"1 encoder parameters missing.*layer4\.1\.bn2\.running_var"
    ):
        load_published(path)


def test_a_shape_mismatch_is_refused(tmp_path: Path) -> None:
    checkpoint, _ = seco_checkpoint(18)
    checkpoint["state_dict"]["encoder_q.4.0.conv1.weight"] = torch.zeros(64, 32, 3, 3)
    path = tmp_path / "bad.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight: checkpoint \[64, 32, 3, 3\]"):
        load_published(path)


def test_an_explicit_format_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    checkpoint, _ = ssl4eo_checkpoint(18, 13)
    path = tmp_path / "ssl4eo.pth"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"layouts tried: seco\)"):
        load_published(path, format="seco")
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        load_published(path, format="mae")
    with pytest.raises(ValueError, match="do not exist"):
        load_published(tmp_path / "absent.pth")


def test_adapting_the_first_convolution_follows_the_documented_rule(tmp_path: Path) -> None:
    checkpoint, _ = seco_checkpoint(18)
    path = tmp_path / "seco.ckpt"
    torch.save(checkpoint, path)
    loaded = load_published(path)
    bands = ("B02", "B03", "B04", "B08")
    adapted = adapt_first_conv(loaded, bands, {"B08": 0.3}, {"B08": 0.1})
    old = loaded.encoder.conv1.weight.detach()
    new = adapted.encoder.conv1.weight.detach()
    assert new.shape == (64, 4, 7, 7)
    assert torch.allclose(new[:, :3], old * 3 / 4)
    assert torch.allclose(new[:, 3], old.mean(dim=1) * 3 / 4)
    assert adapted.mean[:3] == loaded.mean and adapted.mean[3] == 0.3 and adapted.std[3] == 0.1
    assert torch.equal(
        adapted.encoder.layer1[0].conv1.weight, loaded.encoder.layer1[0].conv1.weight
    )
    detail = adapted.report.as_dict()["adapted"]
    assert detail["new"] == ["B08"] and detail["scale"] == 0.75 and detail["dropped"] == []
    with pytest.raises(ValueError, match="no band in common"):
        adapt_first_conv(loaded, ("B11",), {"B11": 0.1}, {"B11": 0.1})
    with pytest.raises(ValueError, match="no standardisation statistics"):
        adapt_first_conv(loaded, bands, {}, {})
