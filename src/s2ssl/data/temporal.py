"""Bringing image time series of any length to the fixed number of dates a network takes.

A time-series dataset may hold series of different lengths, stored padded to the longest
(``T_max``): the index column ``n_dates`` gives each sample's number of real dates, which are the
first ``n_dates`` positions in time order (padded positions: day of year 0, DN offset 0, image 0,
mask 255). Without that column every sample has all ``T_max`` dates. The 3-D U-Net takes a fixed
number of dates ``T``; this module picks which of a sample's ``n`` real dates it sees, and the
day of year of each picked date goes with it:

* **training** (:func:`random_positions`): a random subset of ``T`` of the ``n`` real dates, in
  time order, drawn again for every sample at every optimiser step from a generator seeded with
  the run's seed and the step (a resumed or repeated run draws the same subsets);
* **validation, test, prediction** (:func:`even_positions`): the deterministic even spread,
  positions ``round(linspace(0, n - 1, T))`` with halves rounded up, so the first and the last
  real date are always kept;
* **a series of exactly T dates** is taken whole (no draw), in training as well;
* **a series shorter than T** (``n < T``) gets the even spread in training as well: some dates
  appear twice (``n = 2, T = 4``: positions ``[0, 0, 1, 1]``); a padded position is never
  picked, so the network never sees an empty frame.

The training rule follows the ``random_subseq`` of DeepSatModels' ``CutOrPad`` transform (the
CSCL authors' code: ``torch.randperm(n)[:T].sort()``, a uniformly random set of ``T`` distinct
dates kept in time order). There it is switched on for the MTLCC data only, and it samples at
evaluation too; its PASTIS and France transforms instead keep the first ``T`` dates
(``from_start``), and every variant pads a shorter series with zero frames. Here evaluation is
deterministic (the even spread) and short series repeat real dates instead of zero padding.

When a run sets no ``n_dates`` (``null``), ``T`` is the dataset's length ``T_max``, which every
sample must then have (:func:`resolve_n_dates`): the selection is the identity and results are
those of the whole series.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import torch
from torch import Tensor

from s2ssl.data.store import ShardedDataset, StoreError

__all__ = [
    "N_DATES_COLUMN",
    "TEMPORAL_RULE",
    "even_positions",
    "random_positions",
    "resolve_n_dates",
    "select_dates",
    "series_lengths",
    "temporal_sampling",
]

N_DATES_COLUMN: Final[str] = "n_dates"
"""Index column: the number of real dates of each sample (the first ones, in time order)."""

TEMPORAL_RULE: Final[str] = "random_subset_train_even_spread_eval"
"""Name of the date-selection rule of this module (recorded with runs and saved models)."""


def even_positions(n: int, t: int) -> np.ndarray:
    """The even spread of ``t`` positions over a series of ``n`` real dates.

    Positions ``round(linspace(0, n - 1, t))`` with halves rounded up, computed exactly in
    integers: ``(2 i (n - 1) + (t - 1)) // (2 (t - 1))`` for ``i = 0 … t - 1`` (``t = 1``:
    ``[0]``). Increasing; with ``n >= t`` distinct and including ``0`` and ``n - 1``; with
    ``n < t`` some positions repeat.

    Raises:
        ValueError: ``n`` or ``t`` is below 1.
    """
    if n < 1 or t < 1:
        raise ValueError(f"need at least one date and one position, got n={n}, t={t}")
    if t == 1:
        return np.zeros(1, np.int64)
    i = np.arange(t, dtype=np.int64)
    return (2 * i * (n - 1) + (t - 1)) // (2 * (t - 1))


def random_positions(n: int, t: int, generator: torch.Generator) -> np.ndarray:
    """A random subset of ``t`` of ``n`` real dates, in time order (the training rule).

    ``n > t``: ``t`` distinct positions drawn uniformly from ``0 … n - 1`` with ``generator``
    (``randperm(n)[:t]``, sorted); ``n == t``: every date (no draw); ``n < t``: the even spread
    with repeated dates (:func:`even_positions`, no draw).

    Raises:
        ValueError: ``n`` or ``t`` is below 1.
    """
    if n < 1 or t < 1:
        raise ValueError(f"need at least one date and one position, got n={n}, t={t}")
    if n == t:
        return np.arange(t, dtype=np.int64)
    if n < t:
        return even_positions(n, t)
    perm = torch.randperm(n, generator=generator)[:t]
    return np.sort(perm.numpy()).astype(np.int64)


def series_lengths(store: ShardedDataset, positions: np.ndarray) -> np.ndarray | None:
    """The number of real dates of the samples at ``positions`` (int64 ``[n]``), or ``None``
    when the index has no ``n_dates`` column (every sample has all the stored dates).

    Raises:
        StoreError: a length outside ``1 … T_max`` (the stored series length).
    """
    if N_DATES_COLUMN not in store.index.columns:
        return None
    t_max = int(store.specs["image"].shape[0])
    lengths = np.asarray(store.index[N_DATES_COLUMN].to_numpy()[positions], dtype=np.int64)
    bad = lengths[(lengths < 1) | (lengths > t_max)]
    if bad.size:
        raise StoreError(
            f"{store.path}: column {N_DATES_COLUMN!r} must lie in 1 … {t_max} (the stored series "
            f"length), got {sorted(set(bad.tolist()))[:5]}; re-create the dataset"
        )
    return lengths


def resolve_n_dates(
    configured: int | None, lengths: Sequence[np.ndarray | None], t_max: int, key: str
) -> int:
    """The number of dates ``T`` the network takes.

    ``configured`` (the ``n_dates`` setting named ``key``) when set; ``None``: the stored length
    ``t_max``, which every sample must have (``lengths``: :func:`series_lengths` of each part of
    the data, ``None`` for a part without the column).

    Raises:
        ValueError: ``configured`` is ``None`` and some series are shorter than ``t_max``.
    """
    if configured is not None:
        return int(configured)
    short = [arr[arr != t_max] for arr in lengths if arr is not None]
    found = np.concatenate(short) if short else np.zeros(0, np.int64)
    if found.size:
        raise ValueError(
            f"the time series have different lengths ({int(found.min())} to {t_max} dates) and "
            f"{key} is null; set {key} to the number of dates the network takes (a multiple of "
            "4, e.g. 16): training draws that many of each series' dates, evaluation spreads "
            "them evenly"
        )
    return int(t_max)


def select_dates(
    image: Tensor,
    doy: Tensor,
    lengths: Tensor | None,
    t: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``t`` dates of each series of a batch, with their days of year.

    Args:
        image: ``[N, T_max, ...]`` series (padded after each sample's real dates).
        doy: ``[N, T_max]`` day of year of every stored date.
        lengths: ``[N]`` real dates per sample (``None``: all ``T_max``).
        t: the number of dates to return.
        generator: the training rule (:func:`random_positions`) with this generator; ``None``:
            the even spread of evaluation (:func:`even_positions`).

    Returns:
        ``(image [N, t, ...], doy [N, t])``; the inputs themselves when every sample has
        exactly ``t`` real dates and ``T_max == t``.

    Raises:
        ValueError: mismatched shapes, or a length outside ``1 … T_max``.
    """
    if image.ndim < 2 or doy.ndim != 2 or tuple(doy.shape) != tuple(image.shape[:2]):
        raise ValueError(
            f"select_dates needs image [N, T, ...] and doy [N, T], got {list(image.shape)} and "
            f"{list(doy.shape)}"
        )
    n, t_max = int(image.shape[0]), int(image.shape[1])
    counts = (
        np.full(n, t_max, np.int64)
        if lengths is None
        else np.asarray(lengths.detach().cpu(), dtype=np.int64).reshape(-1)
    )
    if counts.shape != (n,) or bool(((counts < 1) | (counts > t_max)).any()):
        raise ValueError(
            f"select_dates: lengths must be {n} values in 1 … {t_max}, got {counts.tolist()[:8]}"
        )
    if t == t_max and bool((counts == t).all()):
        return image, doy
    rows = [
        random_positions(int(c), t, generator)
        if generator is not None
        else even_positions(int(c), t)
        for c in counts
    ]
    index = torch.from_numpy(np.stack(rows)).to(image.device)
    picked_doy = torch.gather(doy, 1, index.to(doy.device))
    shape = (n, t, *([1] * (image.ndim - 2)))
    picked = torch.gather(image, 1, index.view(shape).expand(n, t, *image.shape[2:]))
    return picked, picked_doy


def temporal_sampling(t: int) -> dict[str, Any]:
    """The date selection of a network taking ``t`` dates, as recorded with runs and models."""
    return {
        "n_dates": int(t),
        "rule": TEMPORAL_RULE,
        "train": "random subset of n_dates real dates in time order, redrawn per sample per step",
        "eval": "even spread: positions round(linspace(0, n - 1, n_dates)), halves up",
        "short_series": "even spread with repeated dates (never a padded date)",
    }
