"""ResNetEncoder: torchvision-identical sizes and names, shapes, init, input checks, formats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from s2ssl.models.resnet import ResNetEncoder

# torchvision resnet18 / resnet50 parameter counts (11,689,512 / 25,557,032) minus fc (512*1000+1000
# / 2048*1000+1000).
TV_PARAMS_NO_FC = {18: 11_689_512 - 513_000, 50: 25_557_032 - 2_049_000}
# state_dict entries: stem 6 (conv1 + 5 BN tensors); BasicBlock 12 / Bottleneck 18 per block;
# 6 per downsample (3 in resnet18, 4 in resnet50).
TV_KEYS_NO_FC = {18: 6 + 8 * 12 + 3 * 6, 50: 6 + 16 * 18 + 4 * 6}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_encoder(depth: int, in_channels: int) -> ResNetEncoder:
    """Built on the meta device: sizes without the cost of allocating and initialising weights."""
    with torch.device("meta"):
        return ResNetEncoder(depth=depth, in_channels=in_channels)


@pytest.mark.parametrize("depth", [18, 50])
def test_parameter_count_matches_torchvision_without_fc(depth: int) -> None:
    assert TV_PARAMS_NO_FC == {18: 11_176_512, 50: 23_508_032}
    enc3 = meta_encoder(depth, 3)
    assert n_params(enc3) == TV_PARAMS_NO_FC[depth]
    enc13 = meta_encoder(depth, 13)
    assert n_params(enc13) - n_params(enc3) == (13 - 3) * 64 * 7 * 7
    # only conv1 differs between the 3- and 13-band encoders
    shapes3 = {k: v.shape for k, v in enc3.state_dict().items()}
    shapes13 = {k: v.shape for k, v in enc13.state_dict().items()}
    assert shapes3.keys() == shapes13.keys()
    assert [k for k in shapes3 if shapes3[k] != shapes13[k]] == ["conv1.weight"]
    assert shapes13["conv1.weight"] == (64, 13, 7, 7)


@pytest.mark.parametrize("depth", [18, 50])
def test_state_dict_names_are_torchvision_names(depth: int) -> None:
    sd = meta_encoder(depth, 3).state_dict()
    assert len(sd) == TV_KEYS_NO_FC[depth] == {18: 120, 50: 318}[depth]
    assert not any(k.startswith("fc.") for k in sd)
    for key in (
        "conv1.weight",
        "bn1.weight",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer1.0.bn1.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.conv2.weight",
    ):
        assert key in sd, key
    if depth == 18:
        assert "layer1.0.downsample.0.weight" not in sd  # 64 -> 64, stride 1: identity shortcut
        assert sd["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    else:
        assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
        assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
        assert sd["layer3.5.bn3.weight"].shape == (1024,)


def test_bottleneck_strides_in_the_3x3_conv_v1_5() -> None:
    enc = meta_encoder(50, 3)
    first = enc.layer2[0]
    assert first.conv1.stride == (1, 1)
    assert first.conv2.stride == (2, 2)
    assert first.downsample[0].stride == (2, 2)


def test_attributes() -> None:
    enc18, enc50 = meta_encoder(18, 4), meta_encoder(50, 13)
    assert (enc18.out_dim, enc50.out_dim) == (512, 2048)
    assert enc18.in_channels == 4
    assert enc18.feature_channels == (64, 64, 128, 256, 512)
    assert enc50.feature_channels == (64, 256, 512, 1024, 2048)
    assert enc18.feature_strides == enc50.feature_strides == (2, 4, 8, 16, 32)


@pytest.mark.parametrize(("depth", "in_channels"), [(18, 3), (18, 13), (50, 4)])
def test_forward_and_feature_shapes(depth: int, in_channels: int) -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=depth, in_channels=in_channels).eval()
    x = torch.randn(2, in_channels, 64, 64)
    with torch.no_grad():
        pooled = enc(x)
        feats = enc.forward_features(x)
    assert pooled.shape == (2, enc.out_dim)
    assert len(feats) == 5
    for f, ch, stride in zip(feats, enc.feature_channels, enc.feature_strides, strict=True):
        assert f.shape == (2, ch, 64 // stride, 64 // stride)
    # the pooled feature is the spatial mean of layer4
    torch.testing.assert_close(pooled, feats[-1].mean(dim=(2, 3)))
    # the stem map is post-ReLU
    assert feats[0].min() >= 0


def test_kaiming_fan_out_and_batchnorm_init() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=18, in_channels=13)
    w = enc.layer4[1].conv2.weight  # fan_out = 512 * 3 * 3
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / (512 * 9)), rel=0.02)
    w1 = enc.conv1.weight  # fan_out = 64 * 7 * 7, independent of the band count
    assert w1.std().item() == pytest.approx(math.sqrt(2.0 / (64 * 49)), rel=0.05)
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1)
            assert torch.all(m.bias == 0)


def test_zero_init_residual_makes_blocks_identity() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=18, in_channels=3, zero_init_residual=True).eval()
    for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4):
        for block in layer:
            assert torch.all(block.bn2.weight == 0)
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():  # layer1.0 has an identity shortcut: block(x) == relu(x)
        torch.testing.assert_close(enc.layer1[0](x), torch.relu(x))
    assert torch.all(ResNetEncoder(depth=18, in_channels=3).layer1[0].bn2.weight == 1)


def test_zero_init_residual_bottleneck() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=50, in_channels=3, zero_init_residual=True).eval()
    for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4):
        for block in layer:
            assert torch.all(block.bn3.weight == 0)
            assert torch.all(block.bn2.weight == 1)
    x = torch.randn(1, 256, 4, 4)
    with torch.no_grad():  # layer1.1: 256 -> 256, identity shortcut
        torch.testing.assert_close(enc.layer1[1](x), torch.relu(x))


def test_wrong_channel_count_raises() -> None:
    enc = ResNetEncoder(depth=18, in_channels=13)
    with pytest.raises(ValueError, match=r"expects 13 channels .* got 3"):
        enc(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expects 13 channels .* got 4"):
        enc.forward_features(torch.randn(1, 4, 32, 32))


def test_wrong_ndim_raises() -> None:
    enc = ResNetEncoder(depth=18, in_channels=3)
    with pytest.raises(ValueError, match=r"4-D tensor of shape \[N, C, H, W\], got a 3-D"):
        enc(torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        enc(np.zeros((1, 3, 32, 32), dtype=np.float32))


@pytest.mark.parametrize("depth", [34, 101, 0, True])
def test_unsupported_depth_raises(depth: int) -> None:
    with pytest.raises(ValueError, match=r"depth must be one of \(18, 50\)"):
        ResNetEncoder(depth=depth)


def test_bad_in_channels_raises() -> None:
    with pytest.raises(ValueError, match="in_channels must be >= 1, got 0"):
        ResNetEncoder(in_channels=0)
    with pytest.raises(TypeError, match="in_channels must be an int"):
        ResNetEncoder(in_channels=3.0)  # type: ignore[arg-type]


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=18, in_channels=13).eval()
    x = torch.randn(2, 13, 64, 64)
    with torch.no_grad():
        ref = enc(x)
        ref_feats = enc.forward_features(x)
        enc_cl = enc.to(memory_format=torch.channels_last)
        out = enc_cl(x.to(memory_format=torch.channels_last))
        feats = enc_cl.forward_features(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(feats, ref_feats, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_autocast_bfloat16() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=18, in_channels=4).eval()
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        ref = enc(x)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out = enc(x)
    assert out.shape == (2, 512)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(out.float(), ref, rtol=0.1, atol=0.1)


def test_training_step_updates_running_stats_and_gets_gradients() -> None:
    torch.manual_seed(0)
    enc = ResNetEncoder(depth=18, in_channels=2).train()
    enc(torch.randn(2, 2, 32, 32)).sum().backward()
    assert enc.conv1.weight.grad is not None
    assert enc.conv1.weight.grad.abs().sum() > 0
    assert enc.bn1.num_batches_tracked.item() == 1
