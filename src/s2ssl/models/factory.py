"""Untrained encoders rebuilt from the ``architecture`` recorded in a saved network's
``meta.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D

__all__ = ["build_encoder"]


def build_encoder(architecture: Mapping[str, Any]) -> Any:
    """An untrained encoder of the ``architecture`` recorded in an encoder's ``meta.json``."""
    kind = architecture.get("kind")
    try:
        if kind == "resnet":
            return ResNetEncoder(int(architecture["depth"]), int(architecture["in_channels"]))
        if kind == "unet":
            return ResNetUNet(
                int(architecture["depth"]),
                int(architecture["in_channels"]),
                int(architecture["out_channels"]),
                tuple(int(c) for c in architecture["decoder_channels"]),  # type: ignore[arg-type]
            )
        if kind == "unet3d":
            return UNet3D(
                int(architecture["in_channels"]),
                int(architecture["timesteps"]),
                int(architecture["out_channels"]),
                int(architecture["features"]),
            )
    except KeyError as e:
        raise ValueError(f"encoder architecture {dict(architecture)} lacks {e}") from None
    raise ValueError(f"unknown encoder kind {kind!r}; expected resnet, unet or unet3d")
