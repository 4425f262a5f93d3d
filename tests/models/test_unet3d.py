"""UNet3D (CSCL backbone) and append_doy_channel."""

from __future__ import annotations

import pytest
import torch

from s2ssl.models.unet3d import UNet3D, append_doy_channel


def conv3d_params(a: int, b: int) -> int:
    return a * b * 27 + b


def bn_params(c: int) -> int:
    return 2 * c


def conv_block_params(a: int, b: int, c: int) -> int:
    return conv3d_params(a, b) + bn_params(b) + conv3d_params(b, c) + bn_params(c)


def expected_params(c_in: int, t: int, out: int, f: int) -> int:
    """Hand count of the DeepSatModels UNet3D layout."""
    return (
        conv_block_params(c_in, 4 * f, 4 * f)  # en3
        + conv_block_params(4 * f, 8 * f, 8 * f)  # en4
        + conv3d_params(8 * f, 16 * f)  # center_in
        + bn_params(16 * f)
        + conv3d_params(16 * f, 16 * f)  # center_out conv
        + bn_params(16 * f)
        + conv3d_params(16 * f, 8 * f)  # center_out transposed conv (same count as a conv)
        + conv_block_params(16 * f, 8 * f, 8 * f)  # dc4
        + conv3d_params(8 * f, 4 * f)  # trans3
        + bn_params(4 * f)
        + conv_block_params(8 * f, 4 * f, 2 * f)  # dc3
        + conv3d_params(2 * f, out)  # final
        + t
        + 1  # fn: Linear(T, 1)
    )


def test_parameter_count_default_configuration() -> None:
    with torch.device("meta"):
        net = UNet3D()
    assert sum(p.numel() for p in net.parameters()) == expected_params(14, 16, 128, 16)
    assert net.fn.in_features == 16
    assert net.fn.out_features == 1


def test_output_shape_reference_input() -> None:
    torch.manual_seed(0)
    net = UNet3D(in_channels=14, timesteps=16, out_channels=128, features=4).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 16, 14, 32, 32))
    assert out.shape == (2, 128, 32, 32)
    assert torch.isfinite(out).all()


def test_input_layout_is_ntchw_and_time_collapsed_by_fn() -> None:
    torch.manual_seed(0)
    net = UNet3D(in_channels=3, timesteps=4, out_channels=5, features=2).eval()
    seen: dict[str, torch.Tensor] = {}
    net.en3.register_forward_hook(lambda m, i, o: seen.__setitem__("en3_in", i[0]))
    net.final.register_forward_hook(lambda m, i, o: seen.__setitem__("final", o))
    x = torch.randn(2, 4, 3, 8, 12)
    with torch.no_grad():
        out = net(x)
    # [N, T, C, H, W] -> [N, C, T, H, W] inside
    torch.testing.assert_close(seen["en3_in"], x.permute(0, 2, 1, 3, 4))
    final = seen["final"]
    assert final.shape == (2, 5, 4, 8, 12)
    expected = torch.einsum("ncthw,t->nchw", final, net.fn.weight[0]) + net.fn.bias[0]
    torch.testing.assert_close(out, expected)
    assert out.shape == (2, 5, 8, 12)


def test_time_mismatch_raises() -> None:
    net = UNet3D(in_channels=3, timesteps=8, out_channels=4, features=2)
    with pytest.raises(ValueError, match=r"expected T = 8 dates .* got T = 4"):
        net(torch.randn(1, 4, 3, 8, 8))


def test_spatial_size_not_divisible_by_4_raises() -> None:
    net = UNet3D(in_channels=3, timesteps=4, out_channels=4, features=2)
    with pytest.raises(ValueError, match=r"divisible by 4.*H=10, W=8"):
        net(torch.randn(1, 4, 3, 10, 8))
    with pytest.raises(ValueError, match=r"divisible by 4.*H=8, W=6"):
        net(torch.randn(1, 4, 3, 8, 6))


def test_wrong_channels_or_ndim_raises() -> None:
    net = UNet3D(in_channels=14, timesteps=4, out_channels=4, features=2)
    with pytest.raises(ValueError, match=r"expects 14 channels in dimension 2 .* got 13"):
        net(torch.randn(1, 4, 13, 8, 8))
    with pytest.raises(ValueError, match=r"5-D tensor of shape \[N, T, C, H, W\], got a 4-D"):
        net(torch.randn(4, 14, 8, 8))


def test_bad_constructor_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"timesteps must be divisible by 4 .*got 6"):
        UNet3D(timesteps=6)
    with pytest.raises(ValueError, match="features must be >= 1"):
        UNet3D(features=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        UNet3D(dropout=1.5)


def test_gradient_reaches_first_layer() -> None:
    torch.manual_seed(0)
    net = UNet3D(in_channels=3, timesteps=4, out_channels=4, features=2).train()
    net(torch.randn(2, 4, 3, 8, 8)).square().mean().backward()
    grad = net.en3[0].weight.grad
    assert grad is not None
    assert grad.abs().sum() > 0


def test_append_doy_channel_values() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 4, 5, 6)
    doy = torch.tensor([[1, 100, 365], [32, 200, 300]])
    out = append_doy_channel(image, doy)
    assert out.shape == (2, 3, 5, 5, 6)
    assert out.dtype == image.dtype
    torch.testing.assert_close(out[:, :, :4], image)
    for n in range(2):
        for t in range(3):
            expected = torch.full((5, 6), doy[n, t].item() / 365.0)
            torch.testing.assert_close(out[n, t, 4], expected)
    assert out[0, 2, 4, 0, 0].item() == pytest.approx(1.0)


def test_append_doy_channel_feeds_unet3d() -> None:
    image = torch.rand(1, 4, 13, 8, 8)
    doy = torch.tensor([[10.0, 50.0, 90.0, 130.0]])
    net = UNet3D(in_channels=14, timesteps=4, out_channels=3, features=2).eval()
    with torch.no_grad():
        assert net(append_doy_channel(image, doy)).shape == (1, 3, 8, 8)


def test_append_doy_channel_errors() -> None:
    image = torch.rand(2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match=r"doy must have shape \[N, T\] = \[2, 3\].*got \[2, 4\]"):
        append_doy_channel(image, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"2-D tensor of shape \[N, T\], got a 1-D"):
        append_doy_channel(image, torch.zeros(3))
    with pytest.raises(ValueError, match=r"5-D tensor of shape \[N, T, C, H, W\]"):
        append_doy_channel(image[0], torch.zeros(2, 3))
    with pytest.raises(TypeError, match="floating-point image"):
        append_doy_channel(torch.zeros(2, 3, 4, 5, 6, dtype=torch.int16), torch.zeros(2, 3))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        append_doy_channel(image, [[1, 2, 3], [4, 5, 6]])  # type: ignore[arg-type]
