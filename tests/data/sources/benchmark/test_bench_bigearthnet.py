"""BigEarthNet readers: the v2 (reBEN) layout with its metadata.parquet, band order and the
exact nearest-neighbour upsampling of 20 m / 60 m bands, partial downloads and bad files, the
reference maps, and the real v1 example patches of the ``bigearthnet-common`` wheel mapped to
the 19 classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio

from benchkit import (
    NATIVE,
    band_values,
    extract_v1_examples,
    write_band,
    write_metadata,
    write_patch,
)
from s2ssl.bands import BAND_PRESETS
from s2ssl.classes import LABEL_IGNORE
from s2ssl.data.sources.benchmark import (
    BIGEARTHNET_BANDS,
    BIGEARTHNET_CLASSES,
    BIGEARTHNET_V1_TO_19,
    list_bigearthnet,
    list_bigearthnet_v1,
    multi_hot,
    read_bigearthnet,
    read_bigearthnet_reference_map,
)
from s2ssl.data.sources.benchmark.bigearthnet import (
    BIGEARTHNET_V1_CLASSES,
    SNOW_CLOUD_METADATA_FILE,
)

TILE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
P1, P2, P3 = f"{TILE}_26_57", f"{TILE}_75_43", f"{TILE}_89_18"
ROWS = [
    {"patch_id": P1, "labels": ["Pastures", "Arable land"], "split": "train", "country": "Austria"},
    {"patch_id": P2, "labels": ["Marine waters"], "split": "validation", "country": "Portugal"},
    {"patch_id": P3, "labels": ["Urban fabric"], "split": "test", "country": "Serbia"},
]


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    for row in ROWS:
        write_patch(tmp_path, row["patch_id"])
    write_metadata(tmp_path / "metadata.parquet", ROWS)
    return tmp_path


def test_bands_are_the_l2a_preset_in_sentinel2_order() -> None:
    assert BAND_PRESETS["l2a"] == BIGEARTHNET_BANDS
    assert BIGEARTHNET_BANDS == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                                 "B09", "B11", "B12")  # fmt: skip


def test_v2_patch_reads_in_band_order_with_exact_nearest_neighbour_upsampling(v2: Path) -> None:
    patch = next(p for p in list_bigearthnet(v2).samples if p.patch_id == P1)
    dn, bands = read_bigearthnet(patch)
    assert bands == BIGEARTHNET_BANDS
    assert dn.dtype == np.uint16 and dn.shape == (12, 120, 120)
    # top-left pixel of every band: 1000 x (position + 1), so the band order is l2a
    assert dn[:, 0, 0].tolist() == [1000 * (k + 1) for k in range(12)]
    # 10 m (B02, position 1): untouched, pixel (r, c) = 2000 + 120 r + c
    assert dn[1, 3, 7] == 2000 + 3 * 120 + 7
    # 20 m (B05, position 4; 60 x 60): 10 m pixel (r, c) is 20 m pixel (r // 2, c // 2)
    assert dn[4, 0:2, 0:2].tolist() == [[5000, 5000], [5000, 5000]]
    assert dn[4, 2, 3] == 5000 + 1 * 60 + 1
    assert dn[4, 119, 119] == 5000 + 59 * 60 + 59
    # 60 m (B01, position 0; 20 x 20): 6 x 6 blocks
    assert (dn[0, 0:6, 0:6] == 1000).all() and dn[0, 6, 0] == 1000 + 20 and dn[0, 0, 6] == 1001
    assert dn[0, 119, 119] == 1000 + 19 * 20 + 19
    # B8A (20 m) sits between B08 and B09 (60 m)
    assert dn[8, 0, 2] == 9000 + 1 and dn[9, 0, 6] == 10000 + 1
    for k, band in enumerate(BIGEARTHNET_BANDS):
        f = NATIVE[band] // 10
        expected = np.repeat(np.repeat(band_values(band), f, axis=0), f, axis=1)
        np.testing.assert_array_equal(dn[k], expected)


def test_v2_metadata_fields_split_normalised_and_labels_in_class_order(v2: Path) -> None:
    inv = list_bigearthnet(v2)
    assert inv.complete and len(inv) == 3
    by_id = {p.patch_id: p for p in inv.samples}
    assert [p.patch_id for p in inv.samples] == [P1, P2, P3]
    assert by_id[P1].labels == ("Arable land", "Pastures")  # published class order
    assert (by_id[P1].split, by_id[P2].split, by_id[P3].split) == ("train", "val", "test")
    assert (by_id[P1].country, by_id[P2].country) == ("Austria", "Portugal")
    assert by_id[P1].path == v2 / "BigEarthNet-S2" / TILE / P1
    assert by_id[P1].reference_map is None and by_id[P1].original_labels == ()


def test_multi_hot_hand_written_case() -> None:
    v = multi_hot(["Pastures", "Arable land", "Marine waters"])
    assert v.dtype == np.uint8 and v.shape == (19,)
    expected = np.zeros(19, np.uint8)
    expected[[2, 4, 18]] = 1  # Arable land 2, Pastures 4, Marine waters 18
    np.testing.assert_array_equal(v, expected)
    assert multi_hot([]).sum() == 0
    with pytest.raises(ValueError, match="'Pasture' is not a BigEarthNet-19 class"):
        multi_hot(["Pasture"])


def test_class_tables() -> None:
    assert len(BIGEARTHNET_CLASSES) == 19 and len(BIGEARTHNET_V1_CLASSES) == 43
    assert BIGEARTHNET_CLASSES.names[:3] == ("Urban fabric", "Industrial or commercial units",
                                             "Arable land")  # fmt: skip
    assert BIGEARTHNET_CLASSES.names[-1] == "Marine waters"
    assert set(BIGEARTHNET_V1_TO_19) == set(BIGEARTHNET_V1_CLASSES.names)
    assert {v for v in BIGEARTHNET_V1_TO_19.values() if v} == set(BIGEARTHNET_CLASSES.names)
    assert sum(v is None for v in BIGEARTHNET_V1_TO_19.values()) == 11
    assert BIGEARTHNET_V1_TO_19["Annual crops associated with permanent crops"] == "Permanent crops"
    assert BIGEARTHNET_V1_TO_19["Sparsely vegetated areas"] == (
        "Natural grassland and sparsely vegetated areas"
    )
    assert BIGEARTHNET_V1_TO_19["Intertidal flats"] is None


def test_snow_and_cloud_patches_are_excluded_by_default(tmp_path: Path) -> None:
    rows = [dict(ROWS[0]), dict(ROWS[1], cloud=True)]
    for row in ROWS:
        write_patch(tmp_path, row["patch_id"])
    write_metadata(tmp_path / "metadata.parquet", rows)
    write_metadata(tmp_path / SNOW_CLOUD_METADATA_FILE, [dict(ROWS[2], snow=True)])
    assert [p.patch_id for p in list_bigearthnet(tmp_path).samples] == [P1]
    every = list_bigearthnet(tmp_path, exclude_snow_cloud=False)
    assert [p.patch_id for p in every.samples] == [P1, P2, P3]


def test_metadata_elsewhere_and_root_being_the_s2_folder(v2: Path, tmp_path: Path) -> None:
    meta = tmp_path / "elsewhere" / "meta.parquet"
    meta.parent.mkdir()
    (v2 / "metadata.parquet").rename(meta)
    inv = list_bigearthnet(v2 / "BigEarthNet-S2", metadata=meta)
    assert len(inv) == 3 and inv.complete


def test_partial_download_lists_what_each_patch_lacks(v2: Path) -> None:
    folder = v2 / "BigEarthNet-S2" / TILE
    (folder / P1 / f"{P1}_B8A.tif").unlink()
    (folder / P2 / f"{P2}_B01.tif").write_bytes(b"")
    shutil.rmtree(folder / P3)
    inv = list_bigearthnet(v2)
    assert len(inv.samples) == 0 and not inv.complete
    missing = {i.sample_id: i.missing for i in inv.incomplete}
    assert missing[P1] == (f"BigEarthNet-S2/{TILE}/{P1}/{P1}_B8A.tif",)
    assert missing[P2] == (f"BigEarthNet-S2/{TILE}/{P2}/{P2}_B01.tif (empty)",)
    assert missing[P3] == (f"BigEarthNet-S2/{TILE}/{P3}/ (patch folder)",)
    # only a patch with nothing on disk counts as not downloaded (reported by count and id file)
    assert {i.sample_id: i.absent for i in inv.incomplete} == {P1: False, P2: False, P3: True}


def test_the_rest_of_a_partial_download_imports(v2: Path) -> None:
    (v2 / "BigEarthNet-S2" / TILE / P2 / f"{P2}_B12.tif").unlink()
    inv = list_bigearthnet(v2)
    assert [p.patch_id for p in inv.samples] == [P1, P3]
    assert [i.sample_id for i in inv.incomplete] == [P2]
    assert read_bigearthnet(inv.samples[1])[0].shape == (12, 120, 120)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            {"labels": ["Pasture"]},
            r"metadata\.parquet row 1 \(.*_75_43\): unknown label.*'Pasture'",
        ),
        ({"split": "validate"}, r"metadata\.parquet row 1 \(.*_75_43\): split 'validate'"),
        ({"patch_id": "S2A_MSIL2A_20170613T101031"}, r"row 1: patch_id .* is not a BigEarthNet"),
        ({"patch_id": P1}, r"row 1: patch_id .*_26_57 already listed at .*row 0"),
    ],
)
def test_bad_metadata_rows_name_the_file_and_row(tmp_path: Path, row: dict, match: str) -> None:
    write_metadata(tmp_path / "metadata.parquet", [ROWS[0], {**ROWS[1], **row}])
    with pytest.raises(ValueError, match=match):
        list_bigearthnet(tmp_path)


def test_missing_metadata_or_column_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"metadata\.parquet: not found"):
        list_bigearthnet(tmp_path)
    pq.write_table(pa.table({"patch_id": [P1], "labels": [["Pastures"]]}), tmp_path / "m.parquet")
    with pytest.raises(ValueError, match=r"m\.parquet: column\(s\) split, country not found"):
        list_bigearthnet(tmp_path, metadata=tmp_path / "m.parquet")


@pytest.mark.parametrize(
    ("band", "data", "match"),
    [
        ("B05", np.zeros((120, 120), np.uint16), r"_B05\.tif: array of shape \(120, 120\)"),
        ("B01", np.zeros((60, 60), np.uint16), r"_B01\.tif: array of shape \(60, 60\).*20 x 20"),
        ("B02", np.zeros((2, 120, 120), np.uint16), r"_B02\.tif: 2 bands"),
        ("B03", np.full((120, 120), 0.1, np.float32), r"_B03\.tif: pixels are float32"),
    ],
)
def test_wrong_band_file_names_the_file(v2: Path, band: str, data: np.ndarray, match: str) -> None:
    patch = list_bigearthnet(v2).samples[0]
    write_band(patch.band_path(band), data, NATIVE[band])
    with pytest.raises(ValueError, match=match):
        read_bigearthnet(patch)


def test_reference_map_codes_become_class_positions(v2: Path) -> None:
    codes = np.zeros((120, 120), np.uint16)
    codes[0, :4] = [211, 231, 523, 122]  # arable, pastures, sea, roads (no 19-class) ...
    codes[1, :3] = [0, 335, 112]  # ... no data, glaciers, discontinuous urban
    ref = v2 / "Reference_Maps" / TILE / P1 / f"{P1}_reference_map.tif"
    write_band(ref, codes, 10)
    patch = next(p for p in list_bigearthnet(v2).samples if p.patch_id == P1)
    assert patch.reference_map == ref
    label = read_bigearthnet_reference_map(patch)
    assert label.dtype == np.uint8 and label.shape == (120, 120)
    assert label[0, :4].tolist() == [2, 4, 18, LABEL_IGNORE]
    assert label[1, :3].tolist() == [LABEL_IGNORE, LABEL_IGNORE, 0]
    codes[5, 5] = 999
    write_band(ref, codes, 10)
    with pytest.raises(ValueError, match=r"_reference_map\.tif: CLC code\(s\) \[999\]"):
        read_bigearthnet_reference_map(patch)
    with pytest.raises(ValueError, match="no reference map"):
        read_bigearthnet_reference_map(list_bigearthnet(v2).samples[1])


# --- v1: the real example patches of the bigearthnet-common wheel --------------------------

V1_FOREST = "S2B_MSIL2A_20170924T93020_69_24"
V1_ARABLE = "S2A_MSIL2A_20170613T101031_87_48"


@pytest.fixture(scope="module")
def v1_examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six v1 Sentinel-2 example patches, extracted from the ``bigearthnet-common`` wheel
    (a ``dev`` dependency) without importing it."""
    return extract_v1_examples(tmp_path_factory.mktemp("ben_v1"))


