"""Tests of writing a dataset store (s2ssl.data.store.writer): validation, atomic commit,
recovery."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from storekit import SPECS, hidden_siblings, make_arrays, make_index, tree_hashes

from s2ssl.data.store import (
    ArraySpec,
    DatasetWriter,
    StoreError,
    open_dataset,
    recover,
    write_dataset,
)


def test_write_dataset_convenience(tmp_path: Path) -> None:
    arrays, index = make_arrays(4), make_index(4)
    path = write_dataset(tmp_path / "w", arrays, index, name="named", shard_size=2)
    ds = open_dataset(path)
    assert ds.meta["name"] == "named" and len(ds.meta["shards"]) == 2
    assert ds.specs["label"] == ArraySpec("label", "uint8", ())
    np.testing.assert_array_equal(ds.read_many("image", range(4)), arrays["image"])


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


def test_writing_through_a_symlink_replaces_the_target(tmp_path: Path) -> None:
    (tmp_path / "big_disk").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "big_disk")
    write_dataset(tmp_path / "link", make_arrays(2), make_index(2))
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "big_disk" / "meta.json").is_file()
    assert len(open_dataset(tmp_path / "link")) == 2
