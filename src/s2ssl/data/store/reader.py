"""Reading a dataset store: :class:`ShardedDataset` checks the layout and memory-maps shards
lazily."""

from __future__ import annotations

import copy
import json
import operator
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from s2ssl.classes import ClassSet
from s2ssl.data.store.format import (
    INDEX_FILE,
    META_FILE,
    RESERVED_COLUMNS,
    SCHEMA_VERSION,
    SHARDS_DIR,
    ArraySpec,
    StoreError,
)
from s2ssl.io import recover_dir as recover

_FETCH_HINT: Final[str] = "run `s2ssl fetch` / `dvc repro fetch` first"
_RECREATE_HINT: Final[str] = (
    "delete it and re-create it (re-run the stage that writes it, e.g. `dvc repro`)"
)


# --------------------------------------------------------------------------------------------
# reading


def _corrupt(path: Path, what: str) -> StoreError:
    return StoreError(f"dataset {path} is corrupt: {what}; {_RECREATE_HINT}")


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise StoreError(f"no dataset at {path}; {_FETCH_HINT} (or check the path)")
    if not path.is_dir():
        raise StoreError(f"{path} is not a dataset directory (expected a directory with meta.json)")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise StoreError(
            f"{path} has no {META_FILE}: it is not an s2ssl dataset or its write was interrupted; "
            f"{_RECREATE_HINT} ({_FETCH_HINT} for raw data)"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _corrupt(path, f"{META_FILE} is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise _corrupt(path, f"{META_FILE} is not a JSON object")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _corrupt(path, f"{META_FILE} has no integer schema_version")
    if version != SCHEMA_VERSION:
        newer = " (written by a newer s2ssl: upgrade s2ssl)" if version > SCHEMA_VERSION else ""
        raise StoreError(
            f"dataset {path} has schema_version {version}, this s2ssl reads "
            f"{SCHEMA_VERSION}{newer}; or {_RECREATE_HINT}"
        )
    expected = {"n_samples": int, "shard_size": int, "arrays": dict, "shards": list}
    for key, typ in expected.items():
        if not isinstance(meta.get(key), typ):
            raise _corrupt(path, f"{META_FILE} key {key!r} is missing or not a {typ.__name__}")
    if not isinstance(meta.get("attrs", {}), dict):
        raise _corrupt(path, f"{META_FILE} key 'attrs' is not an object")
    return meta


def _read_index(path: Path) -> pd.DataFrame:
    """Read ``index.parquet``; list columns come back as Python lists (not numpy arrays)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise _corrupt(path.parent, f"{INDEX_FILE} is missing") from None
    except (pa.ArrowException, OSError) as e:
        raise _corrupt(path.parent, f"{INDEX_FILE} cannot be read ({e})") from None
    df = table.to_pandas()
    for i, field in enumerate(table.schema):
        t = field.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            df[field.name] = pd.Series(table.column(i).to_pylist(), dtype=object, index=df.index)
    return df.reset_index(drop=True)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file, from its header only (no data read, no mapping)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            shape, dtype = arr.shape, arr.dtype
            del arr
            return tuple(shape), np.dtype(dtype)
        data_start = f.tell()
    size = path.stat().st_size
    expected = data_start + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if size < expected:
        raise ValueError(f"truncated: {size} bytes, the header announces {expected}")
    return tuple(shape), np.dtype(dtype)


class ShardedDataset:
    """A dataset directory opened for reading (use :func:`open_dataset`).

    ``index`` is the full index (with ``shard`` and ``row``), one row per sample, RangeIndex;
    sample ``i`` is position ``i`` in it. Shard arrays are memory-mapped lazily and cached per
    process; pickling drops the cache, so an instance can be sent to DataLoader workers.
    """

    path: Path
    meta: dict[str, Any]
    attrs: dict[str, Any]
    index: pd.DataFrame
    specs: dict[str, ArraySpec]

    @property
    def bands(self) -> tuple[str, ...]:
        """The bands on the ``image`` array's band axis (attr ``bands``), by name.

        Raises:
            StoreError: the dataset records no band list (written by an older s2ssl: fetch again).
        """
        bands = self.attrs.get("bands")
        if not isinstance(bands, list) or not bands:
            raise StoreError(
                f"{self.path} records no band list (attrs 'bands'); re-create it with "
                "`s2ssl fetch` / `dvc repro fetch`"
            )
        return tuple(str(b) for b in bands)

    def classes(self, label: str) -> ClassSet:
        """The classes of label array ``label`` (attr ``classes``, else ``<label>_classes``).

        Raises:
            StoreError: the dataset declares no classes for ``label``.
        """
        declared = (self.attrs.get("classes") or {}).get(label)
        if declared is None:
            declared = self.attrs.get(f"{label}_classes")
        if declared is None:
            raise StoreError(
                f"{self.path} declares no classes for its label array {label!r} (attrs "
                f"'classes.{label}'); re-create it with `s2ssl fetch`"
            )
        try:
            return ClassSet.from_json(declared)
        except ValueError as e:
            raise StoreError(f"{self.path}: the classes of {label!r} are invalid: {e}") from None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self.meta = _read_meta(self.path)
        self.attrs = dict(self.meta.get("attrs") or {})
        try:
            self.specs = {
                k: ArraySpec(k, v["dtype"], tuple(v["shape"]))
                for k, v in self.meta["arrays"].items()
            }
            self._shard_ids: list[str] = [str(s["id"]) for s in self.meta["shards"]]
            self._shard_ns: np.ndarray = np.array(
                [operator.index(s["n"]) for s in self.meta["shards"]], dtype=np.int64
            )
        except (KeyError, TypeError, StoreError) as e:
            raise _corrupt(self.path, f"bad 'arrays'/'shards' entry in {META_FILE} ({e})") from None
        n = self.meta["n_samples"]
        if int(self._shard_ns.sum()) != n or (self._shard_ns < 1).any():
            raise _corrupt(self.path, f"shard sizes {self._shard_ns.tolist()} do not sum to {n}")
        self.index = _read_index(self.path / INDEX_FILE)
        self._check_index()
        self._check_shard_files()
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._is_subset = False

    def _check_index(self) -> None:
        n = self.meta["n_samples"]
        missing = [c for c in RESERVED_COLUMNS if c not in self.index.columns]
        if missing:
            raise _corrupt(self.path, f"{INDEX_FILE} lacks the columns {missing}")
        if len(self.index) != n:
            raise _corrupt(self.path, f"{INDEX_FILE} has {len(self.index)} rows, meta says {n}")
        try:
            shard_of = self.index["shard"].to_numpy(dtype=np.int64)
            row_of = self.index["row"].to_numpy(dtype=np.int64)
        except (TypeError, ValueError):
            raise _corrupt(self.path, f"{INDEX_FILE} columns shard/row are not integers") from None
        n_shards = len(self._shard_ns)
        if n and (shard_of.min() < 0 or shard_of.max() >= n_shards):
            raise _corrupt(self.path, f"{INDEX_FILE} refers to shards outside 0..{n_shards - 1}")
        if n and ((row_of < 0).any() or (row_of >= self._shard_ns[shard_of]).any()):
            raise _corrupt(self.path, f"{INDEX_FILE} has rows beyond their shard's length")
        starts = np.concatenate([[0], np.cumsum(self._shard_ns)])
        if np.unique(starts[shard_of] + row_of).size != n:
            raise _corrupt(self.path, f"{INDEX_FILE} lists a shard row twice")
        self._shard_of: np.ndarray = shard_of
        self._row_of: np.ndarray = row_of
        # positions of each shard's samples in row order: _order[_starts[k]:_starts[k + 1]]
        self._order: np.ndarray = np.lexsort((row_of, shard_of))
        self._starts: np.ndarray = starts

    def _shard_file(self, name: str, k: int) -> Path:
        return self.path / SHARDS_DIR / self._shard_ids[k] / f"{name}.npy"

    def _expected(self, name: str, k: int) -> tuple[tuple[int, ...], np.dtype]:
        spec = self.specs[name]
        return (int(self._shard_ns[k]), *spec.shape), np.dtype(spec.dtype)

    def _check_shard_files(self) -> None:
        for k in range(len(self._shard_ids)):
            for name in self.specs:
                p = self._shard_file(name, k)
                if not p.is_file():
                    raise StoreError(
                        f"shard file {p} is missing: dataset {self.path} is incomplete; "
                        f"{_RECREATE_HINT} ({_FETCH_HINT} for raw data)"
                    )
                try:
                    got = _npy_header(p)
                except (ValueError, OSError) as e:
                    raise _corrupt(self.path, f"{p} is not a readable .npy file ({e})") from None
                self._check_header(p, got, self._expected(name, k))

    def _check_header(
        self,
        p: Path,
        got: tuple[tuple[int, ...], np.dtype],
        expected: tuple[tuple[int, ...], np.dtype],
    ) -> None:
        if got[0] != expected[0] or got[1] != expected[1]:
            raise _corrupt(
                self.path,
                f"{p} has shape {got[0]} dtype {got[1]}, {META_FILE} expects shape "
                f"{expected[0]} dtype {expected[1]}",
            )

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (
            f"ShardedDataset({str(self.path)!r}, n_samples={len(self)}, "
            f"shards={len(self._shard_ids)}, arrays={list(self.specs)})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}  # memmaps are re-opened lazily in the receiving process
        return state

    @property
    def array_names(self) -> tuple[str, ...]:
        """Names of the stored arrays, in declaration order."""
        return tuple(self.specs)

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self._shard_ids)

    def _check_name(self, name: str) -> ArraySpec:
        spec = self.specs.get(name)
        if spec is None:
            raise StoreError(
                f"dataset {self.path} has no array {name!r}; available: {list(self.specs)}"
            )
        return spec

    def _shard_array(self, name: str, k: int) -> np.ndarray:
        """The memory-mapped array ``name`` of shard ``k`` (opened once per process)."""
        key = (name, k)
        arr = self._cache.get(key)
        if arr is None:
            p = self._shard_file(name, k)
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise StoreError(
                    f"shard file {p} disappeared after the dataset was opened; {_RECREATE_HINT}"
                ) from None
            self._check_header(p, (arr.shape, arr.dtype), self._expected(name, k))
            self._cache[key] = arr
        return arr

    def _position(self, i: int) -> int:
        n = len(self)
        pos = operator.index(i)
        if pos < 0:
            pos += n
        if not 0 <= pos < n:
            raise IndexError(f"sample {i} out of range for a dataset of {n} samples")
        return pos

    def read(self, name: str, i: int) -> np.ndarray:
        """Sample ``i`` (position in :attr:`index`) of array ``name``: a read-only memmap view."""
        self._check_name(name)
        pos = self._position(i)
        return self._shard_array(name, int(self._shard_of[pos]))[int(self._row_of[pos]), ...]

    def read_many(self, name: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Samples ``indices`` of array ``name`` stacked into one in-memory array, order kept."""
        spec = self._check_name(name)
        idx = np.asarray(indices)
        if idx.size == 0:
            return np.empty((0, *spec.shape), dtype=spec.dtype)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise StoreError(f"indices must be a 1-D sequence of ints, got {idx.dtype} {idx.shape}")
        n = len(self)
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        if (idx < 0).any() or (idx >= n).any():
            raise IndexError(f"indices out of range for a dataset of {n} samples")
        out = np.empty((len(idx), *spec.shape), dtype=spec.dtype)
        shards = self._shard_of[idx]
        rows = self._row_of[idx]
        order = np.argsort(shards, kind="stable")
        bounds = np.flatnonzero(np.diff(shards[order])) + 1
        for group in np.split(order, bounds):
            out[group] = self._shard_array(name, int(shards[group[0]]))[rows[group]]
        return out

    def iter_shards(self, name: str) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Yield ``(index rows, array)`` per shard; row ``j`` of one is sample ``j``.

        The index rows keep their labels (= positions in this dataset); use this for fast
        vectorised passes (statistics, validation) over the whole dataset. The array is the
        memory-mapped shard, or for a :meth:`subset` the selected rows read into memory.
        """
        self._check_name(name)
        for k in range(self.n_shards):
            positions = self._order[self._starts[k] : self._starts[k + 1]]
            if self._is_subset and positions.size == 0:
                continue
            arr = self._shard_array(name, k)
            if self._is_subset:
                arr = arr[self._row_of[positions]]
            yield self.index.iloc[positions], arr

    def subset(self, positions: Sequence[int] | np.ndarray) -> ShardedDataset:
        """A view of the samples at ``positions`` (in that order), sharing the shard files.

        Used for validated datasets: the raw data stay untouched, the view excludes quarantined
        samples. Positions refer to this dataset; the view's index is renumbered from 0.
        """
        idx = np.asarray(positions)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise StoreError(
                f"positions must be a 1-D sequence of ints, got {idx.dtype} {idx.shape}"
            )
        idx = idx.astype(np.int64)
        n = len(self)
        if idx.size and ((idx < 0).any() or (idx >= n).any()):
            raise IndexError(f"positions out of range for a dataset of {n} samples")
        if np.unique(idx).size != idx.size:
            raise StoreError("positions of a subset must be unique")
        view = copy.copy(self)
        view._cache = self._cache  # same process, same memmaps
        view.index = self.index.iloc[idx].reset_index(drop=True)
        view._shard_of = self._shard_of[idx]
        view._row_of = self._row_of[idx]
        view._order = np.lexsort((view._row_of, view._shard_of))
        counts = np.bincount(view._shard_of, minlength=self.n_shards)
        view._starts = np.concatenate([[0], np.cumsum(counts)])
        view._is_subset = True
        return view


def open_dataset(path: str | Path) -> ShardedDataset:
    """Open the dataset directory ``path`` (repairing an interrupted commit first)."""
    recover(path)
    return ShardedDataset(path)
