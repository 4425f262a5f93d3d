"""The data of the online probe during pre-training: labels, pixel picks and the probe sets.

Monitor collapse (:func:`s2ssl.training.knn.embedding_std`) and run an online kNN probe
(:func:`s2ssl.training.knn.knn_accuracy`) every epoch; checkpoints are selected by the probe,
never by the SSL loss. This module holds the probe's data:

* :func:`scene_labels`, :func:`sample_pixels`, :func:`gather_pixels` — labels and pixel picks of
  the probe sets (scene level: the majority class of a patch; pixel level: a fixed random set of
  labelled pixels per image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "ProbeData",
    "ProbeSplit",
    "gather_pixels",
    "sample_pixels",
    "scene_labels",
]


def scene_labels(label_maps: Tensor, num_classes: int, ignore: Sequence[int] = (255,)) -> Tensor:
    """Majority class ``[N]`` of each label map ``[N, H, W]`` (``ignore`` values excluded).

    A map without any counted pixel gets ``-1``; ties go to the lowest class index.
    """
    if label_maps.ndim != 3:
        raise ValueError(f"label_maps must be [N, H, W], got {tuple(label_maps.shape)}")
    flat = label_maps.reshape(label_maps.shape[0], -1).long()
    keep = (flat >= 0) & (flat < num_classes)
    for value in ignore:
        keep &= flat != value
    counts = torch.zeros(flat.shape[0], num_classes, dtype=torch.long)
    counts.scatter_add_(1, flat.clamp(0, num_classes - 1), keep.long())
    labels = counts.argmax(dim=1)
    return torch.where(counts.sum(dim=1) > 0, labels, torch.full_like(labels, -1))


def sample_pixels(
    label_maps: Tensor,
    per_image: int,
    generator: torch.Generator,
    *,
    num_classes: int,
    exclude: Sequence[int] = (255,),
) -> tuple[Tensor, Tensor, Tensor]:
    """A fixed random set of labelled pixels per image, for pixel-level probes.

    Returns ``(pixels, labels, valid)``, each ``[N, per_image]``: flat pixel indices
    ``y · W + x`` (distinct within an image), their labels, and whether the pick is real (False
    where an image has fewer than ``per_image`` eligible pixels). Pixels whose label is in
    ``exclude`` or outside ``[0, num_classes)`` are never picked.
    """
    if label_maps.ndim != 3:
        raise ValueError(f"label_maps must be [N, H, W], got {tuple(label_maps.shape)}")
    n = label_maps.shape[0]
    flat = label_maps.reshape(n, -1).long()
    if per_image > flat.shape[1]:
        raise ValueError(f"per_image {per_image} exceeds the {flat.shape[1]} pixels of an image")
    eligible = (flat >= 0) & (flat < num_classes)
    for value in exclude:
        eligible &= flat != value
    scores = torch.rand(flat.shape, generator=generator)
    scores = torch.where(eligible, scores, torch.full_like(scores, -1.0))
    top, pixels = scores.topk(per_image, dim=1)
    labels = torch.gather(flat, 1, pixels)
    return pixels, labels, top >= 0


def gather_pixels(features: Tensor, pixels: Tensor) -> Tensor:
    """Features ``[N, P, D]`` at flat pixel indices ``[N, P]`` of maps ``[N, D, H, W]``."""
    if features.ndim != 4 or pixels.ndim != 2 or pixels.shape[0] != features.shape[0]:
        raise ValueError(
            f"need features [N, D, H, W] and pixels [N, P], got {tuple(features.shape)} and "
            f"{tuple(pixels.shape)}"
        )
    n, d = features.shape[:2]
    flat = features.reshape(n, d, -1)
    idx = pixels.to(features.device)[:, None, :].expand(n, d, pixels.shape[1])
    return torch.gather(flat, 2, idx).transpose(1, 2)


@dataclass(frozen=True)
class ProbeSplit:
    """One side of a probe (the labelled bank or the queries), kept in memory.

    Attributes:
        image: model inputs before normalisation (int16 DN or float reflectance),
            ``[N, C, H, W]`` or ``[N, T, C, H, W]``.
        labels: scene level ``[N]``; pixel level ``[N, P]``.
        pixels: pixel level only, ``[N, P]`` flat pixel indices (None for scene level).
        valid: pixel level only, ``[N, P]`` bool (None for scene level).
        doy: ``[N, T]`` day of year for time series, else None.
    """

    image: Tensor
    labels: Tensor
    pixels: Tensor | None = None
    valid: Tensor | None = None
    doy: Tensor | None = None

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def count(self) -> int:
        """Number of labelled items (images, or valid pixels)."""
        return len(self) if self.valid is None else int(self.valid.sum())


@dataclass(frozen=True)
class ProbeData:
    """A kNN probe: bank and queries, the number of classes and the level."""

    bank: ProbeSplit
    queries: ProbeSplit
    num_classes: int
    level: Literal["scene", "pixel"]
    description: str = ""
