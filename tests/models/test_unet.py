"""ResNetUNet: full-resolution output, input checks, encoder loading, gradient flow."""

from __future__ import annotations

import pytest
import torch

from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet

SMALL_DECODER = (32, 16, 16, 8, 8)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (96, 96), (64, 96)])
def test_output_is_full_resolution(h: int, w: int) -> None:
    torch.manual_seed(0)
    unet = ResNetUNet(depth=18, in_channels=13, out_channels=7, decoder_channels=SMALL_DECODER)
    unet.eval()
    with torch.no_grad():
        out = unet(torch.randn(2, 13, h, w))
    assert out.shape == (2, 7, h, w)
    assert unet.out_channels == 7


def test_default_configuration_and_depth_50() -> None:
    torch.manual_seed(0)
    unet = ResNetUNet().eval()
    assert unet.out_channels == 128
    assert unet.encoder.in_channels == 13
    assert unet.decoder_channels == (256, 128, 64, 32, 16)
    # decoder input widths: layer4 + layer3, then + layer2, + layer1, + stem, then no skip
    assert [b.conv1[0].in_channels for b in unet.decoder] == [
        512 + 256,
        256 + 128,
        128 + 64,
        64 + 64,
        32,
    ]
    assert unet.final.kernel_size == (1, 1)
    assert unet.final.bias is not None
    with torch.no_grad():
        assert unet(torch.randn(1, 13, 32, 32)).shape == (1, 128, 32, 32)
    unet50 = ResNetUNet(depth=50, in_channels=3, out_channels=4, decoder_channels=SMALL_DECODER)
    assert unet50.decoder[0].conv1[0].in_channels == 2048 + 1024
    with torch.no_grad():
        assert unet50.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4, 32, 32)


@pytest.mark.parametrize(("h", "w"), [(40, 40), (64, 48), (33, 64)])
def test_size_not_divisible_by_32_raises(h: int, w: int) -> None:
    unet = ResNetUNet(depth=18, in_channels=3, out_channels=4, decoder_channels=SMALL_DECODER)
    with pytest.raises(ValueError, match=rf"divisible by 32.*got H={h}, W={w}"):
        unet(torch.randn(1, 3, h, w))


def test_wrong_channels_or_ndim_raises() -> None:
    unet = ResNetUNet(depth=18, in_channels=13, out_channels=4, decoder_channels=SMALL_DECODER)
    with pytest.raises(ValueError, match=r"expects 13 channels .* got 12"):
        unet(torch.randn(1, 12, 32, 32))
    with pytest.raises(ValueError, match=r"4-D tensor .* got a 5-D"):
        unet(torch.randn(1, 2, 13, 32, 32))


def test_bad_decoder_channels_raise() -> None:
    with pytest.raises(ValueError, match="decoder_channels must have 5 entries"):
        ResNetUNet(decoder_channels=(64, 32, 16, 8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"decoder_channels\[2\] must be >= 1"):
        ResNetUNet(decoder_channels=(64, 32, 0, 8, 8))
    with pytest.raises(ValueError, match="depth must be one of"):
        ResNetUNet(depth=34)


def test_state_dict_keys_are_encoder_plus_decoder() -> None:
    unet = ResNetUNet(depth=18, in_channels=5, out_channels=4, decoder_channels=SMALL_DECODER)
    keys = set(unet.state_dict())
    enc_keys = {f"encoder.{k}" for k in ResNetEncoder(depth=18, in_channels=5).state_dict()}
    assert enc_keys <= keys
    rest = keys - enc_keys
    assert rest
    assert all(k.startswith(("decoder.", "final.")) for k in rest)
    assert {"final.weight", "final.bias"} <= rest


def test_loading_a_pretrained_encoder() -> None:
    torch.manual_seed(0)
    pretrained = ResNetEncoder(depth=18, in_channels=5)
    # give the BN buffers non-default values, as after pre-training
    pretrained.train()
    with torch.no_grad():
        pretrained(torch.randn(4, 5, 32, 32) * 3 + 1)
    pretrained.eval()
    unet = ResNetUNet(depth=18, in_channels=5, out_channels=4, decoder_channels=SMALL_DECODER)
    unet.eval()
    x = torch.randn(2, 5, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(unet.encoder(x), pretrained(x))
        unet.encoder.load_state_dict(pretrained.state_dict())
        torch.testing.assert_close(unet.encoder(x), pretrained(x))
        for a, b in zip(
            unet.encoder.forward_features(x), pretrained.forward_features(x), strict=True
        ):
            torch.testing.assert_close(a, b)


def test_gradient_reaches_the_encoder_stem() -> None:
    torch.manual_seed(0)
    unet = ResNetUNet(depth=18, in_channels=3, out_channels=4, decoder_channels=SMALL_DECODER)
    unet(torch.randn(2, 3, 32, 32)).square().mean().backward()
    grad = unet.encoder.conv1.weight.grad
    assert grad is not None
    assert grad.abs().sum() > 0
    assert unet.final.weight.grad is not None
