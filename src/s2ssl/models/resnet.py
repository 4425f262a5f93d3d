"""ResNet-18 / ResNet-50 encoders for any number of input bands, without the classifier.

The architecture and the parameter names are those of torchvision's ``resnet18`` / ``resnet50``
(He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; the "v1.5" variant, whose
Bottleneck block strides in its 3x3 convolution), minus the final ``fc`` layer. This is the SeCo
backbone (Mañas et al., "Seasonal Contrast", ICCV 2021): a ResNet without ``fc`` whose
global-average-pooled feature (512-d for ResNet-18, 2048-d for ResNet-50) is what transfers.

Because the names match, torchvision ImageNet weights load into the 3-band encoder with
``encoder.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")})``.
torchvision itself is not used (it is unusable on this CPU build), everything is plain torch.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import Tensor, nn

__all__ = ["FEATURE_STRIDES", "SUPPORTED_DEPTHS", "BasicBlock", "Bottleneck", "ResNetEncoder"]

SUPPORTED_DEPTHS: Final[tuple[int, ...]] = (18, 50)
"""Depths :class:`ResNetEncoder` can build."""

FEATURE_STRIDES: Final[tuple[int, int, int, int, int]] = (2, 4, 8, 16, 32)
"""Output strides of the five maps of :meth:`ResNetEncoder.forward_features`."""


def check_tensor(
    x: object,
    *,
    ndim: int,
    layout: str,
    who: str,
    channels: int | None = None,
    channel_dim: int = 1,
) -> Tensor:
    """Check that ``x`` is a tensor with ``ndim`` dimensions (and ``channels`` at ``channel_dim``).

    Args:
        x: the candidate input.
        ndim: the expected number of dimensions.
        layout: the expected layout in words, e.g. ``"[N, C, H, W]"`` (used in messages only).
        who: the module or function doing the check (used in messages only).
        channels: the expected size of ``channel_dim``; ``None`` skips that check.
        channel_dim: the dimension holding the channels.

    Returns:
        ``x``, typed as a :class:`torch.Tensor`.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: wrong number of dimensions or of channels.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(
            f"{who} expects a {ndim}-D tensor of shape {layout}, "
            f"got a {x.ndim}-D tensor of shape {list(x.shape)}"
        )
    if channels is not None and x.shape[channel_dim] != channels:
        raise ValueError(
            f"{who} expects {channels} channels in dimension {channel_dim} of {layout}, "
            f"got {x.shape[channel_dim]} (input shape {list(x.shape)})"
        )
    return x


def check_positive_int(value: object, name: str, who: str) -> int:
    """Check that a constructor argument is a positive ``int`` (``bool`` is rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"{who}: {name} must be >= 1, got {value}")
    return value


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (followed by batch norm)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (followed by batch norm)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18 / 34), as in torchvision."""

    expansion: int = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Residual block: ``relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 → 3x3 (strided, "v1.5") → 1x1 ×4 bottleneck block (ResNet-50), as in torchvision."""

    expansion: int = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """Bottleneck residual block."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_ARCH: Final[dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNetEncoder(nn.Module):
    """torchvision-compatible ResNet-18 / ResNet-50 without ``fc``, for ``in_channels`` bands.

    The SeCo backbone (Mañas et al., ICCV 2021): ``conv1`` 7x7/2 → ``bn1`` → ReLU → max-pool 3x3/2
    → ``layer1`` … ``layer4`` → global average pool → flatten. Parameter names equal torchvision's,
    so its 3-band weights load directly (drop the ``fc.*`` keys).

    Args:
        depth: 18 (BasicBlock, [2, 2, 2, 2]) or 50 (Bottleneck, [3, 4, 6, 3]).
        in_channels: number of input bands (13 for all Sentinel-2 MSI bands, 3 for RGB).
        zero_init_residual: initialise the last batch norm of every residual block to zero, so
            every block starts as the identity (Goyal et al., 2017).

    Attributes:
        depth: the ResNet depth.
        in_channels: the number of input bands.
        out_dim: width of the pooled feature (512 for depth 18, 2048 for depth 50).
        feature_channels: channels of the five maps of :meth:`forward_features`.
        feature_strides: their output strides, ``(2, 4, 8, 16, 32)``.
    """

    def __init__(
        self, depth: int = 18, in_channels: int = 13, zero_init_residual: bool = False
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or depth not in _ARCH:
            raise ValueError(
                f"ResNetEncoder: depth must be one of {SUPPORTED_DEPTHS}, got {depth!r}"
            )
        check_positive_int(in_channels, "in_channels", "ResNetEncoder")
        block, layers = _ARCH[depth]
        self.depth: int = depth
        self.in_channels: int = in_channels
        self.inplanes: int = 64

        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

        expansion = block.expansion
        self.out_dim: int = 512 * expansion
        self.feature_channels: tuple[int, ...] = (
            64,
            64 * expansion,
            128 * expansion,
            256 * expansion,
            512 * expansion,
        )
        self.feature_strides: tuple[int, ...] = FEATURE_STRIDES

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
    ) -> nn.Sequential:
        """One ResNet stage: ``blocks`` blocks, the first strided and with a projection shortcut."""
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers: list[nn.Module] = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers.extend(block(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def _check(self, x: object) -> Tensor:
        return check_tensor(
            x, ndim=4, layout="[N, C, H, W]", who="ResNetEncoder", channels=self.in_channels
        )

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The five feature maps a U-Net decoder uses as skips.

        Args:
            x: images ``[N, in_channels, H, W]``.

        Returns:
            ``[stem, layer1, layer2, layer3, layer4]`` where ``stem = relu(bn1(conv1 x))``; their
            strides are :attr:`feature_strides` and their channels :attr:`feature_channels`.
        """
        x = self._check(x)
        stem = self.relu(self.bn1(self.conv1(x)))
        c1 = self.layer1(self.maxpool(stem))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return [stem, c1, c2, c3, c4]

    def forward(self, x: Tensor) -> Tensor:
        """Global-average-pooled features ``[N, out_dim]`` of images ``[N, in_channels, H, W]``."""
        c4 = self.forward_features(x)[-1]
        return torch.flatten(self.avgpool(c4), 1)
