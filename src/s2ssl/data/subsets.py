"""Sample selection for fine-tuning: label fractions and the region-transfer split.

Pure numpy (no torch), so the selection can be computed, tested and logged without a model.

- :func:`label_fraction_subset`: the labelled training subset for a label fraction (default
  1 %, 10 %, 100 %). Every sample is ranked once by a seeded hash of its id; the subset for a
  fraction is a prefix of that ranking, so subsets are deterministic, independent of the order
  in which ids are listed, and **nested** (1 % ⊂ 10 % ⊂ 100 %): adding labels never swaps out a
  sample, and differences between fractions measure the amount of labels only.
- :func:`label_set_strata`: the stratum of each multi-label sample (its label set; rare label
  sets pooled), what :func:`label_fraction_subset` stratifies multi-label data by.
- :func:`region_transfer_split`: pre-train / fine-tune on some regions, test on a held-out one
  (Embedding Earth's cross-region claim).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MIN_LABEL_SET_STRATUM",
    "fraction_label",
    "hash_rank",
    "label_fraction_subset",
    "label_set_strata",
    "pretrain_unit",
    "region_transfer_split",
]

_HASH_KEY = b"s2ssl.label_fraction"
"""blake2b key of the ranking hash: a fixed namespace, so rankings never change between runs."""

_ROUNDING_SLACK = 1e-9
"""Subtracted from ``fraction · n`` before rounding up, so that float noise such as
``0.07 * 100 == 7.000000000000001`` does not add a sample. Still monotone in the fraction."""


def fraction_label(fraction: float) -> str:
    """``0.01 -> "1"``, ``0.1 -> "10"``, ``1.0 -> "100"`` (percent, as short as exact)."""
    return f"{fraction * 100:.6g}"


def pretrain_unit(replicate: int, setting: str | None = None, fraction: float | None = None) -> str:
    """The name of one pre-training run: ``r<replicate>`` for a self-supervised method,
    ``r<replicate>.<setting>.f<pct>`` for one trained on the label subset of ``fraction`` in
    ``setting`` (CSCL stage 1)."""
    if setting is None:
        return f"r{replicate}"
    if fraction is None:
        raise ValueError("a pre-training unit with a setting needs its label fraction")
    return f"r{replicate}.{setting}.f{fraction_label(fraction)}"


def _check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str) or not isinstance(ids, Sequence | np.ndarray):
        raise TypeError(f"ids must be a sequence of str, got {type(ids).__name__}")
    id_list = list(ids)
    for sample_id in id_list:
        if not isinstance(sample_id, str):
            raise TypeError(
                f"every id must be a str, got {type(sample_id).__name__} ({sample_id!r})"
            )
    if len(set(id_list)) != len(id_list):
        duplicates = sorted(i for i, count in Counter(id_list).items() if count > 1)
        raise ValueError(
            f"ids must be unique (a sample's rank is a hash of its id), duplicated: "
            f"{duplicates[:10]}"
        )
    return id_list


def _check_int(name: str, value: object, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_fraction(fraction: object) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.number):
        raise TypeError(
            f"fraction must be a number in (0, 1], got {type(fraction).__name__} ({fraction!r})"
        )
    value = float(fraction)
    if not (0.0 < value <= 1.0):  # also rejects nan
        raise ValueError(
            f"fraction must be in (0, 1] (e.g. 0.01 for 1 % of the labels), got {fraction!r}"
        )
    return value


def hash_rank(ids: Sequence[str], seed: int) -> np.ndarray:
    """Position of every id in the seeded ranking (0 = first selected).

    The key of a sample is ``blake2b(f"{seed}:{id}", key=b"s2ssl.label_fraction")`` read as a
    big-endian uint64; ties (astronomically unlikely) are broken by the id itself, so the
    ranking depends only on the set of ids and the seed.

    Args:
        ids: unique sample ids.
        seed: any int; a different seed gives an unrelated ranking.

    Returns:
        int64 array, ``rank[i]`` is the rank of ``ids[i]``.
    """
    id_list = _check_ids(ids)
    seed = _check_int("seed", seed)
    keys = [
        int.from_bytes(
            hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=8, key=_HASH_KEY).digest(),
            "big",
        )
        for sample_id in id_list
    ]
    order = sorted(range(len(id_list)), key=lambda i: (keys[i], id_list[i]))
    rank = np.empty(len(id_list), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(id_list), dtype=np.int64)
    return rank


def _take(n: int, fraction: float, min_samples: int) -> int:
    """How many of ``n`` samples a fraction selects: ``min(n, max(min_samples, ⌈f·n⌉))``."""
    return min(n, max(min_samples, math.ceil(fraction * n - _ROUNDING_SLACK)))


def label_fraction_subset(
    ids: Sequence[str],
    fraction: float,
    seed: int,
    *,
    min_samples: int = 1,
    stratify: Sequence[int] | None = None,
) -> np.ndarray:
    """Positions (into ``ids``, sorted) of the labelled subset for a label fraction.

    Without ``stratify``: the first ``min(n, max(min_samples, ⌈fraction · n⌉))`` samples of the
    seeded ranking (:func:`hash_rank`). With ``stratify`` (one class per sample, e.g. the majority
    land-cover class of a patch): every class ``c`` contributes the first
    ``min(n_c, max(min_samples, ⌈fraction · n_c⌉))`` samples of its own ranking (the global
    ranking restricted to the class), so every class keeps at least one sample and the total
    may exceed ``⌈fraction · n⌉`` by fewer than the number of classes (one rounding per class).
    ``min_samples`` is a total without ``stratify`` and a per-class minimum with it.

    **Nesting.** The subset is always a prefix of a ranking that does not depend on the
    fraction, and the prefix length (per class, with ``stratify``) is non-decreasing in the
    fraction (``⌈·⌉``, ``max`` and ``min`` are monotone), so for ``f1 <= f2`` the subset of
    ``f1`` is contained in the subset of ``f2`` for the same ``ids``, ``seed``, ``min_samples``
    and ``stratify``. The product ``fraction · n`` is rounded up after removing float noise
    (1e-9), so ``0.07 · 100`` selects 7 samples, not 8.

    The result depends on the set of ``(id, class)`` pairs and the seed only, not on the order
    of ``ids``.

    Args:
        ids: unique sample ids (e.g. patch ids of the train split).
        fraction: share of the samples to keep, in ``(0, 1]``.
        seed: seed of the ranking.
        min_samples: lower bound on the number kept (capped at the number available), >= 1.
        stratify: optional class per sample, same length as ``ids``.

    Returns:
        Sorted int64 array of positions into ``ids``.
    """
    id_list = _check_ids(ids)
    fraction = _check_fraction(fraction)
    min_samples = _check_int("min_samples", min_samples, 1)
    rank = hash_rank(id_list, seed)
    if stratify is None:
        chosen = rank < _take(len(id_list), fraction, min_samples)
        return np.flatnonzero(chosen).astype(np.int64)
    if isinstance(stratify, str) or not isinstance(stratify, Sequence | np.ndarray):
        raise TypeError(
            f"stratify must be a sequence of int class labels, got {type(stratify).__name__}"
        )
    strata = list(stratify)
    if len(strata) != len(id_list):
        raise ValueError(
            f"stratify must give one class per id: got {len(strata)} classes for {len(id_list)} ids"
        )
    classes = np.asarray([_check_int("stratify entry", value) for value in strata], np.int64)
    chosen = np.zeros(len(id_list), dtype=bool)
    for value in np.unique(classes):
        members = np.flatnonzero(classes == value)
        by_rank = members[np.argsort(rank[members], kind="stable")]
        chosen[by_rank[: _take(len(members), fraction, min_samples)]] = True
    return np.flatnonzero(chosen).astype(np.int64)


MIN_LABEL_SET_STRATUM = 100
"""The fewest samples a label set needs to be a stratum of its own (:func:`label_set_strata`):
a 1 % subset then takes at least one of them by its share alone, not by the per-stratum
minimum."""


def label_set_strata(labels: np.ndarray, *, min_count: int = MIN_LABEL_SET_STRATUM) -> np.ndarray:
    """The stratum of every multi-label sample: its label set, rare label sets pooled.

    A label set (the combination of classes a sample carries, the empty set included) that at
    least ``min_count`` samples carry is a stratum of its own; the samples of every rarer label
    set share one pooled stratum (``0``). The frequent label sets are numbered ``1, 2, …`` in the
    lexicographic order of their multi-hot rows, so the strata depend on the set of samples only,
    not on their order. Stratifying by the whole label set keeps the label sets' shares, hence
    every class's share and its co-occurrences, in each label fraction; pooling bounds the number
    of strata (each costs up to one rounding and ``min_samples`` in
    :func:`label_fraction_subset`). The strata do not depend on the fraction, so the subsets
    stay nested (1 % ⊂ 10 % ⊂ 100 %).

    Args:
        labels: ``[n, K]`` multi-hot labels (0 / 1).
        min_count: the fewest samples of a label set of its own, >= 1.

    Returns:
        int64 ``[n]`` strata.

    Raises:
        ValueError: ``labels`` not ``[n, K]`` or holding a value other than 0 and 1.
    """
    min_count = _check_int("min_count", min_count, 1)
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"labels must be multi-hot [n, K], got shape {array.shape}")
    if array.size and not np.isin(array, (0, 1)).all():
        raise ValueError(
            f"labels must be multi-hot (0 / 1 only), got values {np.unique(array).tolist()}"
        )
    if array.shape[0] == 0:
        return np.zeros(0, np.int64)
    _sets, inverse, counts = np.unique(
        array.astype(np.uint8), axis=0, return_inverse=True, return_counts=True
    )
    frequent = counts >= min_count
    numbers = np.where(frequent, np.cumsum(frequent), 0).astype(np.int64)
    return numbers[np.asarray(inverse).reshape(-1)]


def region_transfer_split(
    regions: Sequence[str], target_region: str
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the source regions and of the held-out target region.

    The source samples are used for pre-training and fine-tuning, the target region's samples
    only for testing transfer to an unseen region.

    Args:
        regions: the region of every sample.
        target_region: the held-out region.

    Returns:
        ``(source, target)``: sorted int64 arrays of positions into ``regions``; together they
        cover every sample exactly once.

    Raises:
        ValueError: the target region does not occur (the message lists the available ones), or
            every sample is in it (nothing left to train on).
    """
    if isinstance(regions, str) or not isinstance(regions, Sequence | np.ndarray):
        raise TypeError(f"regions must be a sequence of str, got {type(regions).__name__}")
    if not isinstance(target_region, str):
        raise TypeError(
            f"target_region must be a str, got {type(target_region).__name__} ({target_region!r})"
        )
    region_list = list(regions)
    for region in region_list:
        if not isinstance(region, str):
            raise TypeError(f"every region must be a str, got {type(region).__name__}")
    available = sorted(set(region_list))
    if target_region not in available:
        raise ValueError(
            f"target_region {target_region!r} does not occur; available regions: {available}"
        )
    if len(available) == 1:
        raise ValueError(
            f"every sample is in target_region {target_region!r}, nothing would be left to "
            f"pre-train / fine-tune on; available regions: {available}"
        )
    is_target = np.asarray([region == target_region for region in region_list], dtype=bool)
    return (
        np.flatnonzero(~is_target).astype(np.int64),
        np.flatnonzero(is_target).astype(np.int64),
    )
