"""``fetch.source: benchmark``: EuroSAT and PASTIS downloads become store datasets with their
own splits and classes, validate, and a partial download imports what is complete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchkit import (
    band_values,
    benchmark_params,
    write_eurosat,
    write_metadata,
    write_pastis,
    write_patch,
)
from s2ssl.bands import BAND_PRESETS, MASK_CLEAR, MASK_NODATA
from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import load_params
from s2ssl.data.fetch import fetch
from s2ssl.data.sources.benchmark.bigearthnet import BIGEARTHNET_CLASSES
from s2ssl.data.sources.benchmark.eurosat import EUROSAT_CLASS_COUNTS
from s2ssl.data.store import open_dataset
from s2ssl.validation.validate import validate

CLASSES = ("Forest", "River", "SeaLake")


def test_eurosat_imports_as_scene_dataset_with_split_lists_and_l2a_bands(tmp_path: Path) -> None:
    root = write_eurosat(tmp_path / "eurosat", per_class=4, classes=CLASSES)
    params = load_params(benchmark_params(tmp_path / "p.yaml", "eurosat", {"path": str(root)}))
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(result.datasets["scene"])
    assert len(ds) == 12
    assert ds.bands == BAND_PRESETS["l2a"]
    assert ds.specs["image"].shape == (1, 12, 64, 64)
    assert ds.specs["scene"].shape == ()
    assert ds.classes("scene").names == tuple(EUROSAT_CLASS_COUNTS)
    idx = ds.index
    # split lists: <Class>_1 -> test, _2 -> val, _3 and _4 -> train
    by_id = dict(zip(idx["sample_id"], idx["split"], strict=True))
    assert by_id["eurosat-River_1"] == "test" and by_id["eurosat-River_2"] == "val"
    assert by_id["eurosat-River_4"] == "train"
    assert sorted(idx["split"].value_counts().items()) == [("test", 3), ("train", 6), ("val", 3)]
    pos = int(np.flatnonzero(idx["sample_id"].to_numpy() == "eurosat-River_3")[0])
    label = int(ds.read_many("scene", np.array([pos]))[0])
    assert label == list(EUROSAT_CLASS_COUNTS).index("River")
    image = ds.read_many("image", np.array([pos]))[0, 0]
    # file bands B01..B09, B10, B11, B12, B8A hold 100 * (i + 1) + class (+0..2 noise); l2a drops
    # B10 and puts B8A (file band 13) after B08
    k = list(EUROSAT_CLASS_COUNTS).index("River")
    expected = [100, 200, 300, 400, 500, 600, 700, 800, 1300, 900, 1100, 1200]
    assert (image.min(axis=(1, 2)) >= np.asarray(expected) + k).all()
    assert (image.max(axis=(1, 2)) <= np.asarray(expected) + k + 2).all()
    assert (ds.read_many("mask", np.array([pos])) == MASK_CLEAR).all()
    assert ds.attrs["dated"] is False and ds.attrs["benchmark"] == "eurosat"
    assert result.summary["scene.n_train"] == 6

    out = validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "vreports")
    assert out.summary["scene.n_accepted"] == 12, out.summary


def test_eurosat_without_split_lists_is_split_by_class_with_the_seed(tmp_path: Path) -> None:
    root = write_eurosat(tmp_path / "e", per_class=5, classes=CLASSES, split_lists=False)
    splits = {"train": 0.6, "val": 0.2, "test": 0.2}
    params = load_params(
        benchmark_params(tmp_path / "p.yaml", "eurosat", {"path": str(root), "splits": splits})
    )
    ds = open_dataset(fetch(params, tmp_path / "raw", tmp_path / "r").datasets["scene"])
    idx = ds.index
    for c in CLASSES:
        mine = idx[idx["sample_id"].str.startswith(f"eurosat-{c}_")]
        assert sorted(mine["split"].value_counts().items()) == [
            ("test", 1),
            ("train", 3),
            ("val", 1),
        ]


def test_partial_eurosat_download_imports_the_rest_and_lists_what_is_missing(
    tmp_path: Path,
) -> None:
    root = write_eurosat(tmp_path / "e", per_class=3, classes=CLASSES)
    (root / "EuroSAT_MS" / "Forest" / "Forest_3.tif").write_bytes(b"")
    (root / "EuroSAT_MS" / "River" / "River_2.tif").unlink()
    params = load_params(benchmark_params(tmp_path / "p.yaml", "eurosat", {"path": str(root)}))
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert len(open_dataset(result.datasets["scene"])) == 7
    report = json.loads((tmp_path / "reports" / "acquisition.json").read_text())
    missing = {s["item"]: s for s in report["skipped"]}
    absent_classes = set(EUROSAT_CLASS_COUNTS) - set(CLASSES)  # the fixture holds 3 of 10
    assert set(missing) == {"Forest_3", "River_2"} | absent_classes
    assert all(s["reason"] == "incomplete download" for s in missing.values())
    assert "River_2.tif" in missing["River_2"]["detail"]
    assert "Forest_3.tif (empty)" in missing["Forest_3"]["detail"]
    assert "class folder" in missing["Pasture"]["detail"]
    assert report["datasets"]["scene"]["skipped_by_reason"] == {"incomplete download": 9}


def test_pastis_needs_bands_it_publishes(tmp_path: Path) -> None:
    root = write_pastis(tmp_path / "pastis", {10: 3}, {10: 1})
    params = load_params(benchmark_params(tmp_path / "p.yaml", "pastis", {"path": str(root)}))
    with pytest.raises(ValueError, match=r"publishes no band B01, B09") as e:
        fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert "bands: pastis" in str(e.value)
    assert not (tmp_path / "raw").exists()


def test_pastis_series_are_padded_with_their_length_folds_become_splits(tmp_path: Path) -> None:
    lengths = {10: 3, 11: 5, 12: 4, 13: 3, 14: 5}
    folds = {10: 1, 11: 2, 12: 4, 13: 5, 14: 3}
    root = write_pastis(tmp_path / "pastis", lengths, folds)
    params = load_params(
        benchmark_params(tmp_path / "p.yaml", "pastis", {"path": str(root)}, bands="pastis")
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(result.datasets["croptype"])
    assert ds.specs["image"].shape == (5, 10, 128, 128)
    assert ds.bands == BAND_PRESETS["pastis"]
    idx = ds.index.set_index("sample_id")
    assert idx.loc["pastis-10", "n_dates"] == 3 and idx.loc["pastis-11", "n_dates"] == 5
    assert idx.loc["pastis-10", "split"] == "train" and idx.loc["pastis-12", "split"] == "val"
    assert idx.loc["pastis-13", "split"] == "test" and idx.loc["pastis-14", "split"] == "train"
    assert list(idx.loc["pastis-10", "doy"]) == [258, 265, 272, 0, 0]
    assert list(idx.loc["pastis-10", "dates"]) == ["2018-09-15", "2018-09-22", "2018-09-29"]
    assert idx.loc["pastis-10", "region"] == "t31tfm"
    assert idx.loc["pastis-10", "crs"] == "EPSG:2154"
    pos = int(np.flatnonzero(ds.index["sample_id"].to_numpy() == "pastis-10")[0])
    image = ds.read_many("image", np.array([pos]))[0]
    assert image[2, 9, 5, 5] == 1000 + 900 + 2  # date 2, band B12 (file band 9)
    assert (image[3:] == 0).all()
    mask = ds.read_many("mask", np.array([pos]))[0]
    assert (mask[:3] == MASK_CLEAR).all() and (mask[3:] == MASK_NODATA).all()
    crop = ds.read_many("croptype", np.array([pos]))[0]
    assert crop[5, 5] == 1 and crop[5, 100] == 2
    assert (crop[0] == LABEL_IGNORE).all() and (crop[-1] == 0).all()
    assert ds.classes("croptype").names[:3] == ("Background", "Meadow", "Soft winter wheat")
    parcel = ds.read_many("parcel", np.array([pos]))[0]
    assert parcel[5, 5] == 1 and parcel[5, 100] == 2

    out = validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "vreports")
    assert out.summary["croptype.n_accepted"] == 5, out.summary


def test_pastis_folds_choose_the_splits_and_other_sizes_are_refused(tmp_path: Path) -> None:
    root = write_pastis(tmp_path / "pastis", {1: 3, 2: 3, 3: 3}, {1: 1, 2: 2, 3: 3})
    folds = {"train": [2], "val": [3], "test": [1]}
    params = load_params(
        benchmark_params(
            tmp_path / "p.yaml", "pastis", {"path": str(root), "folds": folds}, bands="pastis"
        )
    )
    ds = open_dataset(fetch(params, tmp_path / "raw", tmp_path / "r").datasets["croptype"])
    assert dict(zip(ds.index["sample_id"], ds.index["split"], strict=True)) == {
        "pastis-1": "test",
        "pastis-2": "train",
        "pastis-3": "val",
    }
    small = write_pastis(tmp_path / "small", {1: 3}, {1: 1}, size=16)
    params = load_params(
        benchmark_params(tmp_path / "q.yaml", "pastis", {"path": str(small)}, bands="pastis")
    )
    with pytest.raises(ValueError, match=r"nothing imported .*unreadable"):
        fetch(params, tmp_path / "raw2", tmp_path / "r2")
    assert not (tmp_path / "r2" / "acquisition.json").exists()  # a failed import writes nothing


def test_benchmark_config_names_the_dataset_it_imports(tmp_path: Path) -> None:
    path = benchmark_params(
        tmp_path / "p.yaml", "eurosat", {"path": str(tmp_path)}, **{"fetch.datasets": ["landcover"]}
    )
    with pytest.raises(
        ValueError, match=r"imports the scene dataset: set fetch.datasets: \[scene\]"
    ):
        load_params(path)
    path = benchmark_params(
        tmp_path / "p.yaml",
        "pastis",
        {"path": str(tmp_path), "folds": {"train": [1, 2], "val": [2], "test": [5]}},
    )
    with pytest.raises(ValueError, match="one split only"):
        load_params(path)


BEN = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"


def test_bigearthnet_imports_multi_hot_labels_splits_and_countries(tmp_path: Path) -> None:
    rows = [
        {"patch_id": f"{BEN}_26_57", "labels": ["Pastures", "Arable land"], "split": "train"},
        {"patch_id": f"{BEN}_26_58", "labels": ["Marine waters"], "split": "validation",
         "country": "Portugal"},
        {"patch_id": f"{BEN}_26_59", "labels": ["Urban fabric"], "split": "test"},
        {"patch_id": f"{BEN}_26_60", "labels": ["Urban fabric"], "split": "train", "cloud": True},
        {"patch_id": f"{BEN}_26_61", "labels": ["Beaches, dunes, sands"], "split": "train"},
    ]  # fmt: skip
    for row in rows[:4]:  # DN up to 1200 + 14399: within validate.dn_range
        write_patch(tmp_path / "ben", row["patch_id"], step=100)
    write_patch(tmp_path / "ben", rows[4]["patch_id"], skip=("B11",), step=100)
    write_metadata(tmp_path / "ben" / "metadata.parquet", rows)
    params = load_params(
        benchmark_params(tmp_path / "p.yaml", "bigearthnet", {"path": str(tmp_path / "ben")})
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(result.datasets["scene"])
    assert ds.specs["image"].shape == (1, 12, 120, 120)
    assert ds.specs["multilabel"].shape == (19,)
    assert ds.classes("multilabel").names == BIGEARTHNET_CLASSES.names
    idx = ds.index.set_index("sample_id")
    # the cloud-flagged patch is excluded; the one lacking B11 is reported incomplete
    assert sorted(idx.index) == [f"bigearthnet-{BEN}_26_5{k}" for k in (7, 8, 9)]
    assert idx.loc[f"bigearthnet-{BEN}_26_58", "split"] == "val"
    assert idx.loc[f"bigearthnet-{BEN}_26_58", "region"] == "portugal"
    assert idx.loc[f"bigearthnet-{BEN}_26_57", "region"] == "austria"
    assert list(idx.loc[f"bigearthnet-{BEN}_26_57", "dates"]) == ["2017-06-13"]
    assert list(idx.loc[f"bigearthnet-{BEN}_26_57", "doy"]) == [164]
    pos = int(np.flatnonzero(ds.index["sample_id"].to_numpy() == f"bigearthnet-{BEN}_26_57")[0])
    labels = ds.read_many("multilabel", np.array([pos]))[0]
    names = BIGEARTHNET_CLASSES.names
    assert sorted(names[i] for i in np.flatnonzero(labels)) == ["Arable land", "Pastures"]
    image = ds.read_many("image", np.array([pos]))[0, 0]
    # B01 (60 m, 20 x 20) is replicated 6 x 6: pixel (7, 13) comes from native pixel (1, 2)
    assert image[0, 7, 13] == band_values("B01", 100)[1, 2]
    assert image[BAND_PRESETS["l2a"].index("B8A"), 3, 3] == band_values("B8A", 100)[1, 1]
    report = json.loads((tmp_path / "reports" / "acquisition.json").read_text())
    assert report["datasets"]["scene"]["skipped_by_reason"] == {"incomplete download": 1}
    assert "B11" in report["skipped"][0]["detail"]

    out = validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "vreports")
    assert out.summary["scene.n_accepted"] == 3, out.summary


def test_real_bigearthnet_pixels_import_validate_and_look_right(tmp_path: Path) -> None:
    """The six real v1 example patches of ``bigearthnet-common``, laid out as v2 (patch folders
    under their tile folder, ``metadata.parquet`` with their labels mapped to 19 classes)."""
    import shutil

    import rasterio

    from benchkit import extract_v1_examples
    from s2ssl.data.sources.benchmark import list_bigearthnet_v1

    v1 = list_bigearthnet_v1(extract_v1_examples(tmp_path / "v1")).samples
    root = tmp_path / "ben"
    rows = []
    for k, patch in enumerate(v1):
        tile = patch.patch_id.rsplit("_", 2)[0]
        shutil.copytree(patch.path, root / "BigEarthNet-S2" / tile / patch.patch_id)
        split = ("train", "validation", "test")[k % 3]
        rows.append({"patch_id": patch.patch_id, "labels": list(patch.labels), "split": split})
    write_metadata(root / "metadata.parquet", rows)
    params = load_params(benchmark_params(tmp_path / "p.yaml", "bigearthnet", {"path": str(root)}))
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(result.datasets["scene"])
    assert len(ds) == len(v1) == 6
    first = v1[0]
    pos = int(np.flatnonzero(ds.index["sample_id"] == f"bigearthnet-{first.patch_id}")[0])
    image = ds.read_many("image", np.array([pos]))[0, 0]
    with rasterio.open(first.band_path("B04")) as src:
        assert np.array_equal(image[BAND_PRESETS["l2a"].index("B04")], src.read(1))
        crs = src.crs.to_epsg()
    with rasterio.open(first.band_path("B09")) as src:  # 60 m: 6 x 6 blocks of the 20 x 20 file
        b09 = src.read(1)
    assert np.array_equal(image[BAND_PRESETS["l2a"].index("B09"), ::6, ::6], b09)
    assert ds.index["crs"].iloc[pos] == f"EPSG:{crs}"
    labels = ds.read_many("multilabel", np.array([pos]))[0]
    assert tuple(BIGEARTHNET_CLASSES.names[i] for i in np.flatnonzero(labels)) == first.labels
    assert (tmp_path / "reports" / "scenes.png").stat().st_size > 10_000
    out = validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "vreports")
    assert out.summary["scene.n_accepted"] == 6, out.summary
