"""EuroSAT reader: the published folder layouts, B8A moved from last to Sentinel-2 order, the
published split lists or a seeded stratified split, partial downloads and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from s2ssl.bands import BAND_NAMES
from s2ssl.data.sources.benchmark import (
    EUROSAT_CLASSES,
    EUROSAT_FILE_BANDS,
    list_eurosat,
    read_eurosat,
)
from s2ssl.data.sources.benchmark.eurosat import EUROSAT_CLASS_COUNTS, eurosat_image_dir

NESTED = Path("ds/images/remote_sensing/otherDatasets/sentinel_2/tif")


def write_tif(path: Path, bands: int = 13, size: int = 64, dtype: str = "uint16", fill=None):
    """An EuroSAT-like GeoTIFF whose file band ``i`` holds ``100 * (i + 1)`` (or ``fill``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.stack([np.full((size, size), 100 * (i + 1)) for i in range(bands)]).astype(dtype)
    if fill is not None:
        data[:] = fill
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=bands, dtype=dtype,
        crs=CRS.from_epsg(32633), transform=from_origin(500000, 5000000, 10, 10),
    ) as dst:  # fmt: skip
        dst.write(data)
    return data


def make_tree(base: Path, per_class: int = 5, classes=None) -> None:
    for c in classes or EUROSAT_CLASS_COUNTS:
        for n in range(1, per_class + 1):
            write_tif(base / c / f"{c}_{n}.tif")


def test_file_band_order_is_b8a_last_and_read_back_in_sentinel2_order(tmp_path: Path) -> None:
    assert EUROSAT_FILE_BANDS[-1] == "B8A"
    assert EUROSAT_FILE_BANDS[:-1] == tuple(b for b in BAND_NAMES if b != "B8A")
    path = tmp_path / "EuroSAT_MS" / "Forest" / "Forest_1.tif"
    written = write_tif(path)
    dn, bands = read_eurosat(path)
    assert bands == BAND_NAMES
    assert dn.dtype == np.uint16 and dn.shape == (13, 64, 64)
    # file band 13 (B8A, value 1300) sits at position 8, after B08 (800) and before B09 (900)
    assert dn[:, 0, 0].tolist() == [100, 200, 300, 400, 500, 600, 700, 800, 1300, 900, 1000,
                                    1100, 1200]  # fmt: skip
    assert np.array_equal(dn[BAND_NAMES.index("B8A")], written[12])


@pytest.mark.parametrize("layout", [Path("EuroSAT_MS"), NESTED, Path(".")])
def test_every_published_layout_is_found(tmp_path: Path, layout: Path) -> None:
    make_tree(tmp_path / layout, per_class=1)
    assert eurosat_image_dir(tmp_path) == tmp_path / layout
    inv = list_eurosat(tmp_path, seed=0)
    assert len(inv) == 10 and inv.complete
    assert [s.class_name for s in inv.samples] == list(EUROSAT_CLASSES.names)
    assert [s.label for s in inv.samples] == list(range(10))


def test_ten_classes_in_alphabetical_folder_order() -> None:
    assert EUROSAT_CLASSES.names == (
        "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
        "PermanentCrop", "Residential", "River", "SeaLake",
    )  # fmt: skip
    assert sum(EUROSAT_CLASS_COUNTS.values()) == 27_000


def test_published_split_lists_assign_splits_and_report_absent_files(tmp_path: Path) -> None:
    make_tree(tmp_path / "EuroSAT_MS", per_class=2, classes=["Forest", "River"])
    lists = tmp_path / "splits"
    lists.mkdir()
    (lists / "eurosat-train.txt").write_text("Forest_1.jpg\nRiver_1.jpg\nRiver_9.jpg\n")
    (lists / "eurosat-val.txt").write_text("Forest_2.jpg\n")
    (lists / "eurosat-test.txt").write_text("River_2.tif\n\n")
    inv = list_eurosat(tmp_path, split_dir=lists)
    assert {s.sample_id: s.split for s in inv.samples} == {
        "Forest_1": "train", "Forest_2": "val", "River_1": "train", "River_2": "test",
    }  # fmt: skip
    missing = {i.sample_id: i.missing for i in inv.incomplete}
    assert missing["River_9"] == ("EuroSAT_MS/River/River_9.tif",)
    # the 8 absent class folders are listed once each, not per listed file
    assert missing["Highway"] == ("EuroSAT_MS/Highway/ (class folder)",)
    assert len(missing) == 9


