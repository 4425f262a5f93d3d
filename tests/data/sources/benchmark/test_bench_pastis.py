"""PASTIS reader: metadata.geojson (ID_PATCH, Fold, dates-S2 as an object or a JSON string),
T x 10 x 128 x 128 series of variable T, TARGET channel 0 with void 19 -> 255, parcel ids,
partial downloads and files that do not fit the layout."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import LABEL_IGNORE
from s2ssl.data.sources.benchmark import (
    PASTIS_CLASSES,
    PASTIS_FILE_BANDS,
    list_pastis,
    read_pastis,
)
from s2ssl.data.sources.benchmark.pastis import PASTIS_CLASS_NAMES, PASTIS_VOID, pastis_dir

SIZE = 128


def dates_of(n: int, start: dt.date = dt.date(2018, 9, 24)) -> dict[str, int]:
    """``{"0": YYYYMMDD, ...}``: ``n`` dates, 10 days apart."""
    days = [start + dt.timedelta(days=10 * i) for i in range(n)]
    return {str(i): int(d.strftime("%Y%m%d")) for i, d in enumerate(days)}


def feature(patch_id, fold=1, dates=None, **extra) -> dict:
    props = {
        "ID_PATCH": patch_id,
        "Fold": fold,
        "dates-S2": dates_of(2) if dates is None else dates,
        "TILE": "t31tfm",
        **extra,
    }
    square = [[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]]
    geometry = {"type": "Polygon", "coordinates": square}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def write_meta(root: Path, features: list[dict]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    doc = {"type": "FeatureCollection", "features": features}
    (root / "metadata.geojson").write_text(json.dumps(doc))


def series(t: int, dtype=np.int16) -> np.ndarray:
    """``T x 10 x 128 x 128`` whose band ``b`` of date ``t`` holds ``1000 * (b + 1) + t``."""
    values = 1000 * (np.arange(10)[None, :] + 1) + np.arange(t)[:, None]
    return np.broadcast_to(values[:, :, None, None], (t, 10, SIZE, SIZE)).astype(dtype)


def semantic() -> np.ndarray:
    """128 x 128 semantic values: rows 0..31 background 0, 32..63 meadow 1, 64..95 sorghum 18,
    96..127 void 19."""
    sem = np.zeros((SIZE, SIZE), dtype=np.uint8)
    sem[32:64], sem[64:96], sem[96:] = 1, 18, PASTIS_VOID
    return sem


def write_patch(root: Path, patch_id: int, t: int = 2, *, image=None, target=None, parcels=None):
    (root / "DATA_S2").mkdir(parents=True, exist_ok=True)
    (root / "ANNOTATIONS").mkdir(parents=True, exist_ok=True)
    if target is None:
        sem = semantic()
        target = np.stack([sem, sem, np.zeros_like(sem)])
    if parcels is None:
        parcels = np.zeros((SIZE, SIZE), dtype=np.uint16)
        parcels[32:64, :64], parcels[32:64, 64:] = 7, 65000
    np.save(root / "DATA_S2" / f"S2_{patch_id}.npy", series(t) if image is None else image)
    np.save(root / "ANNOTATIONS" / f"TARGET_{patch_id}.npy", target)
    np.save(root / "ANNOTATIONS" / f"ParcelIDs_{patch_id}.npy", parcels)


def dataset(root: Path, spec=((10000, 1, 2),)) -> Path:
    """Patches ``(ID_PATCH, Fold, T)`` written in the PASTIS layout under ``root``."""
    for pid, _, t in spec:
        write_patch(root, pid, t)
    write_meta(root, [feature(pid, fold, dates_of(t)) for pid, fold, t in spec])
    return root


def test_constants_follow_the_published_nomenclature() -> None:
    assert PASTIS_FILE_BANDS == (
        "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
    )  # fmt: skip
    # wavelength order is Sentinel-2 order: the file bands appear in BAND_NAMES in this order
    assert sorted(PASTIS_FILE_BANDS, key=BAND_NAMES.index) == list(PASTIS_FILE_BANDS)
    assert len(PASTIS_CLASS_NAMES) == 20
    assert (PASTIS_CLASS_NAMES[0], PASTIS_CLASS_NAMES[18], PASTIS_CLASS_NAMES[19]) == (
        "Background", "Sorghum", "Void label",
    )  # fmt: skip
    assert len(PASTIS_CLASSES) == 19 and PASTIS_CLASSES.ignored_values == (19,)
    assert [c.value for c in PASTIS_CLASSES.classes] == list(range(19))


def test_list_sorts_by_id_and_reads_folds_dates_and_tile(tmp_path: Path) -> None:
    root = dataset(tmp_path, [(40562, 5, 3), (10000, 1, 2), (20001, 3, 1)])
    inv = list_pastis(root)
    assert inv.complete and len(inv) == 3
    assert [p.patch_id for p in inv.samples] == [10000, 20001, 40562]
    assert [p.split for p in inv.samples] == ["fold1", "fold3", "fold5"]
    assert [p.sample_id for p in inv.samples] == ["pastis_10000", "pastis_20001", "pastis_40562"]
    last = inv.samples[-1]
    assert last.dates == (dt.date(2018, 9, 24), dt.date(2018, 10, 4), dt.date(2018, 10, 14))
    assert last.tile == "t31tfm"
    assert last.image_path == root / "DATA_S2" / "S2_40562.npy"
    assert last.target_path == root / "ANNOTATIONS" / "TARGET_40562.npy"
    assert last.parcels_path == root / "ANNOTATIONS" / "ParcelIDs_40562.npy"


def test_dates_follow_the_numeric_index_not_the_key_text(tmp_path: Path) -> None:
    # 12 dates written with the keys out of order: "10" and "11" must come after "9"
    dates = dates_of(12, dt.date(2019, 1, 1))
    shuffled = {k: dates[k] for k in ("10", "2", "0", "11", "1", "9", "3", "4", "5", "6", "7", "8")}
    write_patch(tmp_path, 1, 12)
    write_meta(tmp_path, [feature(1, 2, shuffled)])
    (patch,) = list_pastis(tmp_path).samples
    assert patch.dates[0] == dt.date(2019, 1, 1) and patch.dates[-1] == dt.date(2019, 4, 21)
    assert list(patch.dates) == sorted(patch.dates)


def test_dates_given_as_a_json_string_or_a_list_are_read_alike(tmp_path: Path) -> None:
    for pid in (1, 2, 3):
        write_patch(tmp_path, pid, 2)
    as_obj = {"0": 20190115, "1": "20190215"}
    write_meta(
        tmp_path,
        [
            feature(1, 1, as_obj),
            feature(2, 1, json.dumps(as_obj)),  # what GDAL-based readers hand over
            feature(3, 1, [20190115, 20190215]),
        ],
    )
    inv = list_pastis(tmp_path)
    assert {p.dates for p in inv.samples} == {(dt.date(2019, 1, 15), dt.date(2019, 2, 15))}


def test_read_returns_dn_in_file_band_order_dates_doy_labels_and_parcels(tmp_path: Path) -> None:
    root = tmp_path
    write_patch(root, 7, 3)
    dates = {"0": 20180924, "1": 20190101, "2": 20200301}
    write_meta(root, [feature(7, 4, dates)])
    s = read_pastis(list_pastis(root).samples[0])
    assert s.image.dtype == np.uint16 and s.image.shape == (3, 10, SIZE, SIZE)
    assert s.bands == PASTIS_FILE_BANDS
    # date 2, band B8A (position 7): 1000 * 8 + 2; date 0, B12 (position 9): 10000
    assert int(s.image[2, PASTIS_FILE_BANDS.index("B8A"), 5, 5]) == 8002
    assert int(s.image[0, PASTIS_FILE_BANDS.index("B12"), 0, 0]) == 10000
    assert s.dates == (dt.date(2018, 9, 24), dt.date(2019, 1, 1), dt.date(2020, 3, 1))
    assert s.doy.tolist() == [267, 1, 61]  # 2020 is a leap year: 31 + 29 + 1
    assert s.label.dtype == np.uint8 and s.label.shape == (SIZE, SIZE)
    assert (int(s.label[0, 0]), int(s.label[40, 0]), int(s.label[80, 0])) == (0, 1, 18)
    assert int(s.label[100, 0]) == LABEL_IGNORE == 255  # void 19
    assert np.unique(s.label).tolist() == [0, 1, 18, 255]
    assert s.parcels.dtype == np.int64
    assert (int(s.parcels[40, 0]), int(s.parcels[40, 100]), int(s.parcels[0, 0])) == (7, 65000, 0)


def test_variable_number_of_dates_across_patches(tmp_path: Path) -> None:
    root = dataset(tmp_path, [(1, 1, 1), (2, 2, 5), (3, 3, 2)])
    shapes = [read_pastis(p).image.shape[0] for p in list_pastis(root).samples]
    assert shapes == [1, 5, 2]


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.int64])
def test_integer_series_of_any_width_are_read_as_uint16(tmp_path: Path, dtype) -> None:
    write_patch(tmp_path, 1, 2, image=series(2, dtype))
    write_meta(tmp_path, [feature(1)])
    image = read_pastis(list_pastis(tmp_path).samples[0]).image
    assert image.dtype == np.uint16 and np.array_equal(image, series(2, np.uint16))


def test_negative_or_float_pixels_name_the_file(tmp_path: Path) -> None:
    neg = series(2)
    neg[1, 0, 0, 0] = -10000
    write_patch(tmp_path, 1, 2, image=neg)
    write_patch(tmp_path, 2, 2, image=series(2, np.float32))
    write_meta(tmp_path, [feature(1), feature(2)])
    first, second = list_pastis(tmp_path).samples
    with pytest.raises(
        ValueError, match=r"S2_1\.npy: DN range -10000\.\.10001 does not fit uint16"
    ):
        read_pastis(first)
    with pytest.raises(ValueError, match=r"S2_2\.npy: pixels are float32; expected integer DN"):
        read_pastis(second)


def test_dates_count_mismatch_names_the_file_and_both_counts(tmp_path: Path) -> None:
    write_patch(tmp_path, 5, 3)
    write_meta(tmp_path, [feature(5, 1, dates_of(4))])
    with pytest.raises(
        ValueError, match=r"S2_5\.npy: 3 dates in the array but 4 in dates-S2 of metadata"
    ):
        read_pastis(list_pastis(tmp_path).samples[0])


@pytest.mark.parametrize(
    ("shape", "shown"),
    [
        ((2, 13, SIZE, SIZE), r"\(2, 13, 128, 128\); expected T x 10 x H x W \(\* x 10 x 128"),
        ((2, 10, 64, 64), r"\(2, 10, 64, 64\); expected T x 10 x H x W"),
        ((10, SIZE, SIZE), r"\(10, 128, 128\); expected T x 10 x H x W"),
    ],
)
def test_wrong_series_shape_names_the_file(tmp_path: Path, shape, shown) -> None:
    write_patch(tmp_path, 3, 2, image=np.ones(shape, dtype=np.int16))
    write_meta(tmp_path, [feature(3)])
    with pytest.raises(ValueError, match=r"S2_3\.npy: array of shape " + shown):
        read_pastis(list_pastis(tmp_path).samples[0])


def test_semantic_values_outside_0_to_19_name_the_file(tmp_path: Path) -> None:
    bad = semantic()
    bad[0, 0], bad[0, 1] = 20, 255
    write_patch(tmp_path, 4, target=np.stack([bad, bad, bad]))
    write_meta(tmp_path, [feature(4)])
    with pytest.raises(
        ValueError, match=r"TARGET_4\.npy: semantic value\(s\) \[20, 255\] outside 0\.\.19"
    ):
        read_pastis(list_pastis(tmp_path).samples[0])


def test_target_channels_and_dtypes(tmp_path: Path) -> None:
    sem = semantic()
    write_patch(tmp_path, 1, target=sem.astype(np.int64))  # semantic only: H x W
    write_patch(tmp_path, 2, target=np.stack([sem, sem, sem]).astype(np.float32))
    write_patch(tmp_path, 3, target=np.stack([sem, sem]))  # 2 channels
    write_patch(tmp_path, 4, target=np.full((3, SIZE, SIZE), 1.5, dtype=np.float32))
    write_meta(tmp_path, [feature(i) for i in (1, 2, 3, 4)])
    one, two, three, four = list_pastis(tmp_path).samples
    expected = read_pastis(one).label
    assert np.array_equal(read_pastis(two).label, expected)
    assert int(expected[100, 0]) == 255
    with pytest.raises(
        ValueError, match=r"TARGET_3\.npy: array of shape \(2, 128, 128\); expected"
    ):
        read_pastis(three)
    with pytest.raises(ValueError, match=r"TARGET_4\.npy: semantic classes are not whole numbers"):
        read_pastis(four)


def test_parcel_ids_of_the_wrong_shape_or_fractional_name_the_file(tmp_path: Path) -> None:
    write_patch(tmp_path, 1, parcels=np.zeros((64, 64), dtype=np.int32))
    write_patch(tmp_path, 2, parcels=np.full((SIZE, SIZE), 0.5))
    write_patch(tmp_path, 3, parcels=np.full((SIZE, SIZE), 12.0))
    write_meta(tmp_path, [feature(i) for i in (1, 2, 3)])
    one, two, three = list_pastis(tmp_path).samples
    with pytest.raises(ValueError, match=r"ParcelIDs_1\.npy: array of shape \(64, 64\)"):
        read_pastis(one)
    with pytest.raises(ValueError, match=r"ParcelIDs_2\.npy: parcel ids are not whole numbers"):
        read_pastis(two)
    parcels = read_pastis(three).parcels
    assert parcels.dtype == np.int64 and int(parcels[0, 0]) == 12


def test_partial_download_lists_what_each_patch_lacks(tmp_path: Path) -> None:
    root = dataset(tmp_path, [(1, 1, 2), (2, 2, 2), (3, 3, 2), (4, 4, 2)])
    (root / "DATA_S2" / "S2_2.npy").unlink()
    (root / "ANNOTATIONS" / "TARGET_3.npy").write_bytes(b"")  # interrupted download
    (root / "ANNOTATIONS" / "ParcelIDs_3.npy").unlink()
    inv = list_pastis(root)
    assert [p.patch_id for p in inv.samples] == [1, 4]
    assert not inv.complete
    assert {i.sample_id: i.missing for i in inv.incomplete} == {
        "pastis_2": ("DATA_S2/S2_2.npy",),
        "pastis_3": ("ANNOTATIONS/TARGET_3.npy", "ANNOTATIONS/ParcelIDs_3.npy"),
    }


def test_a_file_emptied_after_listing_or_corrupt_names_the_file(tmp_path: Path) -> None:
    root = dataset(tmp_path, [(1, 1, 2), (2, 1, 2)])
    one, two = list_pastis(root).samples
    (root / "DATA_S2" / "S2_1.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"S2_1\.npy: the file is empty.*S2 series of patch 1"):
        read_pastis(one)
    (root / "ANNOTATIONS" / "TARGET_2.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"TARGET_2\.npy: not a readable \.npy file"):
        read_pastis(two)


@pytest.mark.parametrize("folder", ["PASTIS", "PASTIS-R"])
def test_the_extracted_folder_is_found_under_the_root(tmp_path: Path, folder: str) -> None:
    dataset(tmp_path / folder, [(1, 1, 2), (2, 1, 2)])
    assert pastis_dir(tmp_path) == tmp_path / folder
    (tmp_path / folder / "DATA_S2" / "S2_2.npy").unlink()
    inv = list_pastis(tmp_path)
    assert [p.patch_id for p in inv.samples] == [1]
    assert inv.samples[0].image_path == tmp_path / folder / "DATA_S2" / "S2_1.npy"
    assert inv.incomplete[0].missing == (f"{folder}/DATA_S2/S2_2.npy",)


def test_missing_or_broken_metadata_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"metadata\.geojson: not found; expected the PASTIS"):
        list_pastis(tmp_path)
    (tmp_path / "metadata.geojson").write_text("")
    with pytest.raises(ValueError, match=r"metadata\.geojson: the file is empty"):
        list_pastis(tmp_path)
    (tmp_path / "metadata.geojson").write_text("{not json")
    with pytest.raises(ValueError, match=r"metadata\.geojson: not valid JSON"):
        list_pastis(tmp_path)
    (tmp_path / "metadata.geojson").write_text(json.dumps({"type": "Feature"}))
    with pytest.raises(
        ValueError, match=r"metadata\.geojson: expected a GeoJSON FeatureCollection"
    ):
        list_pastis(tmp_path)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"Fold": 0}, r"\(feature 0\), ID_PATCH 1: Fold 0; expected one of \(1, 2, 3, 4, 5\)"),
        ({"Fold": 6}, r"Fold 6; expected one of"),
        ({"Fold": "first"}, r"ID_PATCH 1: Fold 'first' is not an integer"),
        ({"ID_PATCH": 1.5}, r"\(feature 0\): ID_PATCH 1\.5 is not an integer"),
        ({"ID_PATCH": None}, r"ID_PATCH None is not an integer"),
        ({"dates-S2": {}}, r"ID_PATCH 1: dates-S2 is empty"),
        ({"dates-S2": {"0": 20181301}}, r"dates-S2 entry 20181301 is not a YYYYMMDD date"),
        ({"dates-S2": {"a": 20180101}}, r"dates-S2 keys must be date indices"),
        ({"dates-S2": "{20180101"}, r"dates-S2 is not JSON"),
        ({"dates-S2": 20180101}, r"dates-S2 must map index -> YYYYMMDD, got int"),
    ],
)
def test_bad_properties_name_the_feature_and_what_was_expected(
    tmp_path: Path, props: dict, message: str
) -> None:
    write_patch(tmp_path, 1)
    f = feature(1)
    f["properties"].update(props)
    write_meta(tmp_path, [f])
    with pytest.raises(ValueError, match=message):
        list_pastis(tmp_path)


def test_missing_property_and_duplicate_id_are_errors(tmp_path: Path) -> None:
    write_patch(tmp_path, 1)
    f = feature(1)
    del f["properties"]["Fold"]
    write_meta(tmp_path, [f])
    with pytest.raises(ValueError, match=r"expected properties ID_PATCH, Fold and dates-S2"):
        list_pastis(tmp_path)
    write_meta(tmp_path, [feature(1, 1), feature("1", 2)])
    with pytest.raises(ValueError, match=r"\(feature 1\): ID_PATCH 1 appears more than once"):
        list_pastis(tmp_path)


def test_whole_number_ids_and_folds_written_as_text_or_float_are_read(tmp_path: Path) -> None:
    write_patch(tmp_path, 10000)
    write_meta(tmp_path, [feature("10000", 2.0)])
    (patch,) = list_pastis(tmp_path).samples
    assert (patch.patch_id, patch.fold, patch.split) == (10000, 2, "fold2")
