"""Integer class labels: argument checks and label-map utilities.

- :func:`boundary_mask`: the **boundary** pixels of a label map, as in the evaluation of CSCL
  (Tarasiou, Guler, Zafeiriou, "Context-self contrastive pretraining for crop type semantic
  segmentation", arXiv 2104.04310, 2021 / IEEE TGRS 2022): a pixel is a boundary pixel when any
  label in its 3×3 neighbourhood differs from its own; every other labelled pixel is
  **interior**. CSCL reports mIoU and overall accuracy separately on both sets, because its
  largest gains over plain cross-entropy are at parcel boundaries
  (:class:`~s2ssl.training.metrics.SegmentationMetrics`).
- :func:`majority_labels`: EuroSAT-like scene labels derived from land-cover patches.
- :func:`labelled_mask` and the checks (``check_*``) shared with :mod:`s2ssl.training.metrics`;
  all errors are :class:`ValueError` / :class:`TypeError` naming the expected and the received
  value.

Pixels whose label equals ``ignore_index`` (default :data:`s2ssl.classes.LABEL_IGNORE`, 255 =
unlabelled) are unlabelled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from s2ssl.classes import LABEL_IGNORE

__all__ = [
    "boundary_mask",
    "check_ignore_index",
    "check_int",
    "check_label_tensor",
    "check_tensor",
    "is_integer_tensor",
    "labelled_mask",
    "majority_labels",
]


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_ignore_index(value: object, num_classes: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"ignore_index must be an int or None, got {type(value).__name__} ({value!r})"
        )
    if num_classes is not None and 0 <= value < num_classes:
        raise ValueError(
            f"ignore_index={value} is a valid class index (num_classes={num_classes}); use a "
            f"value outside [0, {num_classes}) such as {LABEL_IGNORE}, and relabel the pixels "
            "of a class you want to exclude to that value"
        )
    return value


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def is_integer_tensor(value: Tensor) -> bool:
    return not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)


def check_label_tensor(name: str, value: object, ndim: int, layout: str) -> Tensor:
    tensor = check_tensor(name, value)
    if tensor.ndim != ndim:
        raise ValueError(
            f"{name} must have shape {layout} ({ndim} dims), got shape {tuple(tensor.shape)}"
        )
    if not is_integer_tensor(tensor):
        raise TypeError(f"{name} must hold integer class labels, got dtype {tensor.dtype}")
    return tensor


def labelled_mask(target: Tensor, ignore_index: int | None) -> Tensor:
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


# ----------------------------------------------------------------------------------------------
# label-map utilities
# ----------------------------------------------------------------------------------------------


def boundary_mask(
    labels: Tensor, kernel_size: int = 3, ignore_index: int | None = LABEL_IGNORE
) -> Tensor:
    """Boundary pixels of label maps, as in the CSCL evaluation (Tarasiou et al., 2021/22).

    A pixel is a boundary pixel when any label in its ``kernel_size × kernel_size`` neighbourhood
    (diagonals included) differs from its own label; the reference uses ``kernel_size=3``.

    - Neighbours outside the image do not count: the edge of a patch is not a boundary.
    - A pixel whose own label is ``ignore_index`` is never a boundary pixel (nor interior: it
      has no label to score).
    - A neighbour labelled ``ignore_index`` does not make a pixel a boundary pixel: unlabelled
      is "unknown", not "another class". Two classes separated only by a band of ignored pixels
      at least ``kernel_size // 2`` wide are therefore not boundaries of each other.
    - ``ignore_index=None`` treats every value as a class.

    Vectorised: one comparison of the whole batch per neighbourhood offset (``kernel_size² − 1``
    of them), no loop over pixels; exact for any integer dtype and any device.

    Args:
        labels: ``[N, H, W]`` integer label maps.
        kernel_size: odd neighbourhood size, >= 1 (1 gives no boundary pixel at all).
        ignore_index: label of unlabelled pixels, or ``None``.

    Returns:
        ``[N, H, W]`` bool tensor on the device of ``labels``, ``True`` at boundary pixels.
    """
    labels = check_label_tensor("labels", labels, 3, "[N, H, W]")
    kernel_size = check_int("kernel_size", kernel_size, 1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a centred window), got {kernel_size}")
    ignore_index = check_ignore_index(ignore_index)
    radius = kernel_size // 2
    _, height, width = labels.shape
    labelled = labelled_mask(labels, ignore_index)
    pad = (radius, radius, radius, radius)
    padded_labels = F.pad(labels, pad)
    # out-of-image neighbours are padded as "not labelled", so they never count
    padded_labelled = F.pad(labelled, pad, value=False)
    boundary = torch.zeros_like(labelled)
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            if dy == radius and dx == radius:
                continue
            neighbour = padded_labels[:, dy : dy + height, dx : dx + width]
            neighbour_labelled = padded_labelled[:, dy : dy + height, dx : dx + width]
            boundary |= neighbour_labelled & (neighbour != labels)
    return boundary & labelled


def majority_labels(labels: Tensor, num_classes: int, ignore_index: int = LABEL_IGNORE) -> Tensor:
    """Most frequent labelled class of every patch: scene labels from land-cover patches.

    Used to derive EuroSAT-like scene-classification labels from the land-cover segmentation
    patches. Pixels equal to ``ignore_index`` are not counted, even when they are the
    majority; ties go to the smaller class index; a patch without any labelled pixel gets
    ``ignore_index`` (so
    :class:`~s2ssl.training.metrics.ClassificationMetrics` and masked losses skip it).

    Args:
        labels: ``[N, H, W]`` integer label maps with values in ``[0, num_classes)`` or
            ``ignore_index``.
        num_classes: number of classes (>= 1).
        ignore_index: label of unlabelled pixels.

    Returns:
        ``[N]`` int64 tensor of scene labels on the device of ``labels``.
    """
    labels = check_label_tensor("labels", labels, 3, "[N, H, W]")
    num_classes = check_int("num_classes", num_classes, 1)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(
            f"ignore_index must be an int, got {type(ignore_index).__name__} ({ignore_index!r})"
        )
    check_ignore_index(ignore_index, num_classes)
    flat = labels.reshape(labels.shape[0], -1).long()
    labelled = flat != ignore_index
    out_of_range = labelled & ((flat < 0) | (flat >= num_classes))
    if bool(out_of_range.any()):
        bad = sorted({int(v) for v in flat[out_of_range].unique()[:10]})
        raise ValueError(
            f"labels must be in [0, {num_classes}) or ignore_index={ignore_index}, found {bad}"
        )
    counts = torch.zeros(flat.shape[0], num_classes, dtype=torch.long, device=flat.device)
    counts.scatter_add_(1, torch.where(labelled, flat, 0), labelled.long())
    # torch.argmax returns the first maximal index: ties go to the smaller class
    majority = counts.argmax(dim=1)
    return torch.where(counts.sum(dim=1) > 0, majority, torch.full_like(majority, ignore_index))