def test_only_some_split_lists_is_an_error(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=1, classes=["Forest"])
    (tmp_path / "eurosat-train.txt").write_text("Forest_1.jpg\n")
    with pytest.raises(ValueError, match=r"eurosat-val\.txt.*not found"):
        list_eurosat(tmp_path)


def test_split_list_with_a_foreign_name_is_an_error(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=1, classes=["Forest"])
    (tmp_path / "eurosat-train.txt").write_text("Forest_1.jpg\n")
    (tmp_path / "eurosat-val.txt").write_text("Forest_2.jpg\n")
    (tmp_path / "eurosat-test.txt").write_text("Desert_3.jpg\n")
    with pytest.raises(ValueError, match=r"eurosat-test\.txt:1: 'Desert_3' is not an EuroSAT"):
        list_eurosat(tmp_path)


def test_seeded_split_is_stratified_reproducible_and_seed_dependent(tmp_path: Path) -> None:
    make_tree(tmp_path / "EuroSAT_MS", per_class=10)
    a = list_eurosat(tmp_path, seed=3)
    b = list_eurosat(tmp_path, seed=3)
    c = list_eurosat(tmp_path, seed=4)
    assert [s.split for s in a.samples] == [s.split for s in b.samples]
    assert [s.split for s in a.samples] != [s.split for s in c.samples]
    for name in EUROSAT_CLASSES.names:
        splits = [s.split for s in a.samples if s.class_name == name]
        assert (splits.count("train"), splits.count("val"), splits.count("test")) == (6, 2, 2)
    d = list_eurosat(tmp_path, seed=3, fractions={"train": 0.5, "test": 0.5})
    assert {s.split for s in d.samples} == {"train", "test"}
    with pytest.raises(ValueError, match="sum to 1"):
        list_eurosat(tmp_path, seed=3, fractions={"train": 0.5, "test": 0.2})


def test_partial_download_lists_missing_classes_and_empty_files(tmp_path: Path) -> None:
    base = tmp_path / "EuroSAT_MS"
    make_tree(base, per_class=2, classes=["Forest", "SeaLake"])
    (base / "Forest" / "Forest_3.tif").write_bytes(b"")
    inv = list_eurosat(tmp_path, seed=0)
    assert sorted(s.sample_id for s in inv.samples) == [
        "Forest_1", "Forest_2", "SeaLake_1", "SeaLake_2",
    ]  # fmt: skip
    missing = {i.sample_id: i.missing for i in inv.incomplete}
    assert missing["Forest_3"] == ("EuroSAT_MS/Forest/Forest_3.tif (empty)",)
    assert "Pasture" in missing and not inv.complete


def test_no_class_folders_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no EuroSAT class folders.*EuroSAT_MS/<Class>"):
        list_eurosat(tmp_path)


def test_file_in_the_wrong_class_folder_is_an_error(tmp_path: Path) -> None:
    write_tif(tmp_path / "Forest" / "River_1.tif")
    with pytest.raises(ValueError, match=r"River_1\.tif: a River file in the Forest folder"):
        list_eurosat(tmp_path)


def test_wrong_band_count_size_or_dtype_names_the_file(tmp_path: Path) -> None:
    rgb = tmp_path / "Forest_1.tif"
    write_tif(rgb, bands=3)
    with pytest.raises(ValueError, match=r"Forest_1\.tif: 3 band\(s\) of 64 x 64; expected .* 13"):
        read_eurosat(rgb)
    big = tmp_path / "Forest_2.tif"
    write_tif(big, size=32)
    with pytest.raises(ValueError, match=r"Forest_2\.tif: 13 band\(s\) of 32 x 32"):
        read_eurosat(big)
    floats = tmp_path / "Forest_3.tif"
    write_tif(floats, dtype="float32")
    with pytest.raises(ValueError, match=r"Forest_3\.tif: pixels are float32; expected integer"):
        read_eurosat(floats)


