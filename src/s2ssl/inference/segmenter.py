"""What inference needs from a model: the :class:`Segmenter` protocol, its validation, an adapter
for plain torch modules, and device selection.

A segmenter declares the Sentinel-2 bands it reads (in its input order), the classes it predicts
(index = class id), optionally their :class:`~s2ssl.classes.ClassSet` (``class_set``: names and
display colours of the maps) and its preferred square tile edge; ``predict_proba`` maps float32
reflectance ``(N, C, tile, tile)`` to softmax probabilities ``(N, K, tile, tile)``.
Normalisation is the model's job. A time-series model additionally sets ``n_dates = T > 1`` and
receives ``(N, T, C, tile, tile)``; a model without ``n_dates`` is a single-date model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import LABEL_IGNORE, ClassSet
from s2ssl.models.downstream import MultilabelSceneNet, SegmentationNet, load_model

__all__ = [
    "Segmenter",
    "SegmenterSpec",
    "TorchSegmenter",
    "check_segmenter",
    "model_class_set",
    "move_segmenter",
    "resolve_device",
]


@runtime_checkable
class Segmenter(Protocol):
    """A per-pixel classifier of Sentinel-2 reflectance.

    Attributes:
        bands: input band names in model order, e.g. ``("B01", ..., "B12")`` or
            ``("B04", "B03", "B02")``.
        class_names: output classes; the index of a name is its class id.
        tile_size: preferred square tile edge in pixels (a multiple of 32 for U-Nets).

    An optional attribute ``n_dates`` (int, default 1) marks a time-series model, whose input is
    ``(N, n_dates, C, tile, tile)``; an optional ``class_set`` (:class:`~s2ssl.classes.ClassSet`
    with the names of ``class_names``) gives the classes' colours (without it the maps use
    :data:`~s2ssl.classes.FALLBACK_PALETTE`).
    """

    bands: tuple[str, ...]
    class_names: tuple[str, ...]
    tile_size: int

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities ``(N, K, tile, tile)`` (softmax over K) of reflectance ``x``."""
        ...


@dataclass(frozen=True, slots=True)
class SegmenterSpec:
    """The validated, immutable description of a segmenter (what inference relies on)."""

    bands: tuple[str, ...]
    class_names: tuple[str, ...]
    tile_size: int
    n_dates: int
    class_set: ClassSet
    """The classes with their colours (from ``class_names`` when the segmenter declares none)."""

    @property
    def n_classes(self) -> int:
        """Number of output classes ``K``."""
        return len(self.class_names)


def _names(value: object, what: str, who: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            f"{who}.{what} must be a tuple of strings, got {type(value).__name__} ({value!r})"
        )
    names = tuple(value)
    if not names:
        raise ValueError(f"{who}.{what} is empty; a segmenter needs at least one")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise TypeError(f"{who}.{what} must hold non-empty strings, got {bad!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{who}.{what} must be unique; repeated: {dupes}")
    return names


def _positive_int(value: object, what: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{who}.{what} must be an int, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"{who}.{what} must be >= 1, got {value}")
    return value


def check_segmenter(segmenter: object) -> SegmenterSpec:
    """Validate that ``segmenter`` implements :class:`Segmenter`; return its :class:`SegmenterSpec`.

    Raises:
        TypeError: a missing attribute or method, or an attribute of the wrong type.
        ValueError: unknown or repeated band names, repeated class names, more than 255 classes
            (255 is the no-data class value of the output maps), a tile size or ``n_dates`` < 1.
    """
    who = type(segmenter).__name__
    need = [a for a in ("bands", "class_names", "tile_size") if not hasattr(segmenter, a)]
    if not callable(getattr(segmenter, "predict_proba", None)):
        need.append("predict_proba()")
    if need:
        raise TypeError(
            f"{who} is not a Segmenter: it lacks {', '.join(need)} (a segmenter has bands, "
            "class_names, tile_size and predict_proba(x) -> probabilities)"
        )
    bands = _names(segmenter.bands, "bands", who)  # type: ignore[attr-defined]
    unknown = [b for b in bands if b not in BAND_NAMES]
    if unknown:
        raise ValueError(
            f"{who}.bands has unknown Sentinel-2 band name(s) {unknown}; valid names are "
            f"{', '.join(BAND_NAMES)}"
        )
    classes = _names(segmenter.class_names, "class_names", who)  # type: ignore[attr-defined]
    if len(classes) > LABEL_IGNORE:
        raise ValueError(
            f"{who} predicts {len(classes)} classes; class maps are uint8 with {LABEL_IGNORE} as "
            f"no data, so at most {LABEL_IGNORE} classes are supported"
        )
    tile = _positive_int(segmenter.tile_size, "tile_size", who)  # type: ignore[attr-defined]
    n_dates = _positive_int(getattr(segmenter, "n_dates", 1), "n_dates", who)
    class_set = getattr(segmenter, "class_set", None)
    if class_set is None:
        class_set = ClassSet.from_names(classes)
    elif not isinstance(class_set, ClassSet):
        raise TypeError(
            f"{who}.class_set must be an s2ssl.classes.ClassSet, got {type(class_set).__name__}"
        )
    elif class_set.names != classes:
        raise ValueError(
            f"{who}.class_set names {list(class_set.names)} but class_names is {list(classes)}; "
            "they must list the same classes in the same order"
        )
    return SegmenterSpec(
        bands=bands, class_names=classes, tile_size=tile, n_dates=n_dates, class_set=class_set
    )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to run on: ``None`` / ``"auto"`` picks CUDA when present, else the CPU.

    Raises:
        ValueError: an unparsable device string, or CUDA requested where none is available.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device {device!r} is not a torch device ({e}); use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available (torch "
            f"{torch.__version__}); use device='auto' or 'cpu'"
        )
    return dev


