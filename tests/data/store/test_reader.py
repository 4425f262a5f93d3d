"""Tests of reading a dataset store (s2ssl.data.store.reader): round trip, memory maps,
subsets, corrupt stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from storekit import C, H, T, W

from s2ssl.data.store import (
    SCHEMA_VERSION,
    ArraySpec,
    ShardedDataset,
    StoreError,
    open_dataset,
)


def test_round_trip_shards_meta_and_index(seven) -> None:
    path, arrays, index = seven
    meta = json.loads((path / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION == 1
    assert meta["name"] == "ds"
    assert meta["n_samples"] == 7 and meta["shard_size"] == 3
    assert meta["shards"] == [
        {"id": "00000", "n": 3},
        {"id": "00001", "n": 3},
        {"id": "00002", "n": 1},
    ]
    assert meta["arrays"] == {
        "image": {"dtype": "uint16", "shape": [T, C, H, W]},
        "label": {"dtype": "uint8", "shape": []},
    }
    assert meta["attrs"] == {"source": "test", "k": 3}
    assert np.load(path / "shards" / "00002" / "image.npy").shape == (1, T, C, H, W)

    ds = open_dataset(path)
    assert isinstance(ds, ShardedDataset)
    assert len(ds) == 7 and ds.array_names == ("image", "label")
    assert ds.specs["image"] == ArraySpec("image", "uint16", (T, C, H, W))
    assert ds.attrs == {"source": "test", "k": 3}
    assert isinstance(ds.index.index, pd.RangeIndex)
    assert ds.index["shard"].tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert ds.index["row"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    # list columns come back as the same Python lists
    for col in ["id", "region", "lon", "dates", "dn_offset", "cloud_fraction", "transform"]:
        assert ds.index[col].tolist() == index[col].tolist(), col
    assert ds.index["dates"][3] == ["2021-04-01", "2022-04-15"]
    for i in range(7):
        np.testing.assert_array_equal(ds.read("image", i), arrays["image"][i])
        assert ds.read("label", i) == arrays["label"][i]
    np.testing.assert_array_equal(ds.read("image", -1), arrays["image"][6])


def test_read_many_and_iter_shards_agree_with_read(seven) -> None:
    path, arrays, _ = seven
    ds = open_dataset(path)
    order = [6, 2, 0, 4, 4, 3]  # shards 2, 0, 0, 1, 1, 1; rows out of order within shard 0
    many = ds.read_many("image", np.array(order))
    assert many.shape == (6, T, C, H, W) and many.dtype == np.uint16
    np.testing.assert_array_equal(many, arrays["image"][order])
    np.testing.assert_array_equal(ds.read_many("label", order), arrays["label"][order])
    assert ds.read_many("image", []).shape == (0, T, C, H, W)

    seen: list[int] = []
    for rows, shard in ds.iter_shards("image"):
        assert isinstance(shard, np.memmap)
        assert len(rows) == len(shard)
        for j, pos in enumerate(rows.index):
            np.testing.assert_array_equal(shard[j], ds.read("image", pos))
        seen.extend(rows.index)
    assert seen == list(range(7))


def test_reads_are_memory_mapped(seven) -> None:
    path, _, _ = seven
    ds = open_dataset(path)
    sample = ds.read("image", 4)
    assert isinstance(sample, np.memmap)
    assert not sample.flags.writeable
    assert isinstance(ds.read("label", 4), np.memmap)  # scalar samples too (0-d views)
    # same shard -> same cached map
    assert ds._shard_array("image", 1) is ds._shard_array("image", 1)


def test_pickle_drops_memmaps(seven) -> None:
    import pickle

    path, arrays, _ = seven
    ds = open_dataset(path)
    ds.read("image", 0)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._cache == {}
    np.testing.assert_array_equal(clone.read("image", 5), arrays["image"][5])


def test_index_out_of_range(seven) -> None:
    ds = open_dataset(seven[0])
    with pytest.raises(IndexError):
        ds.read("image", 7)
    with pytest.raises(IndexError):
        ds.read_many("image", [0, 9])
    with pytest.raises(StoreError, match=r"no array 'nope'.*available"):
        ds.read("nope", 0)


def test_open_missing_path_says_fetch(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no dataset at .*s2ssl fetch"):
        open_dataset(tmp_path / "absent")


def test_open_corrupt_meta(seven) -> None:
    path, _, _ = seven
    (path / "meta.json").write_text('{"schema_version": 1, "n_samp')
    with pytest.raises(StoreError, match=r"corrupt: meta.json is not valid JSON.*re-create"):
        open_dataset(path)
    (path / "meta.json").unlink()
    with pytest.raises(StoreError, match=r"has no meta\.json"):
        open_dataset(path)


def test_open_unknown_schema_version(seven) -> None:
    path, _, _ = seven
    meta = json.loads((path / "meta.json").read_text())
    meta["schema_version"] = 99
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"schema_version 99.*upgrade s2ssl"):
        open_dataset(path)


def test_open_missing_or_wrong_shard(seven) -> None:
    path, _, _ = seven
    shard = path / "shards" / "00001" / "label.npy"
    np.save(shard, np.zeros(3, np.uint16))  # wrong dtype
    with pytest.raises(StoreError, match=r"00001/label.npy has shape \(3,\) dtype uint16.*uint8"):
        open_dataset(path)
    np.save(shard, np.zeros(2, np.uint8))  # wrong length
    with pytest.raises(StoreError, match=r"expects shape \(3,\)"):
        open_dataset(path)
    shard.unlink()
    with pytest.raises(StoreError, match=r"shard file .*00001/label.npy is missing"):
        open_dataset(path)


def test_open_index_inconsistent_with_meta(seven) -> None:
    path, _, _ = seven
    index = pd.read_parquet(path / "index.parquet")
    index.iloc[:5].to_parquet(path / "index.parquet", index=False)
    with pytest.raises(StoreError, match=r"index\.parquet has 5 rows, meta says 7"):
        open_dataset(path)


def test_subset_view_reads_the_selected_samples(seven) -> None:
    path, arrays, _ = seven
    ds = open_dataset(path)
    keep = np.array([6, 0, 3, 4])
    view = ds.subset(keep)
    assert len(view) == 4 and len(ds) == 7
    assert view.index["id"].tolist() == ds.index["id"].iloc[keep].tolist()
    for j, i in enumerate(keep):
        np.testing.assert_array_equal(view.read("image", j), arrays["image"][i])
    np.testing.assert_array_equal(view.read_many("image", [3, 1]), arrays["image"][[4, 0]])
    seen = {}
    for rows, arr in view.iter_shards("image"):
        assert len(rows) == len(arr)
        for label, a in zip(rows.index, arr, strict=True):
            seen[label] = a
    assert sorted(seen) == [0, 1, 2, 3]
    for j, i in enumerate(keep):
        np.testing.assert_array_equal(seen[j], arrays["image"][i])
    assert (
        len(view.subset([2])) == 1
        and view.subset([2]).read("image", 0).tolist() == arrays["image"][3].tolist()
    )


def test_subset_rejects_bad_positions(seven) -> None:
    ds = open_dataset(seven[0])
    with pytest.raises(IndexError):
        ds.subset([7])
    with pytest.raises(StoreError, match="unique"):
        ds.subset([1, 1])
    with pytest.raises(StoreError, match="1-D sequence of ints"):
        ds.subset(np.array([0.5]))


def test_truncated_shard_is_reported_on_open(seven) -> None:
    path = seven[0]
    shard = sorted((path / "shards").iterdir())[0] / "image.npy"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(StoreError, match="truncated"):
        open_dataset(path)
