"""Per-band normalisation statistics, computed once by ``validate``.

Statistics are exact: DN after the processing-baseline offset are integers, so each band's
values are counted in a histogram (one bin per DN) from which the mean, the standard deviation
and any quantile follow without sorting or sampling. Float stores are rounded to whole DN first
(1 DN = 1e-4 reflectance). Only valid, cloud-free pixels count: mask clear or snow, not nodata,
not NaN, not 0 DN in every band. Values are reported in reflectance units.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import MASK_CLEAR, MASK_SNOW, QUANTIFICATION_VALUE
from s2ssl.data.store import ShardedDataset
from s2ssl.io import write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress

_LOW: Final[int] = -1000
"""Smallest DN after the offset (raw DN 0 with offset -1000); the histogram starts here."""
_BINS: Final[int] = 65536 - _LOW


@dataclass(frozen=True)
class NormStats:
    """Per-band statistics in reflectance units, bands in ``bands`` order."""

    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    quantiles: tuple[float, float]
    low: tuple[float, ...]
    """Per-band value at ``quantiles[0]`` (e.g. the 2 % quantile)."""
    high: tuple[float, ...]
    """Per-band value at ``quantiles[1]`` (e.g. the 98 % quantile)."""
    n_pixels: int

    def __post_init__(self) -> None:
        n = len(self.bands)
        for name in ("mean", "std", "low", "high"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"NormStats.{name} has {len(getattr(self, name))} values, {n} bands"
                )
        if any(not np.isfinite(s) or s <= 0 for s in self.std):
            raise ValueError(f"NormStats.std must be finite and > 0, got {list(self.std)}")

    def select(self, bands: Sequence[str]) -> NormStats:
        """The statistics of ``bands`` only, in that order."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise ValueError(f"bands {missing} have no statistics; available: {list(self.bands)}")
        idx = [self.bands.index(b) for b in bands]

        def pick(values: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(values[i] for i in idx)

        return NormStats(
            tuple(bands),
            pick(self.mean),
            pick(self.std),
            self.quantiles,
            pick(self.low),
            pick(self.high),
            self.n_pixels,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_json`)."""
        d = asdict(self)
        d["units"] = "reflectance"
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NormStats:
        """Rebuild from :meth:`to_json` output."""
        try:
            return cls(
                bands=tuple(data["bands"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                quantiles=(float(data["quantiles"][0]), float(data["quantiles"][1])),
                low=tuple(float(v) for v in data["low"]),
                high=tuple(float(v) for v in data["high"]),
                n_pixels=int(data["n_pixels"]),
            )
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"not a normalisation statistics record ({e!r})") from None

    def save(self, path: str | Path) -> Path:
        """Write as JSON (atomically)."""
        return write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        """Read a JSON file written by :meth:`save`."""
        p = Path(path)
        try:
            return cls.from_json(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ValueError(
                f"normalisation statistics {p} not found; run `s2ssl validate` / "
                "`dvc repro validate` first"
            ) from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not valid JSON ({e}); re-run `s2ssl validate`") from None


def band_histograms(
    store: ShardedDataset,
    *,
    chunk_size: int = 32,
    progress: ProgressFactory = no_progress,
    description: str = "band statistics",
) -> np.ndarray:
    """Histograms [C, 66536] of DN after the offset (bin ``i`` = DN ``i - 1000``) over the valid,
    cloud-free pixels of every sample of ``store`` (pass a :meth:`~ShardedDataset.subset`)."""
    t, c = store.specs["image"].shape[:2]
    hist = np.zeros((c, _BINS), np.int64)
    offsets_col = store.index["dn_offset"] if "dn_offset" in store.index.columns else None
    has_mask = "mask" in store.specs
    images = store.iter_shards("image")
    masks = store.iter_shards("mask") if has_mask else None
    with progress(description, len(store)) as advance:
        for rows, image in images:
            mask = next(masks)[1] if masks is not None else None
            for lo in range(0, len(rows), chunk_size):
                sel = rows.iloc[lo : lo + chunk_size]
                img = np.asarray(image[lo : lo + chunk_size])
                if offsets_col is None:
                    off = np.zeros((len(sel), t), np.int64)
                else:
                    off = np.stack([np.asarray(o, np.int64) for o in offsets_col.loc[sel.index]])
                if img.dtype.kind == "f":
                    nan = np.isnan(img)
                    bad = nan.any(axis=2)
                    dn = np.rint(np.where(nan, 0, img)).astype(np.int64)
                else:
                    bad = np.zeros((img.shape[0], t, *img.shape[3:]), bool)
                    dn = img.astype(np.int64)
                good = ~bad & ~(dn == 0).all(axis=2)
                if mask is not None:
                    m = np.asarray(mask[lo : lo + chunk_size])
                    good &= (m == MASK_CLEAR) | (m == MASK_SNOW)
                dn += off[:, :, None, None, None] - _LOW
                np.clip(dn, 0, _BINS - 1, out=dn)
                for b in range(c):
                    hist[b] += np.bincount(dn[:, :, b][good], minlength=_BINS)
                advance(len(sel))
    return hist


def stats_from_histograms(
    hist: np.ndarray, bands: Sequence[str], quantiles: tuple[float, float]
) -> NormStats:
    """Exact mean / std / quantiles (reflectance) from :func:`band_histograms` output."""
    counts = hist.sum(axis=1)
    if (counts == 0).any():
        empty = [b for b, n in zip(bands, counts, strict=True) if n == 0]
        raise ValueError(
            f"no valid cloud-free pixel for band(s) {empty}: cannot compute normalisation "
            "statistics (is every sample cloudy or nodata?)"
        )
    values = (np.arange(hist.shape[1], dtype=np.float64) + _LOW) / QUANTIFICATION_VALUE
    mean = (hist * values).sum(axis=1) / counts
    var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / counts
    std = np.sqrt(var)
    std = np.where(std > 0, std, 1.0 / QUANTIFICATION_VALUE)
    cdf = np.cumsum(hist, axis=1) / counts[:, None]

    def quantile(q: float) -> tuple[float, ...]:
        return tuple(float(values[int(np.searchsorted(row, q, side="left"))]) for row in cdf)

    return NormStats(
        bands=tuple(bands),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        quantiles=(float(quantiles[0]), float(quantiles[1])),
        low=quantile(quantiles[0]),
        high=quantile(quantiles[1]),
        n_pixels=int(counts[0]),
    )
