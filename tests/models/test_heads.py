"""Projection and segmentation heads: shapes, hand-computed outputs, input checks."""

from __future__ import annotations

import pytest
import torch

from s2ssl.models.heads import PixelProjection, ProjectionMLP, SegmentationHead


def test_projection_mlp_structure_and_shape() -> None:
    head = ProjectionMLP(512)
    assert head.hidden_dim == 512
    assert head.out_dim == 128
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 512), (512, 128)]
    assert any(isinstance(m, torch.nn.ReLU) for m in head.modules())
    assert head(torch.randn(3, 512)).shape == (3, 128)
    assert ProjectionMLP(8, hidden_dim=16, out_dim=4)(torch.randn(2, 8)).shape == (2, 4)


def test_projection_mlp_hand_computed() -> None:
    head = ProjectionMLP(2, out_dim=1)
    first, last = (m for m in head.modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        first.bias.zero_()
        last.weight.copy_(torch.tensor([[1.0, 1.0]]))
        last.bias.fill_(0.5)
        # [3, 2] -> [3, -2] -> relu [3, 0] -> 3 + 0 + 0.5
        out = head(torch.tensor([[3.0, 2.0], [-1.0, -4.0]]))
    # second row: [-1, 4] -> relu [0, 4] -> 4.5
    torch.testing.assert_close(out, torch.tensor([[3.5], [4.5]]))


def test_projection_mlp_errors() -> None:
    head = ProjectionMLP(8)
    with pytest.raises(ValueError, match=r"expects 8 channels .* got 7"):
        head(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"2-D tensor of shape \[N, D\], got a 4-D"):
        head(torch.randn(2, 8, 1, 1))
    with pytest.raises(ValueError, match="in_dim must be >= 1, got 0"):
        ProjectionMLP(0)
    with pytest.raises(ValueError, match="hidden_dim must be >= 1"):
        ProjectionMLP(4, hidden_dim=-1)


def test_pixel_projection_structure_and_shape() -> None:
    head = PixelProjection(16)
    assert head.hidden_channels == 16
    assert head.out_channels == 128
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (1, 1)]
    assert convs[0].bias is None  # followed by batch norm
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules()) == 1
    assert head(torch.randn(2, 16, 5, 7)).shape == (2, 128, 5, 7)
    assert PixelProjection(4, 8, hidden_channels=6)(torch.randn(2, 4, 3, 3)).shape == (2, 8, 3, 3)


def test_pixel_projection_is_per_pixel_in_eval() -> None:
    torch.manual_seed(0)
    head = PixelProjection(4, 3).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        full = head(x)
        single = head(x[:, :, 2:3, 4:5])
    torch.testing.assert_close(full[:, :, 2:3, 4:5], single)


def test_pixel_projection_errors() -> None:
    head = PixelProjection(16)
    with pytest.raises(ValueError, match=r"expects 16 channels .* got 8"):
        head(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match=r"4-D tensor of shape \[N, C, H, W\], got a 2-D"):
        head(torch.randn(1, 16))
    with pytest.raises(TypeError, match="out_channels must be an int"):
        PixelProjection(16, out_channels=1.5)  # type: ignore[arg-type]


def test_segmentation_head_is_a_1x1_affine_map() -> None:
    torch.manual_seed(0)
    head = SegmentationHead(6, 4)
    assert head.num_classes == 4
    assert head.conv.bias is not None
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        out = head(x)
    expected = torch.einsum("nchw,kc->nkhw", x, head.conv.weight[:, :, 0, 0])
    expected = expected + head.conv.bias[None, :, None, None]
    assert out.shape == (2, 4, 5, 5)
    torch.testing.assert_close(out, expected)


def test_segmentation_head_errors() -> None:
    head = SegmentationHead(6, 4)
    with pytest.raises(ValueError, match=r"expects 6 channels .* got 5"):
        head(torch.randn(1, 5, 2, 2))
    with pytest.raises(ValueError, match=r"4-D tensor .* got a 3-D"):
        head(torch.randn(6, 2, 2))
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        SegmentationHead(6, 0)
