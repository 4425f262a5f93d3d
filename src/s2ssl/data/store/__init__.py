"""Sharded, memory-mappable dataset store.

A dataset is a directory::

    <path>/meta.json                      schema version, array specs, shard list, free attrs
    <path>/index.parquet                  one row per sample, plus the columns shard and row
    <path>/shards/<id>/<array name>.npy   plain .npy, shape [n_in_shard, *per-sample shape]

Writes are atomic: :class:`DatasetWriter` fills a hidden sibling directory
``<parent>/.<name>.tmp-<uuid>`` and :meth:`DatasetWriter.commit` swaps it in with two renames
(the previous dataset goes to ``<parent>/.<name>.old-<uuid>`` in between, then is deleted);
:func:`recover` repairs a crash between the two renames. Readers memory-map shards lazily.

The package deliberately depends on numpy / pandas / pyarrow only (no torch).

Modules: :mod:`.format` (layout constants, :class:`ArraySpec`, :class:`StoreError`),
:mod:`.writer` (:class:`DatasetWriter`, :func:`write_dataset`) and :mod:`.reader`
(:class:`ShardedDataset`, :func:`open_dataset`).
"""

from s2ssl.data.store.format import (
    INDEX_FILE,
    META_FILE,
    RESERVED_COLUMNS,
    SCHEMA_VERSION,
    ArraySpec,
    StoreError,
)
from s2ssl.data.store.reader import ShardedDataset, open_dataset
from s2ssl.data.store.writer import DatasetWriter, write_dataset
from s2ssl.io import recover_dir as recover

__all__ = [
    "INDEX_FILE",
    "META_FILE",
    "RESERVED_COLUMNS",
    "SCHEMA_VERSION",
    "ArraySpec",
    "DatasetWriter",
    "ShardedDataset",
    "StoreError",
    "open_dataset",
    "recover",
    "write_dataset",
]