def test_missing_empty_or_corrupt_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Forest_1\.tif: not found; expected an EuroSAT"):
        read_eurosat(tmp_path / "Forest_1.tif")
    (tmp_path / "Forest_2.tif").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Forest_2\.tif: the file is empty"):
        read_eurosat(tmp_path / "Forest_2.tif")
    (tmp_path / "Forest_3.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"Forest_3\.tif: not a readable GeoTIFF"):
        read_eurosat(tmp_path / "Forest_3.tif")


def test_an_empty_split_list_is_an_error(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=1, classes=["Forest"])
    for name in ("train", "val", "test"):
        (tmp_path / f"eurosat-{name}.txt").write_text("Forest_1.jpg\n" if name == "train" else "")
    with pytest.raises(ValueError, match=r"eurosat-val\.txt: the file is empty.*val list"):
        list_eurosat(tmp_path)


def test_files_no_split_list_names_are_left_out(tmp_path: Path) -> None:
    make_tree(tmp_path / "EuroSAT_MS", per_class=3, classes=["Forest"])
    (tmp_path / "eurosat-train.txt").write_text("Forest_1.jpg\n")
    (tmp_path / "eurosat-val.txt").write_text("Forest_3.jpg\n")
    (tmp_path / "eurosat-test.txt").write_text("\n")
    inv = list_eurosat(tmp_path)
    assert [(s.sample_id, s.split) for s in inv.samples] == [
        ("Forest_1", "train"), ("Forest_3", "val"),
    ]  # fmt: skip
    assert "Forest_2" not in {i.sample_id for i in inv.incomplete}


def test_samples_sort_by_class_then_number_not_by_text(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        write_tif(tmp_path / "River" / f"River_{n}.tif")
    write_tif(tmp_path / "Forest" / "Forest_7.tif")
    inv = list_eurosat(tmp_path, seed=0)
    assert [s.sample_id for s in inv.samples] == ["Forest_7", "River_1", "River_2", "River_10"]
    assert [s.label for s in inv.samples] == [1, 8, 8, 8]
    assert inv.samples[0].path == tmp_path / "Forest" / "Forest_7.tif"


def test_seeded_split_counts_per_class_by_hand(tmp_path: Path) -> None:
    # 60 / 20 / 20 % cut at round(cumulative fraction x n), the last split taking the rest:
    # Forest 5 -> bounds 3, 4, 5 -> 3 / 1 / 1; River 3 -> round(1.8, 2.4) = 2, 2 -> 2 / 0 / 1;
    # SeaLake 1 -> round(0.6, 0.8) = 1, 1 -> 1 / 0 / 0
    make_tree(tmp_path, per_class=5, classes=["Forest"])
    make_tree(tmp_path, per_class=3, classes=["River"])
    make_tree(tmp_path, per_class=1, classes=["SeaLake"])
    for seed in (0, 1, 2):
        inv = list_eurosat(tmp_path, seed=seed)
        counts = {}
        for s in inv.samples:
            counts.setdefault(s.class_name, [0, 0, 0])[("train", "val", "test").index(s.split)] += 1
        assert counts == {"Forest": [3, 1, 1], "River": [2, 0, 1], "SeaLake": [1, 0, 0]}
        assert len(inv.samples) == 9


def test_seeded_split_of_a_class_ignores_the_other_classes(tmp_path: Path) -> None:
    make_tree(tmp_path / "full", per_class=10, classes=["AnnualCrop", "Forest"])
    make_tree(tmp_path / "partial", per_class=10, classes=["Forest"])
    full = {s.sample_id: s.split for s in list_eurosat(tmp_path / "full", seed=5).samples}
    part = {s.sample_id: s.split for s in list_eurosat(tmp_path / "partial", seed=5).samples}
    assert part == {k: v for k, v in full.items() if k.startswith("Forest")}


def test_a_negative_seed_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=1, classes=["Forest"])
    with pytest.raises(ValueError, match="non-negative"):
        list_eurosat(tmp_path, seed=-1)


def test_class_folder_without_tif_is_incomplete_and_rgb_edition_is_refused(
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "EuroSAT_MS", per_class=1, classes=["Forest"])
    (tmp_path / "EuroSAT_MS" / "River").mkdir()
    inv = list_eurosat(tmp_path, seed=0)
    missing = {i.sample_id: i.missing for i in inv.incomplete}
    assert missing["River"] == ("EuroSAT_MS/River/ (no .tif file)",)
    assert [s.sample_id for s in inv.samples] == ["Forest_1"]
    (tmp_path / "EuroSAT_MS" / "River" / "River_1.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ValueError, match=r"River: JPEG files only \(the RGB edition"):
        list_eurosat(tmp_path, seed=0)


def test_int16_pixels_are_read_and_negative_ones_refused(tmp_path: Path) -> None:
    ok = tmp_path / "Forest_1.tif"
    write_tif(ok, dtype="int16")
    dn, _ = read_eurosat(ok)
    assert dn.dtype == np.uint16 and int(dn[BAND_NAMES.index("B8A"), 5, 5]) == 1300
    bad = tmp_path / "Forest_2.tif"
    write_tif(bad, dtype="int16", fill=-3)
    with pytest.raises(ValueError, match=r"Forest_2\.tif: DN range -3\.\.-3 does not fit uint16"):
        read_eurosat(bad)
