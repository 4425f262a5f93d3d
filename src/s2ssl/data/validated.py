"""Validated datasets: what ``validate`` hands to training, without copying or touching raw data.

A validated dataset is a small directory beside the raw store::

    <out>/<name>/manifest.json      raw path (relative), raw fingerprint, counts
    <out>/<name>/accepted.parquet   position, sample_id, split of every sample that passed
    <out>/<name>/quarantine.parquet position, sample_id, split, reasons (every failed expectation)
    <out>/<name>/profile.parquet    the per-sample profile table the suite checked
    <out>/<name>/norm_stats.json    per-band normalisation statistics of the accepted samples

:func:`open_validated` returns a :meth:`~s2ssl.data.store.ShardedDataset.subset` view of the raw
store holding only the accepted samples, and refuses to open when the raw data changed since
validation (its fingerprint no longer matches).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from s2ssl.data.stats import NormStats
from s2ssl.data.store import INDEX_FILE, META_FILE, ShardedDataset, StoreError, open_dataset
from s2ssl.io import atomic_dir

MANIFEST: Final[str] = "manifest.json"
ACCEPTED: Final[str] = "accepted.parquet"
QUARANTINE: Final[str] = "quarantine.parquet"
PROFILE: Final[str] = "profile.parquet"
NORM_STATS: Final[str] = "norm_stats.json"
_HINT: Final[str] = "run `s2ssl validate` / `dvc repro validate`"


def fingerprint(raw_path: str | Path) -> str:
    """SHA-256 of a raw dataset's ``meta.json`` and ``index.parquet`` (they name every shard)."""
    h = hashlib.sha256()
    for name in (META_FILE, INDEX_FILE):
        h.update((Path(raw_path) / name).read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ValidatedDataset:
    """The accepted samples of a raw dataset, with their normalisation statistics."""

    path: Path
    store: ShardedDataset
    norm_stats: NormStats
    manifest: dict[str, Any]
    quarantine: pd.DataFrame


def write_validated(
    out: str | Path,
    raw: ShardedDataset,
    accepted: np.ndarray,
    quarantine: pd.DataFrame,
    profile: pd.DataFrame,
    norm_stats: NormStats,
    summary: dict[str, Any],
) -> Path:
    """Write a validated dataset directory atomically (the previous one survives a failure)."""
    out = Path(out).absolute()
    index = raw.index
    accepted = np.asarray(accepted, np.int64)
    rel = os.path.relpath(raw.path, out.parent)
    manifest = {
        "raw": Path(rel).as_posix(),
        "raw_fingerprint": fingerprint(raw.path),
        "n_raw": len(raw),
        "n_accepted": len(accepted),
        "n_quarantined": len(quarantine),
        **summary,
    }
    with atomic_dir(out) as tmp:
        pd.DataFrame(
            {
                "position": accepted,
                "sample_id": index["sample_id"].to_numpy()[accepted],
                "split": index["split"].to_numpy()[accepted],
            }
        ).to_parquet(tmp / ACCEPTED, index=False)
        quarantine.to_parquet(tmp / QUARANTINE, index=False)
        profile.to_parquet(tmp / PROFILE, index=False)
        norm_stats.save(tmp / NORM_STATS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def open_validated(path: str | Path) -> ValidatedDataset:
    """Open a validated dataset: the raw store restricted to the accepted samples."""
    path = Path(path).absolute()
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path} is not a validated dataset (no {MANIFEST}); {_HINT}") from None
    except json.JSONDecodeError as e:
        raise StoreError(f"{path / MANIFEST} is corrupt ({e}); {_HINT}") from None
    raw_path = (path.parent / manifest["raw"]).resolve()
    store = open_dataset(raw_path)
    if fingerprint(raw_path) != manifest.get("raw_fingerprint"):
        raise StoreError(
            f"the raw dataset {raw_path} changed since it was validated into {path}; {_HINT} again"
        )
    accepted = pd.read_parquet(path / ACCEPTED)
    positions = accepted["position"].to_numpy(np.int64)
    ids = store.index["sample_id"].to_numpy()[positions]
    if not np.array_equal(ids, accepted["sample_id"].to_numpy()):
        raise StoreError(f"{path / ACCEPTED} does not match {raw_path}; {_HINT} again")
    return ValidatedDataset(
        path=path,
        store=store.subset(positions),
        norm_stats=NormStats.load(path / NORM_STATS),
        manifest=manifest,
        quarantine=pd.read_parquet(path / QUARANTINE),
    )
