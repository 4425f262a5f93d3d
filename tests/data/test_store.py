"""Tests of the sharded dataset store (s2ssl.data.store)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2ssl.data.store import (
    SCHEMA_VERSION,
    ArraySpec,
    DatasetWriter,
    ShardedDataset,
    StoreError,
    open_dataset,
    recover,
    write_dataset,
)

T, C, H, W = 2, 3, 4, 5


def make_arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 10_000, size=(n, T, C, H, W), dtype=np.uint16),
        "label": rng.integers(0, 10, size=(n,), dtype=np.uint8),
    }


def make_index(n: int, start: int = 0) -> pd.DataFrame:
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "id": [f"s{i:03d}" for i in ids],
            "region": ["north" if i % 2 else "south" for i in ids],
            "lon": [float(i) / 3 for i in ids],
            "dates": [[f"2021-0{1 + i % 9}-01", f"2022-0{1 + i % 9}-15"] for i in ids],
            "dn_offset": [[0, -1000] for _ in ids],
            "cloud_fraction": [[0.01 * i, 0.5] for i in ids],
            "transform": [[10.0, 0.0, 500000.0 + i, 0.0, -10.0, 4e6] for i in ids],
        }
    )


SPECS = [ArraySpec("image", "uint16", (T, C, H, W)), ArraySpec("label", "uint8", ())]


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def hidden_siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


@pytest.fixture
def seven(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], pd.DataFrame]:
    """7 samples written with shard_size=3 in uneven appends (shards of 3, 3, 1)."""
    arrays, index = make_arrays(7), make_index(7)
    path = tmp_path / "sub" / "ds"  # parent does not exist yet
    with DatasetWriter(path, SPECS, shard_size=3, attrs={"source": "test", "k": np.int64(3)}) as w:
        for lo, hi in [(0, 2), (2, 6), (6, 7)]:
            w.append({k: v[lo:hi] for k, v in arrays.items()}, index.iloc[lo:hi])
    return path, arrays, index


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


def test_write_dataset_convenience(tmp_path: Path) -> None:
    arrays, index = make_arrays(4), make_index(4)
    path = write_dataset(tmp_path / "w", arrays, index, name="named", shard_size=2)
    ds = open_dataset(path)
    assert ds.meta["name"] == "named" and len(ds.meta["shards"]) == 2
    assert ds.specs["label"] == ArraySpec("label", "uint8", ())
    np.testing.assert_array_equal(ds.read_many("image", range(4)), arrays["image"])


def test_index_out_of_range(seven) -> None:
    ds = open_dataset(seven[0])
    with pytest.raises(IndexError):
        ds.read("image", 7)
    with pytest.raises(IndexError):
        ds.read_many("image", [0, 9])
    with pytest.raises(StoreError, match=r"no array 'nope'.*available"):
        ds.read("nope", 0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda a, r: ({**a, "image": a["image"].astype(np.float32)}, r),
            r"array 'image': dtype float32 cannot be cast safely to the declared uint16",
        ),
        (
            lambda a, r: ({**a, "image": a["image"].astype(np.int64)}, r),
            r"array 'image': dtype int64 cannot be cast safely",
        ),
        (
            lambda a, r: ({**a, "image": a["image"][:, :, :2]}, r),
            r"array 'image': expected shape \[n, \*\[2, 3, 4, 5\]\].*got \(3, 2, 2, 4, 5\)",
        ),
        (
            lambda a, r: ({"image": a["image"]}, r),
            r"missing \['label'\], unexpected \[\]",
        ),
        (
            lambda a, r: ({**a, "extra": a["label"]}, r),
            r"missing \[\], unexpected \['extra'\]",
        ),
        (
            lambda a, r: (a, r.iloc[:2]),
            r"array 'image' has 3 samples but rows has 2 rows",
        ),
        (
            lambda a, r: (a, r.assign(shard=1)),
            r"\['shard'\] are reserved",
        ),
    ],
)
def test_append_validation(tmp_path: Path, mutate, message: str) -> None:
    arrays, rows = mutate(make_arrays(3), make_index(3))
    writer = DatasetWriter(tmp_path / "v", SPECS)
    with pytest.raises(StoreError, match=message):
        writer.append(arrays, rows)
    writer.abort()


def test_append_rejects_nan_and_accepts_safe_casts(tmp_path: Path) -> None:
    specs = [ArraySpec("x", "float32", (2,)), ArraySpec("m", "uint16", ())]
    rows = pd.DataFrame({"a": [1, 2]})
    with DatasetWriter(tmp_path / "f", specs) as w:
        with pytest.raises(StoreError, match=r"array 'x': 1 NaN/inf"):
            w.append(
                {"x": np.array([[0, np.nan], [1, 2]], np.float32), "m": np.zeros(2, "u2")}, rows
            )
        # float16 -> float32 and uint8 -> uint16 are safe
        w.append({"x": np.ones((2, 2), np.float16), "m": np.array([1, 2], np.uint8)}, rows)
        with pytest.raises(StoreError, match="same columns at every append"):
            w.append(
                {"x": np.ones((2, 2), np.float32), "m": np.zeros(2, "u2")},
                rows.rename(columns={"a": "b"}),
            )
    ds = open_dataset(tmp_path / "f")
    assert ds.read("x", 0).dtype == np.float32 and ds.read("m", 1) == 2


def test_writer_rejects_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="shard_size must be >= 1"):
        DatasetWriter(tmp_path / "a", SPECS, shard_size=0)
    with pytest.raises(StoreError, match="not a numpy dtype"):
        ArraySpec("x", "notadtype", ())
    with pytest.raises(StoreError, match="JSON-serialisable"):
        DatasetWriter(tmp_path / "a", SPECS, attrs={"bad": object()})
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(StoreError, match="refusing to replace"):
        DatasetWriter(precious, SPECS)
    assert (precious / "thesis.tex").read_text() == "keep me"
    assert hidden_siblings(tmp_path / "a") == []


def test_exception_mid_write_keeps_previous_dataset(seven) -> None:
    path, _, _ = seven
    before = tree_hashes(path)
    assert before  # non-trivial
    with pytest.raises(RuntimeError, match="boom"), DatasetWriter(path, SPECS, shard_size=2) as w:
        w.append(make_arrays(5, seed=1), make_index(5))  # shards already written to tmp
        assert hidden_siblings(path)  # the temporary directory exists meanwhile
        raise RuntimeError("boom")
    assert tree_hashes(path) == before
    assert hidden_siblings(path) == []
    with pytest.raises(StoreError, match="already aborted"):
        w.commit()


def test_commit_replaces_existing_dataset_atomically(seven) -> None:
    path, _, _ = seven
    new = make_arrays(2, seed=5)
    write_dataset(path, new, make_index(2), shard_size=3)
    ds = open_dataset(path)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds.read_many("image", [0, 1]), new["image"])
    assert not (path / "shards" / "00001").exists()  # nothing of the old dataset is left
    assert hidden_siblings(path) == []


def test_stale_tmp_dirs_are_removed_by_the_next_writer(seven) -> None:
    path, _, _ = seven
    stale = path.parent / f".{path.name}.tmp-{'a' * 32}"
    (stale / "shards").mkdir(parents=True)
    open_dataset(path)  # readers never delete anything
    assert stale.exists()
    DatasetWriter(path, SPECS).abort()
    assert not stale.exists()


def test_recover_after_crash_between_renames(seven) -> None:
    path, arrays, _ = seven
    before = tree_hashes(path)
    old = path.parent / f".{path.name}.old-{'0' * 32}"
    os.rename(path, old)  # commit crashed after moving the old dataset aside
    assert not path.exists()
    recover(path)
    assert path.is_dir() and not old.exists()
    assert tree_hashes(path) == before
    # open_dataset recovers too
    os.rename(path, old)
    np.testing.assert_array_equal(open_dataset(path).read("image", 3), arrays["image"][3])
    assert hidden_siblings(path) == []


def test_recover_is_a_noop_when_nothing_to_do(tmp_path: Path) -> None:
    recover(tmp_path / "nothing")
    assert list(tmp_path.iterdir()) == []


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


def test_writing_through_a_symlink_replaces_the_target(tmp_path: Path) -> None:
    (tmp_path / "big_disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "big_disk")
    write_dataset(tmp_path / "link", make_arrays(2), make_index(2))
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "big_disk" / "meta.json").is_file()
    assert len(open_dataset(tmp_path / "link")) == 2


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
