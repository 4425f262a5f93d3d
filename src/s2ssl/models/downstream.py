"""Downstream networks: a backbone (pre-trained or random) + a fresh classifier, on reflectance.

Every network here takes **reflectance** (``DN_after_offset × 1e-4``) in its own band order and
does its input scaling itself, so an exported model is self-contained: what
:func:`load_model` returns can be applied to any raster whose bands match ``model.bands``.

* :class:`SegmentationNet` — single-date semantic segmentation: standardisation → ResNet U-Net
  (per-pixel features) → 1×1 classifier. This is the Embedding Earth transfer (Tarasiou &
  Zafeiriou 2022): the whole pre-trained U-Net initialises the model, the classifier is new.
* :class:`TimeSeriesSegmentationNet` — CSCL stage 2 (Tarasiou et al. 2021/22): reflectance +
  day-of-year / 365 → 3-D U-Net (time collapsed by a linear layer) → fresh 1×1 classifier.
* :class:`SceneNet` — scene classification: standardisation → ResNet encoder (global average
  pooled) → linear layer (SeCo's evaluation protocols: linear probe or full fine-tuning).
* :class:`MultilabelSceneNet` — multi-label scene classification: the same network, one
  independent logit per class (a class is present with probability ``sigmoid(logit)``).

The architecture of each is a JSON-able dict (:meth:`architecture`) from which
:func:`build_model` rebuilds it; :func:`save_model` / :func:`load_model` write and read the
plain ``state_dict`` (``torch.load(weights_only=True)``) next to a ``meta.json``
(:mod:`s2ssl.models.saved`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from s2ssl.classes import ClassSet
from s2ssl.models.factory import build_encoder
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.saved import load_saved, write_saved
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D, append_doy_channel

__all__ = [
    "DownstreamNet",
    "MultilabelSceneNet",
    "SceneNet",
    "SegmentationNet",
    "Standardize",
    "TimeSeriesSegmentationNet",
    "build_model",
    "load_model",
    "save_model",
]


class Standardize(nn.Module):
    """``(x - mean) / std`` per band (channel axis ``channel_dim``); the statistics are buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channel_dim: int = 1) -> None:
        super().__init__()
        if len(mean) != len(std) or not len(mean):
            raise ValueError(
                f"Standardize needs one mean and one std per band, got {len(mean)} / {len(std)}"
            )
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"Standardize: every std must be > 0, got {list(std)}")
        self.channel_dim = channel_dim
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]), persistent=True)
        self.register_buffer("std", torch.tensor([float(s) for s in std]), persistent=True)

    def forward(self, x: Tensor) -> Tensor:
        shape = [1] * x.ndim
        shape[self.channel_dim] = -1
        return (x - self.mean.view(shape)) / self.std.view(shape)


class DownstreamNet(nn.Module):
    """What the downstream networks share: bands, classes and a JSON architecture."""

    kind: str = ""

    def __init__(self, bands: Sequence[str], classes: Sequence[str] | ClassSet) -> None:
        super().__init__()
        if not bands:
            raise ValueError("a downstream network needs at least one input band")
        class_set = classes if isinstance(classes, ClassSet) else ClassSet.from_names(classes)
        if len(class_set) < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {list(class_set.names)}")
        self.bands: tuple[str, ...] = tuple(bands)
        self.class_set: ClassSet = class_set
        """The classes of the data it was trained on (names, raster values, colours)."""
        self.classes: tuple[str, ...] = class_set.names

    def _check_inputs(self, in_channels: int, network: str) -> None:
        """``network`` must take one input channel per band name."""
        if in_channels != len(self.bands):
            raise ValueError(
                f"the {network} takes {in_channels} bands but {len(self.bands)} band names "
                f"were given: {list(self.bands)}"
            )

    def backbone_module(self) -> nn.Module:
        """The part initialised from a pre-trained encoder."""
        raise TypeError(f"{type(self).__name__} does not define its backbone")  # pragma: no cover

    def backbone_architecture(self) -> dict[str, Any]:
        """The :func:`s2ssl.models.factory.build_encoder` description of the backbone."""
        raise TypeError(f"{type(self).__name__} does not define its backbone")  # pragma: no cover

    def architecture(self) -> dict[str, Any]:
        """Everything :func:`build_model` needs to rebuild this network (weights aside)."""
        return {
            "kind": self.kind,
            "backbone": self.backbone_architecture(),
            "bands": list(self.bands),
            "classes": list(self.classes),
            "class_set": self.class_set.to_json(),
        }


def _resnet_arch(encoder: ResNetEncoder, bands: Sequence[str]) -> dict[str, Any]:
    return {
        "kind": "resnet",
        "depth": encoder.depth,
        "in_channels": encoder.in_channels,
        "bands": list(bands),
        "out_dim": encoder.out_dim,
    }


def _unet_arch(unet: ResNetUNet, bands: Sequence[str]) -> dict[str, Any]:
    return {
        "kind": "unet",
        "depth": unet.encoder.depth,
        "in_channels": unet.in_channels,
        "bands": list(bands),
        "out_channels": unet.out_channels,
        "decoder_channels": list(unet.decoder_channels),
    }


class SegmentationNet(DownstreamNet):
    """Single-date segmentation: reflectance ``[N, C, H, W]`` → logits ``[N, K, H, W]``."""

    kind = "segmentation"

    def __init__(
        self,
        backbone: ResNetUNet,
        bands: Sequence[str],
        classes: Sequence[str] | ClassSet,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__(bands, classes)
        self._check_inputs(backbone.in_channels, "U-Net")
        self.normalize = Standardize(mean, std)
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.out_channels, len(self.classes), kernel_size=1)

    def backbone_module(self) -> nn.Module:
        return self.backbone

    def backbone_architecture(self) -> dict[str, Any]:
        return _unet_arch(self.backbone, self.bands)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.backbone(self.normalize(x)))