def move_segmenter(segmenter: Segmenter, device: torch.device) -> None:
    """Move a segmenter that has a ``to(device)`` method (an ``nn.Module`` or an adapter) there."""
    to = getattr(segmenter, "to", None)
    if callable(to):
        to(device)


class TorchSegmenter:
    """Wrap a torch module that maps ``(N, C, H, W)`` inputs to class logits as a
    :class:`Segmenter`: optional per-band standardisation, the module in eval mode, softmax.

    Args:
        module: the network; its output is ``(N, K, H, W)`` logits.
        bands: input band names in the module's channel order.
        class_names: the K classes, in logit order.
        tile_size: preferred tile edge (a multiple of 32 for a ResNet U-Net).
        mean: per-band mean subtracted from the reflectance (None: no centring).
        std: per-band standard deviation the centred reflectance is divided by (None: 1).
        n_dates: > 1 for a time-series module (input ``(N, T, C, H, W)``).
        class_set: the classes with their colours (None: ``class_names`` with the fallback
            palette).
        channels_last: run 4-D inputs in the channels-last memory format (measured 1.5x faster
            for a ResNet-18 U-Net on CPU; the usual choice on GPUs too).
    """

    def __init__(
        self,
        module: nn.Module,
        bands: Sequence[str],
        class_names: Sequence[str],
        tile_size: int = 256,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        n_dates: int = 1,
        class_set: ClassSet | None = None,
        channels_last: bool = True,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module: nn.Module = module.eval()
        self.bands: tuple[str, ...] = tuple(bands)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.tile_size: int = tile_size
        self.n_dates: int = n_dates
        self.class_set: ClassSet | None = class_set
        self.channels_last: bool = channels_last
        if channels_last and n_dates == 1:
            self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._mean = self._per_band(mean, "mean")
        self._std = self._per_band(std, "std")
        if self._std is not None and bool((self._std <= 0).any()):
            raise ValueError(f"std must be positive for every band, got {list(std or [])}")
        check_segmenter(self)

    def _per_band(self, values: Sequence[float] | None, what: str) -> Tensor | None:
        if values is None:
            return None
        t = torch.as_tensor(list(values), dtype=torch.float32)
        if t.ndim != 1 or t.numel() != len(self.bands):
            raise ValueError(
                f"{what} needs one value per band ({len(self.bands)}: {list(self.bands)}), "
                f"got {t.numel()}"
            )
        return t.view(-1, 1, 1)

    def to(self, device: torch.device | str) -> TorchSegmenter:
        """Move the module and the normalisation constants to ``device``."""
        self.module.to(device)
        if self._mean is not None:
            self._mean = self._mean.to(device)
        if self._std is not None:
            self._std = self._std.to(device)
        return self

    @torch.inference_mode()
    def predict_proba(self, x: Tensor) -> Tensor:
        """Softmax over the module's logits of the (standardised) reflectance ``x``."""
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.module(x), dim=1)


def model_class_set(architecture: Mapping[str, object], class_names: Sequence[str]) -> ClassSet:
    """The classes of a saved model: ``architecture["class_set"]`` (or ``["classes"]``) when it
    is a :meth:`ClassSet.to_json <s2ssl.classes.ClassSet.to_json>` mapping (names and colours),
    else ``class_names`` (the fallback palette).

    Raises:
        ValueError: the declared class set is malformed or names other classes than
            ``class_names``.
    """
    declared = architecture.get("class_set", architecture.get("classes"))
    if not isinstance(declared, Mapping):
        return ClassSet.from_names(list(class_names))
    class_set = ClassSet.from_json(declared)
    if class_set.names != tuple(class_names):
        raise ValueError(
            f"the model's class set names {list(class_set.names)} but its classifier predicts "
            f"{list(class_names)}; the saved model is inconsistent — save it again"
        )
    return class_set


def segmenter_from_model(path: str | Path, tile_size: int = 256) -> TorchSegmenter:
    """A :class:`TorchSegmenter` of a fine-tuned single-date model saved by ``s2ssl finetune``.

    The model (``models/finetune/<task>/model``) standardises its own reflectance inputs, so no
    mean / std is passed here. Its bands and classes (with their colours, when the model records
    them: :func:`model_class_set`) come from the saved architecture.

    Raises:
        ValueError: ``path`` is not a saved model, or a time-series / scene / multi-label
            scene model (a map needs a single-date segmentation model).
    """
    model, meta = load_model(path)
    if isinstance(model, MultilabelSceneNet):
        raise ValueError(
            f"{path} holds a 'multilabel' model: it predicts a set of classes per image, not a "
            "class per pixel, and s2ssl predict writes maps only; apply it to images with "
            "s2ssl.models.downstream.load_model and MultilabelSceneNet.probabilities instead, "
            "or pass a single-date segmentation model, e.g. models/finetune/landcover/model"
        )
    if not isinstance(model, SegmentationNet):
        raise ValueError(
            f"{path} holds a {meta.get('architecture', {}).get('kind')!r} model; predicting a map "
            "needs a single-date segmentation model, e.g. models/finetune/landcover/model"
        )
    class_set = model_class_set(meta.get("architecture") or {}, model.classes)
    return TorchSegmenter(model, model.bands, model.classes, tile_size, class_set=class_set)
