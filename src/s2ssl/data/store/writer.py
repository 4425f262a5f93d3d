"""Writing a dataset store atomically: :class:`DatasetWriter` fills a hidden sibling directory
shard by shard and swaps it in on commit."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from s2ssl.data.store.format import (
    INDEX_FILE,
    META_FILE,
    RESERVED_COLUMNS,
    SCHEMA_VERSION,
    SHARDS_DIR,
    ArraySpec,
    StoreError,
)
from s2ssl.io import fsync_dir as _fsync_dir
from s2ssl.io import hidden_siblings as _siblings
from s2ssl.io import new_sibling as _new_sibling
from s2ssl.io import recover_dir as recover
from s2ssl.io import remove_tree as _rmtree
from s2ssl.io import replace_dir

# --------------------------------------------------------------------------------------------
# small file-system helpers


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _normalise_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``attrs`` as plain JSON values (numpy scalars/arrays, paths and dates converted)."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise StoreError(f"attrs must be a mapping, got {type(attrs).__name__}")
    try:
        return json.loads(json.dumps(dict(attrs), default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise StoreError(
            f"attrs must be JSON-serialisable (str keys; numbers, strings, lists, dicts; "
            f"no NaN/inf): {e}"
        ) from None


# --------------------------------------------------------------------------------------------
# writing


def _check_array(name: str, value: Any, spec: ArraySpec, n: int) -> np.ndarray:
    """Validate one appended array against its spec and the number of index rows."""
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        raise StoreError(
            f"array {name!r}: got an object array; expected dtype {spec.dtype} "
            f"(build it with np.asarray(..., dtype={spec.dtype!r}))"
        )
    if arr.ndim != 1 + len(spec.shape) or arr.shape[1:] != spec.shape:
        raise StoreError(
            f"array {name!r}: expected shape [n, *{list(spec.shape)}] (per-sample shape "
            f"{spec.shape}), got {arr.shape}; per-sample shapes must match the ArraySpec"
        )
    if arr.shape[0] != n:
        raise StoreError(
            f"array {name!r} has {arr.shape[0]} samples but rows has {n} rows; "
            "pass exactly one index row per sample"
        )
    target = np.dtype(spec.dtype)
    if not np.can_cast(arr.dtype, target, casting="safe"):
        raise StoreError(
            f"array {name!r}: dtype {arr.dtype} cannot be cast safely to the declared "
            f"{target}; convert it explicitly (e.g. np.clip(a, lo, hi).astype({target.name!r})) "
            f"or declare ArraySpec({name!r}, {arr.dtype.name!r}, ...)"
        )
    if arr.dtype.kind in "fc" and arr.size and not np.isfinite(arr).all():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise StoreError(
            f"array {name!r}: {bad} NaN/inf value(s); replace them (e.g. np.nan_to_num) or "
            "record invalid pixels in a mask array"
        )
    return arr


def _write_index(index: pd.DataFrame, path: Path) -> None:
    try:
        table = pa.Table.from_pandas(index, preserve_index=False)
    except pa.ArrowException as e:
        bad = "?"
        for column in index.columns:
            try:
                pa.Table.from_pandas(index[[column]], preserve_index=False)
            except pa.ArrowException:
                bad = str(column)
                break
        raise StoreError(
            f"index column {bad!r} cannot be stored in parquet ({e}); use scalars or lists "
            "whose items all have one type (str, int, float, bool)"
        ) from None
    with open(path, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())


class DatasetWriter:
    """Write a dataset shard by shard into a hidden temporary directory, then swap it in.

    Memory stays bounded: at most one shard of samples is buffered. As a context manager a clean
    exit commits, an exception aborts (the previous dataset at ``path``, if any, stays untouched)
    and propagates. If ``path`` is a symlink, its target is replaced and the link kept::

        with DatasetWriter(path, [ArraySpec("image", "uint16", (T, C, H, W))]) as w:
            for arrays, rows in chunks:
                w.append(arrays, rows)
    """

    def __init__(
        self,
        path: str | Path,
        arrays: Sequence[ArraySpec],
        *,
        name: str | None = None,
        shard_size: int = 256,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.path: Path = Path(path).absolute()
        if self.path.is_symlink():  # e.g. data/raw -> /mnt/big/raw: replace the target
            self.path = self.path.resolve()
        if isinstance(shard_size, bool) or not isinstance(shard_size, int | np.integer):
            raise StoreError(f"shard_size must be a positive int, got {shard_size!r}")
        if shard_size < 1:
            raise StoreError(f"shard_size must be >= 1, got {shard_size}")
        specs = list(arrays)
        if not specs or not all(isinstance(s, ArraySpec) for s in specs):
            raise StoreError("declare at least one array, as a sequence of ArraySpec")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise StoreError(f"array names must be unique, got {names}")
        self.specs: dict[str, ArraySpec] = {s.name: s for s in specs}
        self.shard_size: int = int(shard_size)
        self.name: str = name if name is not None else Path(path).name
        self.attrs: dict[str, Any] = _normalise_attrs(attrs)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        recover(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"{self.path} exists and is not a directory; remove it or choose another path"
            )
        if self.path.is_dir() and any(self.path.iterdir()) and not (self.path / META_FILE).exists():
            raise StoreError(
                f"refusing to replace {self.path}: it is not empty and not an s2ssl dataset "
                f"(no {META_FILE}); remove it or choose another path"
            )
        for stale in _siblings(self.path, "tmp"):
            _rmtree(stale)
        if self.path.exists():
            for stale in _siblings(self.path, "old"):
                _rmtree(stale)

        self._tmp: Path = _new_sibling(self.path, "tmp")
        (self._tmp / SHARDS_DIR).mkdir(parents=True)
        self._buffers: dict[str, np.ndarray] = {}
        self._filled = 0
        self._pending_rows: list[pd.DataFrame] = []
        self._index_parts: list[pd.DataFrame] = []
        self._shards: list[dict[str, Any]] = []
        self._columns: list[str] | None = None
        self._n = 0
        self._state = "open"  # open | failed | committed | aborted

    @property
    def n_samples(self) -> int:
        """Samples appended so far (written or buffered)."""
        return self._n + self._filled

    def _check_open(self, action: str) -> None:
        if self._state == "open":
            return
        if self._state == "failed":
            raise StoreError(
                f"cannot {action}: an earlier append failed while writing; call abort() and "
                "write the dataset again"
            )
        raise StoreError(f"cannot {action}: this writer is already {self._state}")

    def append(self, arrays: Mapping[str, np.ndarray], rows: pd.DataFrame) -> None:
        """Add ``n`` samples: one ``[n, *spec.shape]`` array per declared name and ``n`` index rows.

        Every array must be safely castable to its declared dtype (no float -> int, no
        int64 -> uint16), have the declared per-sample shape and no NaN/inf. ``rows`` must have
        the same columns at every call and must not contain ``shard`` or ``row``.
        """
        self._check_open("append")
        if not isinstance(rows, pd.DataFrame):
            raise StoreError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
        if not isinstance(arrays, Mapping):
            raise StoreError(f"arrays must be a mapping name -> array, got {type(arrays).__name__}")
        missing = [k for k in self.specs if k not in arrays]
        extra = [str(k) for k in arrays if k not in self.specs]
        if missing or extra:
            raise StoreError(
                f"append needs exactly the declared arrays {list(self.specs)}; "
                f"missing {missing}, unexpected {extra}"
            )
        n = len(rows)
        checked = {k: _check_array(k, arrays[k], spec, n) for k, spec in self.specs.items()}
        columns = list(rows.columns)
        if not all(isinstance(c, str) for c in columns):
            raise StoreError(f"index column names must be strings, got {columns}")
        if len(set(columns)) != len(columns):
            raise StoreError(f"index columns must be unique, got {columns}")
        reserved = [c for c in RESERVED_COLUMNS if c in columns]
        if reserved:
            raise StoreError(
                f"index columns {reserved} are reserved (the writer adds them); rename them"
            )
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise StoreError(
                f"rows must have the same columns at every append: expected {self._columns}, "
                f"got {columns}"
            )
        rows = rows.reset_index(drop=True)
        try:
            start = 0
            while start < n:
                take = min(n - start, self.shard_size - self._filled)
                stop = start + take
                if self._filled == 0 and take == self.shard_size:  # a whole shard: no copy
                    self._write_shard(
                        {k: a[start:stop] for k, a in checked.items()}, rows.iloc[start:stop]
                    )
                else:
                    for k, a in checked.items():
                        buf = self._buffers.get(k)
                        if buf is None:
                            spec = self.specs[k]
                            buf = np.empty((self.shard_size, *spec.shape), dtype=spec.dtype)
                            self._buffers[k] = buf
                        buf[self._filled : self._filled + take] = a[start:stop]
                    self._pending_rows.append(rows.iloc[start:stop])
                    self._filled += take
                    if self._filled == self.shard_size:
                        self._flush()
                start = stop
        except BaseException:
            self._state = "failed"
            raise

    def _flush(self) -> None:
        if self._filled == 0:
            return
        arrays = {k: buf[: self._filled] for k, buf in self._buffers.items()}
        rows = pd.concat(self._pending_rows, ignore_index=True)
        self._write_shard(arrays, rows)
        self._filled = 0
        self._pending_rows = []

    def _write_shard(self, arrays: Mapping[str, np.ndarray], rows: pd.DataFrame) -> None:
        k = len(self._shards)
        shard_id = f"{k:05d}"
        shard_dir = self._tmp / SHARDS_DIR / shard_id
        shard_dir.mkdir()
        for name, arr in arrays.items():
            target = np.dtype(self.specs[name].dtype)
            _save_npy(shard_dir / f"{name}.npy", np.ascontiguousarray(arr, dtype=target))
        _fsync_dir(shard_dir)
        part = rows.reset_index(drop=True).copy()
        part["shard"] = np.full(len(part), k, dtype=np.int64)
        part["row"] = np.arange(len(part), dtype=np.int64)
        self._index_parts.append(part)
        self._shards.append({"id": shard_id, "n": len(part)})
        self._n += len(part)

    def _build_index(self) -> pd.DataFrame:
        if self._index_parts:
            return pd.concat(self._index_parts, ignore_index=True)
        empty: dict[str, pd.Series] = {c: pd.Series(dtype=object) for c in self._columns or []}
        empty.update({c: pd.Series(dtype=np.int64) for c in RESERVED_COLUMNS})
        return pd.DataFrame(empty)

    def commit(self) -> Path:
        """Write the last shard, the index and meta.json, then atomically replace ``path``."""
        self._check_open("commit")
        try:
            self._flush()
            _write_index(self._build_index(), self._tmp / INDEX_FILE)
            meta = {
                "schema_version": SCHEMA_VERSION,
                "name": self.name,
                "n_samples": self._n,
                "shard_size": self.shard_size,
                "arrays": {
                    s.name: {"dtype": s.dtype, "shape": list(s.shape)} for s in self.specs.values()
                },
                "shards": self._shards,
                "attrs": self.attrs,
            }
            text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
            _write_bytes(self._tmp / META_FILE, text.encode("utf-8"))
            _fsync_dir(self._tmp / SHARDS_DIR)
            _fsync_dir(self._tmp)
            self._swap_in()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self._buffers = {}
        return self.path

    def _swap_in(self) -> None:
        replace_dir(self._tmp, self.path)

    def abort(self) -> None:
        """Discard everything written so far (the temporary directory); idempotent."""
        if self._state != "committed":
            _rmtree(self._tmp)
            self._state = "aborted"
        self._buffers = {}
        self._pending_rows = []

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if self._state == "open":
                self.commit()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (
            f"DatasetWriter({str(self.path)!r}, arrays={list(self.specs)}, "
            f"n_samples={self.n_samples}, state={self._state!r})"
        )


def write_dataset(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    index: pd.DataFrame,
    *,
    name: str | None = None,
    shard_size: int = 256,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write in-memory arrays (each ``[n, ...]``) and their index in one go; specs are inferred."""
    specs = []
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.ndim == 0:
            raise StoreError(f"array {key!r}: expected shape [n, ...], got a scalar")
        specs.append(ArraySpec(key, str(arr.dtype), tuple(arr.shape[1:])))
    with DatasetWriter(path, specs, name=name, shard_size=shard_size, attrs=attrs) as writer:
        writer.append(arrays, index)
    return writer.path
