"""Projection and segmentation heads.

* :class:`ProjectionMLP` — the MoCo-v2 / SeCo head on a pooled feature (Chen et al. 2020;
  Mañas et al., ICCV 2021): ``Linear(d, d) → ReLU → Linear(d, 128)``.
* :class:`PixelProjection` — a dense (per-pixel) projection head for pixel-level contrastive
  learning (Embedding Earth design): ``1x1 conv → BN → ReLU → 1x1 conv``.
* :class:`SegmentationHead` — a fresh 1x1 classifier on per-pixel embeddings.
"""

from __future__ import annotations

from torch import Tensor, nn

from s2ssl.models.resnet import check_positive_int, check_tensor

__all__ = ["PixelProjection", "ProjectionMLP", "SegmentationHead"]


class ProjectionMLP(nn.Module):
    """MoCo-v2 / SeCo projection head: ``Linear(in, hidden) → ReLU → Linear(hidden, out)``.

    Args:
        in_dim: width of the input feature (512 for ResNet-18, 2048 for ResNet-50).
        hidden_dim: hidden width; defaults to ``in_dim`` (as in SeCo).
        out_dim: width of the projection (128 in SeCo / MoCo-v2).
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128) -> None:
        super().__init__()
        check_positive_int(in_dim, "in_dim", "ProjectionMLP")
        hidden = in_dim if hidden_dim is None else hidden_dim
        check_positive_int(hidden, "hidden_dim", "ProjectionMLP")
        check_positive_int(out_dim, "out_dim", "ProjectionMLP")
        self.in_dim: int = in_dim
        self.hidden_dim: int = hidden
        self.out_dim: int = out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Project features ``[N, in_dim]`` to ``[N, out_dim]`` (not normalised)."""
        x = check_tensor(x, ndim=2, layout="[N, D]", who="ProjectionMLP", channels=self.in_dim)
        return self.net(x)


class PixelProjection(nn.Module):
    """Dense projection head: ``1x1 conv (no bias) → BN → ReLU → 1x1 conv`` per pixel.

    Args:
        in_channels: channels of the per-pixel embedding.
        out_channels: channels of the projection (128 by default).
        hidden_channels: hidden width; defaults to ``in_channels``.
    """

    def __init__(
        self, in_channels: int, out_channels: int = 128, hidden_channels: int | None = None
    ) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels", "PixelProjection")
        hidden = in_channels if hidden_channels is None else hidden_channels
        check_positive_int(hidden, "hidden_channels", "PixelProjection")
        check_positive_int(out_channels, "out_channels", "PixelProjection")
        self.in_channels: int = in_channels
        self.hidden_channels: int = hidden
        self.out_channels: int = out_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Project ``[N, in_channels, H, W]`` to ``[N, out_channels, H, W]`` (not normalised)."""
        x = check_tensor(
            x, ndim=4, layout="[N, C, H, W]", who="PixelProjection", channels=self.in_channels
        )
        return self.net(x)


class SegmentationHead(nn.Module):
    """Per-pixel classifier: one 1x1 convolution with bias, embeddings → class logits.

    Args:
        in_channels: channels of the per-pixel embedding.
        num_classes: number of classes (logits per pixel).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels", "SegmentationHead")
        check_positive_int(num_classes, "num_classes", "SegmentationHead")
        self.in_channels: int = in_channels
        self.num_classes: int = num_classes
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes, H, W]`` of embeddings ``[N, in_channels, H, W]``."""
        x = check_tensor(
            x, ndim=4, layout="[N, C, H, W]", who="SegmentationHead", channels=self.in_channels
        )
        return self.conv(x)
