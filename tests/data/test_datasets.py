"""Tests of the torch view of a dataset store (s2ssl.data.datasets)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from s2ssl.data.datasets import S2Dataset
from s2ssl.data.store import StoreError, open_dataset, write_dataset

T, C, H, W = 2, 3, 4, 4
N = 10


def add_channel(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A picklable transform for the DataLoader test."""
    return {**sample, "twice": sample["image"] * 2}


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 5000, size=(N, T, C, H, W), dtype=np.uint16)
    image[0, 0, 0, 0, 0] = 1500  # date 0 (offset 0)
    image[0, 1, 0, 0, 0] = 1500  # date 1 (offset -1000)
    arrays = {
        "image": image,
        "mask": rng.integers(0, 4, size=(N, T, H, W), dtype=np.uint8),
        "label": rng.integers(0, 5, size=(N, H, W), dtype=np.uint8),
    }
    index = pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(N)],
            "split": ["train"] * 6 + ["val"] * 2 + ["test"] * 2,
            "region": ["alps", "delta"] * 5,
            "dates": [["2021-06-01", "2022-06-01"]] * N,
            "dn_offset": [[0, -1000]] * N,
            "doy": [[152, 152 + i] for i in range(N)],
        }
    )
    return write_dataset(tmp_path / "ds", arrays, index, shard_size=4)


def test_reflectance_conversion_by_hand(store_path: Path) -> None:
    ds = S2Dataset(store_path)
    sample = ds[0]
    image = sample["image"]
    assert image.dtype == torch.float32 and image.shape == (T, C, H, W)
    assert image[0, 0, 0, 0].item() == pytest.approx(0.15)  # (1500 + 0) / 10000
    assert image[1, 0, 0, 0].item() == pytest.approx(0.05)  # (1500 - 1000) / 10000
    raw = open_dataset(store_path).read("image", 3).astype(np.float64)
    expected = (raw + np.array([0.0, -1000.0])[:, None, None, None]) / 10_000
    np.testing.assert_allclose(ds[3]["image"].numpy(), expected, rtol=1e-6)


def test_sample_dtypes_and_extra_keys(store_path: Path) -> None:
    sample = S2Dataset(store_path)[5]
    assert set(sample) == {"image", "mask", "label", "index", "doy"}
    assert sample["mask"].dtype == torch.uint8 and sample["mask"].shape == (T, H, W)
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == (H, W)
    assert sample["index"].dtype == torch.int64 and sample["index"].item() == 5
    assert sample["doy"].tolist() == [152, 157] and sample["doy"].dtype == torch.int64


def test_dn_mode_and_array_selection(store_path: Path) -> None:
    ds = S2Dataset(store_path, ["image"], reflectance=False)
    sample = ds[0]
    assert set(sample) == {"image", "index", "doy"}
    assert sample["image"].dtype == torch.int32
    assert sample["image"][1, 0, 0, 0].item() == 1500
    np.testing.assert_array_equal(
        sample["image"].numpy(), open_dataset(store_path).read("image", 0)
    )
    with pytest.raises(StoreError, match=r"no array\(s\) \['nope'\]; available: \['image'"):
        S2Dataset(store_path, ["nope"])


def test_missing_offsets_column_is_an_error(tmp_path: Path) -> None:
    path = write_dataset(
        tmp_path / "x",
        {"image": np.ones((2, T, C, H, W), np.uint16)},
        pd.DataFrame({"id": ["a", "b"]}),
    )
    with pytest.raises(StoreError, match=r"no 'dn_offset' column.*reflectance=False"):
        S2Dataset(path)
    assert S2Dataset(path, reflectance=False)[1]["image"].sum().item() == T * C * H * W


def test_split_and_region_filters(store_path: Path) -> None:
    train = S2Dataset(store_path, split="train")
    assert len(train) == 6
    assert train.index["split"].unique().tolist() == ["train"]
    assert isinstance(train.index.index, pd.RangeIndex)

    val_delta = S2Dataset(store_path, split="val", regions=["delta"])
    assert len(val_delta) == 1
    assert val_delta.index["id"].tolist() == ["s7"]
    assert val_delta[0]["index"].item() == 7  # position in the store, not in the view
    np.testing.assert_array_equal(val_delta.positions, [7])

    assert len(S2Dataset(store_path, regions=["alps", "delta"])) == N


def test_filter_errors_name_available_values(store_path: Path) -> None:
    with pytest.raises(
        StoreError, match=r"split \['dev'\] not in the dataset.*\['test', 'train', 'val'\]"
    ):
        S2Dataset(store_path, split="dev")
    with pytest.raises(StoreError, match=r"region \['moon'\].*\['alps', 'delta'\]"):
        S2Dataset(store_path, regions=["moon"])


def test_filter_leaving_nothing_is_an_error(tmp_path: Path, store_path: Path) -> None:
    # every value exists, but no sample has both
    idx = pd.read_parquet(store_path / "index.parquet")
    keep = ~((idx["split"] == "test") & (idx["region"] == "alps"))
    arrays = open_dataset(store_path).read_many("image", np.flatnonzero(keep))
    rows = idx.loc[keep].drop(columns=["shard", "row"]).reset_index(drop=True)
    path = write_dataset(tmp_path / "y", {"image": arrays}, rows)
    with pytest.raises(StoreError, match=r"no sample has split 'test' and region in \['alps'\]"):
        S2Dataset(path, split="test", regions=["alps"])


def test_filter_on_absent_column(tmp_path: Path) -> None:
    path = write_dataset(
        tmp_path / "z", {"label": np.zeros((2, 3), np.uint8)}, pd.DataFrame({"id": ["a", "b"]})
    )
    with pytest.raises(
        StoreError, match=r"no column 'split' \(columns: \['id', 'shard', 'row'\]\)"
    ):
        S2Dataset(path, split="train")


def test_transform_and_accepts_a_store(store_path: Path) -> None:
    ds = S2Dataset(open_dataset(store_path), ["image"], transform=add_channel)
    sample = ds[1]
    torch.testing.assert_close(sample["twice"], sample["image"] * 2)


def test_pickled_dataset_carries_no_memmaps(store_path: Path) -> None:
    ds = S2Dataset(store_path)
    first = ds[2]
    assert ds.store._cache  # memmaps are open in this process
    blob = pickle.dumps(ds)
    assert open_dataset(store_path).read("image", 2).tobytes() not in blob  # no shard data
    clone = pickle.loads(blob)
    assert clone.store._cache == {}
    torch.testing.assert_close(clone[2]["image"], first["image"])


def test_dataloader_with_two_workers(store_path: Path) -> None:
    ds = S2Dataset(store_path, split="train", transform=add_channel)
    ds[0]  # memmaps open in the parent: workers must not depend on (or receive) them
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [4, 2]
    assert batches[0]["image"].shape == (4, T, C, H, W)
    assert batches[0]["doy"].shape == (4, T)
    assert torch.cat([b["index"] for b in batches]).tolist() == [0, 1, 2, 3, 4, 5]
    expected = torch.stack([ds[i]["image"] for i in range(6)])
    torch.testing.assert_close(torch.cat([b["image"] for b in batches]), expected)
    torch.testing.assert_close(torch.cat([b["twice"] for b in batches]), expected * 2)