def test_v1_examples_list_with_labels_mapped_to_19_classes(v1_examples: Path) -> None:
    inv = list_bigearthnet_v1(v1_examples)
    assert len(inv) == 6 and inv.complete
    by_id = {p.patch_id: p for p in inv.samples}
    forest = by_id[V1_FOREST]
    # its json: Coniferous forest, Mixed forest, Transitional woodland/shrub, Peatbogs, Water bodies
    assert forest.original_labels == (
        "Coniferous forest", "Mixed forest", "Transitional woodland/shrub", "Peatbogs",
        "Water bodies",
    )  # fmt: skip
    assert forest.labels == (
        "Coniferous forest", "Mixed forest", "Transitional woodland, shrub", "Inland wetlands",
        "Inland waters",
    )  # fmt: skip
    assert np.flatnonzero(multi_hot(forest.labels)).tolist() == [9, 10, 13, 15, 17]
    # Non-irrigated arable land + Land principally occupied by agriculture ... -> positions 2, 6
    assert np.flatnonzero(multi_hot(by_id[V1_ARABLE].labels)).tolist() == [2, 6]
    assert forest.split is None and forest.country is None
    assert forest.path == v1_examples / "BigEarthNet-S2-Example" / V1_FOREST


def test_v1_example_pixels_read_like_v2(v1_examples: Path) -> None:
    patch = next(p for p in list_bigearthnet_v1(v1_examples).samples if p.patch_id == V1_ARABLE)
    dn, bands = read_bigearthnet(patch)
    assert bands == BIGEARTHNET_BANDS and dn.dtype == np.uint16 and dn.shape == (12, 120, 120)
    for k, band in enumerate(bands):
        with rasterio.open(patch.path / f"{V1_ARABLE}_{band}.tif") as src:
            native = src.read(1)
        f = {120: 1, 60: 2, 20: 6}[native.shape[0]]
        assert f == NATIVE[band] // 10, band  # the file's size is its band's resolution
        np.testing.assert_array_equal(dn[k, ::f, ::f], native)
        np.testing.assert_array_equal(dn[k], np.repeat(np.repeat(native, f, 0), f, 1))
    assert dn.min() > 0  # real L2A reflectance, no nodata in this patch


