"""A U-Net with a ResNet encoder, producing a per-pixel embedding at full resolution.

The decoder follows Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical
Image Segmentation", MICCAI 2015: upsample ×2, concatenate the encoder map of the same stride,
two 3x3 conv → BN → ReLU; here on top of a :class:`~s2ssl.models.resnet.ResNetEncoder` (the SeCo
backbone, Mañas et al. ICCV 2021), as in the Embedding Earth dense contrastive design.

The encoder sits in the ``encoder`` attribute, so a pre-trained SeCo encoder loads with
``unet.encoder.load_state_dict(state_dict)`` and the U-Net's state-dict keys are ``encoder.*``
plus ``decoder.*`` and ``final.*``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.models.resnet import ResNetEncoder, check_positive_int, check_tensor

__all__ = ["DecoderBlock", "ResNetUNet"]


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias) → batch norm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DecoderBlock(nn.Module):
    """U-Net decoder step: nearest ×2 upsampling, optional skip concatenation, two conv blocks.

    Args:
        in_channels: channels of the map coming from below.
        skip_channels: channels of the skip map concatenated after upsampling (0: no skip).
        out_channels: channels of both 3x3 conv → BN → ReLU blocks.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.skip_channels: int = skip_channels
        self.conv1 = _conv_bn_relu(in_channels + skip_channels, out_channels)
        self.conv2 = _conv_bn_relu(out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        """Upsample ``x`` ×2, concatenate ``skip`` (same size as the upsampled map), convolve."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class ResNetUNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) on a ResNet encoder; output ``[N, out_channels, H, W]``.

    Decoder: from ``layer4`` (stride 32), four steps of ×2 upsampling → concatenation of the skip
    at that stride (``layer3``, ``layer2``, ``layer1``, stem) → two 3x3 conv → BN → ReLU blocks with
    ``decoder_channels[i]`` channels; a fifth ×2 step without skip back to full resolution with
    ``decoder_channels[4]`` channels; a 1x1 convolution (with bias) to ``out_channels``.

    Args:
        depth: ResNet depth of the encoder (18 or 50).
        in_channels: number of input bands.
        out_channels: channels of the per-pixel output (embedding size or class count).
        decoder_channels: channels of the five decoder steps, from coarse to fine.

    Attributes:
        encoder: the :class:`~s2ssl.models.resnet.ResNetEncoder`.
        decoder: the five :class:`DecoderBlock`.
        final: the 1x1 output convolution.
        in_channels: number of input bands.
        out_channels: number of output channels.
        decoder_channels: as given.
    """

    def __init__(
        self,
        depth: int = 18,
        in_channels: int = 13,
        out_channels: int = 128,
        decoder_channels: tuple[int, int, int, int, int] = (256, 128, 64, 32, 16),
    ) -> None:
        super().__init__()
        check_positive_int(out_channels, "out_channels", "ResNetUNet")
        dec = tuple(decoder_channels)
        if len(dec) != 5:
            raise ValueError(
                f"ResNetUNet: decoder_channels must have 5 entries (one per decoder step), "
                f"got {len(dec)}: {dec}"
            )
        for i, c in enumerate(dec):
            check_positive_int(c, f"decoder_channels[{i}]", "ResNetUNet")
        self.encoder = ResNetEncoder(depth=depth, in_channels=in_channels)
        self.in_channels: int = in_channels
        self.out_channels: int = out_channels
        self.decoder_channels: tuple[int, ...] = dec

        enc = self.encoder.feature_channels  # (stem, layer1, layer2, layer3, layer4)
        skips = (enc[3], enc[2], enc[1], enc[0], 0)
        blocks: list[DecoderBlock] = []
        prev = enc[4]
        for skip, ch in zip(skips, dec, strict=True):
            blocks.append(DecoderBlock(prev, skip, ch))
            prev = ch
        self.decoder = nn.ModuleList(blocks)
        self.final = nn.Conv2d(prev, out_channels, kernel_size=1, bias=True)

        for m in self.decoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """Per-pixel outputs ``[N, out_channels, H, W]`` of images ``[N, in_channels, H, W]``.

        Raises:
            ValueError: wrong shape or channel count, or ``H`` / ``W`` not divisible by 32.
        """
        x = check_tensor(
            x, ndim=4, layout="[N, C, H, W]", who="ResNetUNet", channels=self.in_channels
        )
        h, w = x.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(
                f"ResNetUNet: H and W must be divisible by 32 (the encoder's output stride), "
                f"got H={h}, W={w}; crop or pad the input, e.g. to "
                f"{max(32, h // 32 * 32)}x{max(32, w // 32 * 32)}"
            )
        stem, c1, c2, c3, c4 = self.encoder.forward_features(x)
        y = c4
        for block, skip in zip(self.decoder, (c3, c2, c1, stem, None), strict=True):
            y = block(y, skip)
        return self.final(y)
