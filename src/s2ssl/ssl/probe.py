"""Online evaluation during pre-training: a cosine kNN probe and a collapse monitor.

Monitor collapse (the std of L2-normalised embeddings) and run an online
probe every epoch; checkpoints are selected by the probe, never by the SSL loss.

* :func:`embedding_std` — the collapse monitor of SimSiam (Chen & He, CVPR 2021, §4.1): the
  standard deviation over the batch of the L2-normalised embeddings, averaged over dimensions.
  A collapsed representation gives 0; unit vectors spread uniformly over the sphere of
  dimension ``d`` give about ``1 / sqrt(d)``.
* :func:`knn_classify` / :func:`knn_accuracy` — the weighted kNN classifier of instance
  discrimination (Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", CVPR 2018) as used by DINO (Caron et al., ICCV 2021): cosine similarity to a
  labelled bank, the ``k`` nearest vote for their class with weight ``exp(cos / T)``
  (``voting="weighted"``, T = 0.07) or one vote each (``voting="majority"``).
* :func:`scene_labels`, :func:`sample_pixels`, :func:`gather_pixels` — labels and pixel picks of
  the probe sets (scene level: the majority class of a patch; pixel level: a fixed random set of
  labelled pixels per image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ProbeData",
    "ProbeSplit",
    "Voting",
    "embedding_std",
    "gather_pixels",
    "knn_accuracy",
    "knn_classify",
    "sample_pixels",
    "scene_labels",
]

Voting = Literal["weighted", "majority"]


def embedding_std(z: Tensor) -> Tensor:
    """Mean over dimensions of the per-dimension std (over rows) of L2-normalised ``z [N, D]``.

    0 for a collapsed representation (every row the same direction); about ``1 / sqrt(D)`` for
    directions spread uniformly over the sphere. Returns a float32 scalar (0 when ``N < 2``).
    """
    if not isinstance(z, Tensor) or z.ndim != 2:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"embedding_std expects embeddings [N, D], got {shape}")
    if z.shape[0] < 2:
        return torch.zeros((), device=z.device)
    unit = F.normalize(z.detach().float(), dim=1)
    return unit.std(dim=0, correction=0).mean()


def knn_classify(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    voting: Voting = "weighted",
    chunk_size: int = 4096,
) -> Tensor:
    """Predicted class ``[Q]`` of each query by cosine kNN over the labelled ``bank``.

    Args:
        bank: ``[M, D]`` embeddings of the labelled bank.
        bank_labels: ``[M]`` their classes in ``[0, num_classes)``.
        queries: ``[Q, D]`` embeddings to classify.
        num_classes: number of classes.
        k: neighbours (clipped to ``M``).
        temperature: T of the ``exp(cos / T)`` vote weights (``voting="weighted"``).
        voting: ``"weighted"`` (InstDisc / DINO) or ``"majority"`` (one vote per neighbour).
        chunk_size: queries per similarity block (bounds memory at ``chunk_size × M``).

    Ties go to the lowest class index.
    """
    for name, t in (("bank", bank), ("queries", queries)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            raise ValueError(f"{name} must be a [N, D] tensor")
    if bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"bank and queries must have the same dimension, got {bank.shape[1]} and "
            f"{queries.shape[1]}"
        )
    if bank_labels.shape != (bank.shape[0],):
        raise ValueError(
            f"bank_labels must have shape [{bank.shape[0]}], got {tuple(bank_labels.shape)}"
        )
    if bank.shape[0] == 0:
        raise ValueError("the kNN bank is empty: no labelled sample to vote")
    if num_classes < 1 or k < 1 or temperature <= 0:
        raise ValueError(
            f"need num_classes >= 1, k >= 1, temperature > 0; got {num_classes}, {k}, {temperature}"
        )
    if voting not in ("weighted", "majority"):
        raise ValueError(f"voting must be 'weighted' or 'majority', got {voting!r}")
    labels = bank_labels.long().to(bank.device)
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"bank_labels must lie in [0, {num_classes}), got {labels.unique()}")
    kk = min(k, bank.shape[0])
    b = F.normalize(bank.float(), dim=1)
    out = []
    for start in range(0, queries.shape[0], chunk_size):
        q = F.normalize(queries[start : start + chunk_size].float().to(b.device), dim=1)
        sims, idx = (q @ b.T).topk(kk, dim=1)
        weights = (sims / temperature).exp() if voting == "weighted" else torch.ones_like(sims)
        votes = torch.zeros(q.shape[0], num_classes, device=b.device)
        votes.scatter_add_(1, labels[idx], weights)
        out.append(votes.argmax(dim=1))
    if not out:
        return torch.zeros(0, dtype=torch.long, device=bank.device)
    return torch.cat(out)


def knn_accuracy(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    voting: Voting = "weighted",
) -> float:
    """Top-1 accuracy of :func:`knn_classify` on ``queries`` with true ``query_labels``."""
    if query_labels.shape != (queries.shape[0],):
        raise ValueError(
            f"query_labels must have shape [{queries.shape[0]}], got {tuple(query_labels.shape)}"
        )
    if queries.shape[0] == 0:
        raise ValueError("no query to classify: the probe's query set is empty")
    pred = knn_classify(
        bank,
        bank_labels,
        queries,
        num_classes=num_classes,
        k=k,
        temperature=temperature,
        voting=voting,
    )
    return float((pred.cpu() == query_labels.long().cpu()).float().mean())


def cut_tiles(x: Tensor, tile: int) -> Tensor:
    """Non-overlapping ``tile × tile`` tiles of ``[N, ..., H, W]``: ``[N · gh · gw, ..., t, t]``.

    Tiles of one sample are consecutive, in row-major order (``gh = H / tile``, ``gw = W /
    tile``). EuroSAT-like scenes are such tiles labelled by their majority land-cover class: a
    whole 64 px synthetic patch is nearly always majority "cropland", a 32 px tile is not.
    """
    *lead, h, w = x.shape
    if tile < 1 or h % tile or w % tile:
        raise ValueError(f"tile size {tile} must divide the image size {h}x{w}")
    n, inner = lead[0], lead[1:]
    gh, gw = h // tile, w // tile
    k = len(inner)
    y = x.reshape(n, *inner, gh, tile, gw, tile)
    # [n, *inner, gh, t, gw, t] -> [n, gh, gw, *inner, t, t]
    order = [0, k + 1, k + 3, *range(1, k + 1), k + 2, k + 4]
    return y.permute(order).reshape(n * gh * gw, *inner, tile, tile)


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