def test_v1_patch_without_a_19_class_label_or_a_band_is_reported(
    v1_examples: Path, tmp_path: Path
) -> None:
    root = tmp_path / "v1"
    shutil.copytree(v1_examples / "BigEarthNet-S2-Example", root)
    meta = root / V1_ARABLE / f"{V1_ARABLE}_labels_metadata.json"
    meta.write_text(json.dumps({"labels": ["Airports", "Bare rock"]}))
    (root / V1_FOREST / f"{V1_FOREST}_B09.tif").unlink()
    inv = list_bigearthnet_v1(root)
    assert len(inv) == 4
    missing = {i.sample_id: i.missing for i in inv.incomplete}
    assert missing[V1_ARABLE] == (
        f"{V1_ARABLE}/{V1_ARABLE}_labels_metadata.json: no BigEarthNet-19 class among its "
        "labels (Airports, Bare rock)",
    )
    assert missing[V1_FOREST] == (f"{V1_FOREST}/{V1_FOREST}_B09.tif",)


def test_v1_unknown_label_names_the_json(v1_examples: Path, tmp_path: Path) -> None:
    root = tmp_path / "v1"
    shutil.copytree(v1_examples / "BigEarthNet-S2-Example" / V1_FOREST, root / V1_FOREST)
    (root / V1_FOREST / f"{V1_FOREST}_labels_metadata.json").write_text('{"labels": ["Forest"]}')
    with pytest.raises(ValueError, match=r"_labels_metadata\.json: unknown label\(s\) 'Forest'"):
        list_bigearthnet_v1(root)
