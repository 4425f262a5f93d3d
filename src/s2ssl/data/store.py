"""Sharded, memory-mappable dataset store.

A dataset is a directory::

    <path>/meta.json                      schema version, array specs, shard list, free attrs
    <path>/index.parquet                  one row per sample, plus the columns shard and row
    <path>/shards/<id>/<array name>.npy   plain .npy, shape [n_in_shard, *per-sample shape]

Writes are atomic: :class:`DatasetWriter` fills a hidden sibling directory
``<parent>/.<name>.tmp-<uuid>`` and :meth:`DatasetWriter.commit` swaps it in with two renames
(the previous dataset goes to ``<parent>/.<name>.old-<uuid>`` in between, then is deleted);
:func:`recover` repairs a crash between the two renames. Readers memory-map shards lazily.

This module deliberately depends on numpy / pandas / pyarrow only (no torch).
"""

from __future__ import annotations

import copy
import json
import operator
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from s2ssl.io import fsync_dir as _fsync_dir
from s2ssl.io import hidden_siblings as _siblings
from s2ssl.io import new_sibling as _new_sibling
from s2ssl.io import recover_dir as recover
from s2ssl.io import remove_tree as _rmtree
from s2ssl.io import replace_dir

SCHEMA_VERSION: Final[int] = 1
"""Version of the on-disk layout written by :class:`DatasetWriter`."""

META_FILE: Final[str] = "meta.json"
INDEX_FILE: Final[str] = "index.parquet"
SHARDS_DIR: Final[str] = "shards"
RESERVED_COLUMNS: Final[tuple[str, str]] = ("shard", "row")
"""Index columns added by the writer (shard number and row within the shard)."""

_FETCH_HINT: Final[str] = "run `s2ssl fetch` / `dvc repro fetch` first"
_RECREATE_HINT: Final[str] = (
    "delete it and re-create it (re-run the stage that writes it, e.g. `dvc repro`)"
)


class StoreError(ValueError):
    """A dataset cannot be written or read; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a dataset: its name (the ``.npy`` file stem), dtype and per-sample shape.

    ``dtype`` is normalised to numpy's canonical name (``"uint16"``, ``"float32"``, ...).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not self.name
            or self.name.startswith(".")
            or any(c in self.name for c in "/\\\0")
        ):
            raise StoreError(
                f"array name {self.name!r} is not usable as a file name; use a non-empty name "
                "without '/', '\\' or a leading '.' (e.g. 'image', 'mask', 'label')"
            )
        try:
            dt = np.dtype(self.dtype)
        except TypeError as e:
            raise StoreError(
                f"array {self.name!r}: {self.dtype!r} is not a numpy dtype ({e}); "
                "use e.g. 'uint16', 'uint8', 'float32'"
            ) from None
        if dt.hasobject or dt.fields is not None:
            raise StoreError(
                f"array {self.name!r}: dtype {dt} cannot be memory-mapped; use a plain numeric "
                "dtype (e.g. 'uint16', 'uint8', 'float32')"
            )
        try:
            shape = tuple(operator.index(s) for s in self.shape)
        except TypeError:
            raise StoreError(
                f"array {self.name!r}: per-sample shape must be a tuple of ints, got {self.shape!r}"
            ) from None
        if any(s < 0 for s in shape):
            raise StoreError(f"array {self.name!r}: negative dimension in shape {shape}")
        object.__setattr__(self, "dtype", dt.name if dt.kind in "biufc" else dt.str)
        object.__setattr__(self, "shape", shape)


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


__all__ = [
    "INDEX_FILE",
    "META_FILE",
    "SCHEMA_VERSION",
    "ArraySpec",
    "DatasetWriter",
    "ShardedDataset",
    "StoreError",
    "open_dataset",
    "recover",
    "write_dataset",
]
