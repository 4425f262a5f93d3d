"""The CSCL time-series backbone: a 3-D U-Net over (time, height, width) collapsing time linearly.

Tarasiou, Guler and Zafeiriou, "Context-Self Contrastive Pretraining for Crop Type Semantic
Segmentation" (IEEE TGRS 2022, arXiv 2021), after the ``UNet3D`` of their DeepSatModels code:
two encoder levels of 3x3x3 conv → BN → LeakyReLU pairs with 2x2x2 max-pooling (over T, H and W),
a centre block, two transposed-convolution up-steps with skip concatenation, a final 3x3x3
convolution, and ``nn.Linear(timesteps, 1)`` over the time axis, giving per-pixel embeddings
``[N, out_channels, H, W]``. Module names (``en3``, ``en4``, ``center_in``, ``center_out``,
``dc4``, ``trans3``, ``dc3``, ``final``, ``fn``) are the reference code's.

Inputs are the bands (× 1e-4) plus day-of-year / 365 as an extra channel; see
:func:`append_doy_channel`. s2ssl time series are ``[N, T, C, H, W]``; the network permutes them to
``[N, C, T, H, W]`` internally.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from s2ssl.models.resnet import check_positive_int, check_tensor

__all__ = ["DAYS_PER_YEAR", "UNet3D", "append_doy_channel"]

DAYS_PER_YEAR: float = 365.0
"""Divisor of the day-of-year channel (CSCL: ``doy / 365``)."""


def append_doy_channel(image: Tensor, doy: Tensor) -> Tensor:
    """Append ``doy / 365`` as a channel that is constant over each date's image.

    Args:
        image: time series ``[N, T, C, H, W]`` (floating point).
        doy: day of year of every date, ``[N, T]`` (any real or integer dtype).

    Returns:
        ``[N, T, C + 1, H, W]``, the input bands followed by ``doy / 365`` (image dtype).

    Raises:
        TypeError: an argument is not a tensor, or ``image`` is not floating point.
        ValueError: wrong shapes, or ``doy``'s ``[N, T]`` differs from ``image``'s.
    """
    image = check_tensor(image, ndim=5, layout="[N, T, C, H, W]", who="append_doy_channel")
    doy = check_tensor(doy, ndim=2, layout="[N, T]", who="append_doy_channel (doy)")
    if not image.is_floating_point():
        raise TypeError(
            f"append_doy_channel expects a floating-point image, got {image.dtype}; "
            "scale DN to reflectance first (e.g. image.float() * 1e-4)"
        )
    n, t = image.shape[:2]
    if tuple(doy.shape) != (n, t):
        raise ValueError(
            f"append_doy_channel: doy must have shape [N, T] = [{n}, {t}] to match the image "
            f"{list(image.shape)}, got {list(doy.shape)}"
        )
    h, w = image.shape[-2:]
    channel = (doy.to(device=image.device, dtype=image.dtype) / DAYS_PER_YEAR)[
        ..., None, None, None
    ]
    return torch.cat([image, channel.expand(n, t, 1, h, w)], dim=2)


def conv_block(in_dim: int, middle_dim: int, out_dim: int) -> nn.Sequential:
    """Two 3x3x3 conv (padding 1) → BatchNorm3d → LeakyReLU, ``in → middle → out`` channels."""
    return nn.Sequential(
        nn.Conv3d(in_dim, middle_dim, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm3d(middle_dim),
        nn.LeakyReLU(inplace=True),
        nn.Conv3d(middle_dim, out_dim, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm3d(out_dim),
        nn.LeakyReLU(inplace=True),
    )


def _center_in(in_dim: int, out_dim: int) -> nn.Sequential:
    """3x3x3 conv → BatchNorm3d → LeakyReLU (the bottom of the U)."""
    return nn.Sequential(
        nn.Conv3d(in_dim, out_dim, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm3d(out_dim),
        nn.LeakyReLU(inplace=True),
    )


def _center_out(in_dim: int, out_dim: int) -> nn.Sequential:
    """3x3x3 conv (``in → in``) → BN → LeakyReLU → transposed conv ×2 (``in → out``).

    As in DeepSatModels' ``center_out``: the channel reduction happens in the transposed conv.
    """
    return nn.Sequential(
        nn.Conv3d(in_dim, in_dim, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm3d(in_dim),
        nn.LeakyReLU(inplace=True),
        nn.ConvTranspose3d(in_dim, out_dim, kernel_size=3, stride=2, padding=1, output_padding=1),
    )


def _up_conv_block(in_dim: int, out_dim: int) -> nn.Sequential:
    """Transposed 3x3x3 conv ×2 (over T, H, W) → BatchNorm3d → LeakyReLU."""
    return nn.Sequential(
        nn.ConvTranspose3d(in_dim, out_dim, kernel_size=3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm3d(out_dim),
        nn.LeakyReLU(inplace=True),
    )


class UNet3D(nn.Module):
    """CSCL 3-D U-Net (Tarasiou et al., 2021/2022): ``[N, T, C, H, W]`` → ``[N, out, H, W]``.

    Args:
        in_channels: channels per date (CSCL: the bands + day-of-year).
        timesteps: the fixed number of dates ``T`` (divisible by 4; CSCL uses 16).
        out_channels: channels of the per-pixel embedding (CSCL: 128).
        features: base width ``f``; the levels have 4f, 8f and 16f channels (reference: 16).
        dropout: dropout probability before the time-collapsing linear layer (reference default
            0, i.e. none).

    Attributes:
        in_channels, timesteps, out_channels, features: as given.
        fn: the ``nn.Linear(timesteps, 1)`` that collapses the time axis.
    """

    def __init__(
        self,
        in_channels: int = 14,
        timesteps: int = 16,
        out_channels: int = 128,
        features: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("timesteps", timesteps),
            ("out_channels", out_channels),
            ("features", features),
        ):
            check_positive_int(value, name, "UNet3D")
        if timesteps % 4:
            raise ValueError(
                f"UNet3D: timesteps must be divisible by 4 (the time axis is max-pooled twice), "
                f"got {timesteps}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNet3D: dropout must be in [0, 1), got {dropout}")
        self.in_channels: int = in_channels
        self.timesteps: int = timesteps
        self.out_channels: int = out_channels
        self.features: int = features

        f = features
        self.en3 = conv_block(in_channels, 4 * f, 4 * f)
        self.pool_3 = nn.MaxPool3d(kernel_size=2, stride=2, padding=0)
        self.en4 = conv_block(4 * f, 8 * f, 8 * f)
        self.pool_4 = nn.MaxPool3d(kernel_size=2, stride=2, padding=0)
        self.center_in = _center_in(8 * f, 16 * f)
        self.center_out = _center_out(16 * f, 8 * f)
        self.dc4 = conv_block(16 * f, 8 * f, 8 * f)
        self.trans3 = _up_conv_block(8 * f, 4 * f)
        self.dc3 = conv_block(8 * f, 4 * f, 2 * f)
        self.final = nn.Conv3d(2 * f, out_channels, kernel_size=3, stride=1, padding=1)
        self.dropout = nn.Dropout(p=dropout)
        self.fn = nn.Linear(timesteps, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Per-pixel embeddings ``[N, out_channels, H, W]`` of time series ``[N, T, C, H, W]``.

        Raises:
            ValueError: wrong ndim, ``C != in_channels``, ``T != timesteps``, or ``H`` / ``W`` not
                divisible by 4.
        """
        x = check_tensor(
            x,
            ndim=5,
            layout="[N, T, C, H, W]",
            who="UNet3D",
            channels=self.in_channels,
            channel_dim=2,
        )
        t, h, w = x.shape[1], x.shape[3], x.shape[4]
        if t != self.timesteps:
            raise ValueError(
                f"UNet3D: expected T = {self.timesteps} dates (dimension 1 of [N, T, C, H, W]), "
                f"got T = {t} (input shape {list(x.shape)}); resample the series to "
                f"{self.timesteps} dates"
            )
        if h % 4 or w % 4:
            raise ValueError(
                f"UNet3D: H and W must be divisible by 4 (two 2x2x2 poolings), got H={h}, W={w}"
            )
        x = x.permute(0, 2, 1, 3, 4)  # [N, C, T, H, W]
        en3 = self.en3(x)
        en4 = self.en4(self.pool_3(en3))
        center = self.center_out(self.center_in(self.pool_4(en4)))
        dc4 = self.dc4(torch.cat([center, en4], dim=1))
        dc3 = self.dc3(torch.cat([self.trans3(dc4), en3], dim=1))
        out = self.final(dc3)  # [N, out, T, H, W]
        out = self.fn(self.dropout(out.permute(0, 1, 3, 4, 2)))  # [N, out, H, W, 1]
        return out.squeeze(-1)
