"""fetch.source: local with a PASTIS-like layout — 10 band files per date, 3 dates per sample,
label values 0-19 with 19 = void: the dataset keeps its own classes and the bands it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from rasterkit import write_geotiff
from s2ssl.bands import BAND_PRESETS
from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import ConfigError, Params, parse_params
from s2ssl.data.fetch import fetch
from s2ssl.data.store import open_dataset
from s2ssl.validation.validate import ValidationFailedError, validate
from testkit import read_repo_params

PASTIS = BAND_PRESETS["pastis"]
DATES = ("20210405", "20210610", "20210820")
NAMES = {v: f"class_{v:02d}" for v in range(19)}  # 19 is void


def pastis_like(root: Path, n_samples: int = 2, size: int = 16) -> dict[int, int]:
    """Write ``n_samples`` sample folders; returns the label value counts over all samples."""
    rng = np.random.default_rng(7)
    counts: dict[int, int] = {}
    for s in range(n_samples):
        sample = root / f"patch_{s}"
        for d, day in enumerate(DATES):
            folder = sample / f"S2_{day}"
            folder.mkdir(parents=True)
            for b, band in enumerate(PASTIS):
                dn = np.full((1, size, size), 1000 + 100 * b + 10 * d + s, np.uint16)
                write_geotiff(folder / f"S2_{day}_{band}.tif", dn)
        label = rng.integers(0, 20, (1, size, size)).astype(np.uint8)
        label[0, 0, :] = 19  # some void on every sample
        write_geotiff(sample / f"patch_{s}_label.tif", label)
        for v, n in zip(*np.unique(label, return_counts=True), strict=True):
            counts[int(v)] = counts.get(int(v), 0) + int(n)
    return counts


def params_for(root: Path, bands: Any, **croptype: Any) -> Params:
    raw = read_repo_params()
    raw["bands"] = bands
    raw["fetch"]["source"] = "local"
    raw["fetch"]["start_date"] = "2020-01-01"
    raw["fetch"]["end_date"] = "2022-12-31"
    raw["fetch"]["datasets"] = ["croptype"]
    spec = {"path": str(root), "patch_size": 16, "n_dates": 3, "labels": {"croptype": "_label"}}
    spec.update(croptype)
    raw["fetch"]["local"] = {"croptype": spec}
    return parse_params(raw)


def test_pastis_like_folders_import_with_their_own_classes_and_bands(tmp_path: Path) -> None:
    root = tmp_path / "pastis"
    pastis_like(root)
    params = params_for(
        root,
        "pastis",
        label_classes={"croptype": NAMES},
        ignore_values={"croptype": [19]},
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert not result.skipped
    ds = open_dataset(tmp_path / "raw" / "croptype")
    assert ds.bands == PASTIS and ds.specs["image"].shape == (3, 10, 16, 16)
    classes = ds.classes("croptype")
    assert classes.names == tuple(NAMES.values()) and classes.values == tuple(range(19))
    assert classes.ignored_values == (19,)
    for i in range(len(ds)):
        s = int(Path(ds.index.iloc[i]["source_file"]).name.split("_")[1])
        image = ds.read("image", i)
        assert image[2, PASTIS.index("B8A"), 0, 0] == 1000 + 100 * PASTIS.index("B8A") + 20 + s
        with rasterio.open(root / f"patch_{s}" / f"patch_{s}_label.tif") as src:
            raw_label = src.read(1)
        stored = ds.read("croptype", i)
        assert (stored[raw_label == 19] == LABEL_IGNORE).all()
        np.testing.assert_array_equal(stored[raw_label < 19], raw_label[raw_label < 19])


def test_unmapped_label_values_fail_naming_values_and_pixel_counts(tmp_path: Path) -> None:
    root = tmp_path / "pastis"
    counts = pastis_like(root)
    mapped = {v: n for v, n in NAMES.items() if v < 17}  # 17 and 18 unmapped
    params = params_for(
        root, "pastis", label_classes={"croptype": mapped}, ignore_values={"croptype": [19]}
    )
    with pytest.raises(ValueError, match="neither mapped") as err:
        fetch(params, tmp_path / "raw", tmp_path / "reports")
    message = str(err.value)
    assert f"17 ({counts[17]} px), 18 ({counts[18]} px)" in message  # summed over both samples
    assert "fetch.local.croptype.label_classes" in message and "ignore_values" in message
    assert not (tmp_path / "raw" / "croptype").exists()


def test_a_label_raster_without_a_mapping_is_refused_with_an_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"label_classes\.croptype is missing.*ignore_values"):
        params_for(tmp_path, "pastis")


def test_a_value_both_mapped_and_ignored_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[19\] are both in label_classes"):
        params_for(
            tmp_path,
            "pastis",
            label_classes={"croptype": {**NAMES, 19: "void"}},
            ignore_values={"croptype": [19]},
        )


def test_configured_bands_the_files_lack_are_left_out_not_filled(tmp_path: Path) -> None:
    root = tmp_path / "pastis"
    pastis_like(root, n_samples=1)
    params = params_for(
        root, "l2a", label_classes={"croptype": NAMES}, ignore_values={"croptype": [19]}
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(tmp_path / "raw" / "croptype")
    assert ds.bands == PASTIS and "B01" not in ds.bands and "filled_bands" not in ds.attrs
    assert result.summary["croptype.n_samples"] == 1
    report = json.loads((tmp_path / "reports" / "acquisition.json").read_text())
    assert report["datasets"]["croptype"]["configured_bands_in_no_file"] == ["B01", "B09"]
    with pytest.raises(ValidationFailedError, match=r"lacks band\(s\) B01, B09 .*bands: pastis"):
        validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "vr")


def test_an_image_lacking_a_band_the_others_hold_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "pastis"
    pastis_like(root)
    (root / "patch_1" / f"S2_{DATES[1]}" / f"S2_{DATES[1]}_B05.tif").unlink()
    params = params_for(
        root, "pastis", label_classes={"croptype": NAMES}, ignore_values={"croptype": [19]}
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert [(Path(s.item).name, s.reason) for s in result.skipped] == [("patch_1", "missing bands")]
    assert "B05" in result.skipped[0].detail
    assert open_dataset(tmp_path / "raw" / "croptype").bands == PASTIS