class TimeSeriesSegmentationNet(DownstreamNet):
    """CSCL stage 2: reflectance ``[N, T, C, H, W]`` + day of year ``[N, T]`` → ``[N, K, H, W]``.

    Inputs are scaled as in CSCL (reflectance as is, plus ``doy / 365`` as an extra channel).
    """

    kind = "timeseries_segmentation"

    def __init__(
        self, backbone: UNet3D, bands: Sequence[str], classes: Sequence[str] | ClassSet
    ) -> None:
        super().__init__(bands, classes)
        if backbone.in_channels != len(self.bands) + 1:
            raise ValueError(
                f"the 3-D U-Net takes {backbone.in_channels} channels, i.e. "
                f"{backbone.in_channels - 1} bands + day of year, but {len(self.bands)} band "
                f"names were given"
            )
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.out_channels, len(self.classes), kernel_size=1)

    @property
    def timesteps(self) -> int:
        """The number of dates the network takes."""
        return self.backbone.timesteps

    def backbone_module(self) -> nn.Module:
        return self.backbone

    def backbone_architecture(self) -> dict[str, Any]:
        b = self.backbone
        return {
            "kind": "unet3d",
            "in_channels": b.in_channels,
            "timesteps": b.timesteps,
            "out_channels": b.out_channels,
            "features": b.features,
            "bands": list(self.bands),
        }

    def forward(self, x: Tensor, doy: Tensor) -> Tensor:
        return self.classifier(self.backbone(append_doy_channel(x, doy)))


class SceneNet(DownstreamNet):
    """Scene classification: reflectance ``[N, C, H, W]`` → logits ``[N, K]``."""

    kind = "scene"

    def __init__(
        self,
        encoder: ResNetEncoder,
        bands: Sequence[str],
        classes: Sequence[str] | ClassSet,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__(bands, classes)
        self._check_inputs(encoder.in_channels, "encoder")
        self.normalize = Standardize(mean, std)
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.out_dim, len(self.classes))

    def backbone_module(self) -> nn.Module:
        return self.encoder

    def backbone_architecture(self) -> dict[str, Any]:
        return _resnet_arch(self.encoder, self.bands)

    def features(self, x: Tensor) -> Tensor:
        """Global-pooled encoder features ``[N, D]`` (what a linear probe / kNN sees)."""
        return self.encoder(self.normalize(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class MultilabelSceneNet(SceneNet):
    """Multi-label scene classification: reflectance ``[N, C, H, W]`` → logits ``[N, K]``, one
    independent logit per class (sigmoid, not softmax: an image carries any set of classes)."""

    kind = "multilabel"

    def probabilities(self, x: Tensor) -> Tensor:
        """``P(class present)`` per image and class, ``[N, K]``."""
        return torch.sigmoid(self(x))


def build_model(architecture: Mapping[str, Any]) -> DownstreamNet:
    """An untrained network of ``architecture`` (:meth:`DownstreamNet.architecture`).

    Normalisation buffers start at mean 0 / std 1; loading the state dict sets them.
    """
    kind = architecture.get("kind")
    try:
        bands = [str(b) for b in architecture["bands"]]
        names = [str(c) for c in architecture["classes"]]
        classes = ClassSet.from_json(architecture.get("class_set", names))
        if classes.names != tuple(names):
            raise ValueError(
                f"model architecture: classes {names} differ from class_set {list(classes.names)}"
            )
        backbone = build_encoder(architecture["backbone"])
    except KeyError as e:
        raise ValueError(f"model architecture {dict(architecture)} lacks {e}") from None
    ones, zeros = [1.0] * len(bands), [0.0] * len(bands)
    if kind == "segmentation" and isinstance(backbone, ResNetUNet):
        return SegmentationNet(backbone, bands, classes, zeros, ones)
    if kind == "timeseries_segmentation" and isinstance(backbone, UNet3D):
        return TimeSeriesSegmentationNet(backbone, bands, classes)
    if kind == "scene" and isinstance(backbone, ResNetEncoder):
        return SceneNet(backbone, bands, classes, zeros, ones)
    if kind == "multilabel" and isinstance(backbone, ResNetEncoder):
        return MultilabelSceneNet(backbone, bands, classes, zeros, ones)
    raise ValueError(
        f"unknown model kind {kind!r} with a {type(backbone).__name__} backbone; expected "
        "segmentation (unet), timeseries_segmentation (unet3d), scene or multilabel (resnet)"
    )


def save_model(model: DownstreamNet, target: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write ``<target>/weights.pt`` (plain state_dict) and ``meta.json`` atomically."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    record = {
        "architecture": model.architecture(),
        "format": "torch state_dict; load with s2ssl.models.downstream.load_model "
        "(torch.load(weights_only=True)); inputs are reflectance (DN_after_offset * 1e-4)",
        **dict(meta),
    }
    write_saved(target, weights, record)
    return Path(target)


def load_model(path: str | Path) -> tuple[DownstreamNet, dict[str, Any]]:
    """Rebuild a saved downstream model in eval mode; returns ``(model, meta)``.

    Raises:
        ValueError: ``path`` is not a saved model, or its weights do not fit its architecture.
    """
    model, meta = load_saved(
        path,
        build_model,
        what="a fine-tuned model",
        hint="run `s2ssl finetune` / `dvc repro finetune` first",
    )
    return model, meta
