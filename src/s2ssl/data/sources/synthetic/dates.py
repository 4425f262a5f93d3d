"""Acquisition dates of synthetic locations and the processing baseline of a date."""

from __future__ import annotations

import datetime as dt

import numpy as np

from s2ssl.bands import (
    processing_baseline_for,
)
from s2ssl.config import RegionSpec, SyntheticSource


def _days(start: dt.date, end: dt.date) -> int:
    return (end - start).days


def seasonal_dates(
    rng: np.random.Generator,
    start: dt.date,
    end: dt.date,
    n: int,
    interval_weeks: int,
    window: float,
) -> list[dt.date]:
    """SeCo sampling: a random reference date, then ``-interval``, ``-2·interval``, … weeks.

    Each acquisition falls within ± ``window`` days of its nominal date (the catalog search window);
    all dates lie in ``[start, end]`` and are returned oldest first.
    """
    span = (n - 1) * interval_weeks * 7
    w = int(np.floor(window))
    earliest = span + w
    latest = _days(start, end) - w
    if latest < earliest:
        raise ValueError(
            f"fetch period {start}..{end} is too short for {n} dates {interval_weeks} weeks apart"
        )
    ref = start + dt.timedelta(days=int(rng.integers(earliest, latest + 1)))
    jitter = rng.integers(-w, w + 1, size=n) if w > 0 else np.zeros(n, int)
    nominal = [ref - dt.timedelta(weeks=interval_weeks * k) for k in range(n - 1, -1, -1)]
    return [d + dt.timedelta(days=int(j)) for d, j in zip(nominal, jitter, strict=True)]


def season_dates(
    rng: np.random.Generator,
    start: dt.date,
    end: dt.date,
    region: RegionSpec,
    n: int,
    first_doy: int,
    last_doy: int,
    jitter: int,
) -> list[dt.date]:
    """``n`` dates over one growing season (northern doy range, shifted 6 months in the south)."""
    shift = 182 if region.hemisphere == "south" else 0
    offsets = np.linspace(first_doy - 1 + shift, last_doy - 1 + shift, n).round().astype(int)
    offsets += rng.integers(-jitter, jitter + 1, size=n) if jitter > 0 else 0
    offsets = np.maximum.accumulate(np.clip(offsets, 0, None))  # keep chronological order
    offsets = offsets + np.arange(n) * (np.diff(offsets, prepend=-1) <= 0)  # strictly increasing
    years = [
        y
        for y in range(start.year, end.year + 1)
        if dt.date(y, 1, 1) + dt.timedelta(days=int(offsets[0])) >= start
        and dt.date(y, 1, 1) + dt.timedelta(days=int(offsets[-1])) <= end
    ]
    if not years:
        raise ValueError(f"fetch period {start}..{end} holds no whole growing season")
    base = dt.date(int(rng.choice(years)), 1, 1)
    return [base + dt.timedelta(days=int(o)) for o in offsets]


def single_date(rng: np.random.Generator, start: dt.date, end: dt.date) -> list[dt.date]:
    """One acquisition anywhere in ``[start, end]``."""
    return [start + dt.timedelta(days=int(rng.integers(0, _days(start, end) + 1)))]


def baseline_for(cfg: SyntheticSource, date: dt.date) -> str:
    """The processing baseline of a synthetic acquisition on ``date``
    (``processing_baseline: by_date`` follows the real history, else the fixed value)."""
    if cfg.processing_baseline == "by_date":
        return processing_baseline_for(date)
    return cfg.processing_baseline
