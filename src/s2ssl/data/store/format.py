"""The on-disk layout of a dataset store: file names, schema version, array specs, the error."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Final

import numpy as np

SCHEMA_VERSION: Final[int] = 1
"""Version of the on-disk layout written by :class:`DatasetWriter`."""

META_FILE: Final[str] = "meta.json"
INDEX_FILE: Final[str] = "index.parquet"
SHARDS_DIR: Final[str] = "shards"
RESERVED_COLUMNS: Final[tuple[str, str]] = ("shard", "row")
"""Index columns added by the writer (shard number and row within the shard)."""


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
