"""The validate stage: one test per failure class, each caught with the right reason while the
rest of the dataset is kept; clean data (synthetic and real) passes; nothing is lost."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from s2ssl.config import Params, load_params
from s2ssl.data.store import RESERVED_COLUMNS, open_dataset, write_dataset
from s2ssl.data.validated import fingerprint, open_validated
from s2ssl.validation.validate import ValidateResult, ValidationFailedError, validate

Mutator = Callable[[dict[str, np.ndarray], pd.DataFrame, dict[str, Any]], None]


@pytest.fixture(scope="module")
def params(tiny_raw: Path) -> Params:
    return load_params(tiny_raw.parent / "params.yaml")


def copy_with(tiny_raw: Path, raw: Path, name: str, mutate: Mutator | None = None) -> Path:
    """Copy dataset ``name`` of the tiny world to ``raw/name``, applying ``mutate`` in memory."""
    src = open_dataset(tiny_raw / name)
    arrays = {k: src.read_many(k, np.arange(len(src))) for k in src.array_names}
    index = src.index.drop(columns=list(RESERVED_COLUMNS)).copy()
    attrs = dict(src.attrs)
    if mutate is not None:
        mutate(arrays, index, attrs)
    return write_dataset(raw / name, arrays, index, name=name, shard_size=5, attrs=attrs)


def run(params: Params, raw: Path, tmp: Path, names: list[str]) -> ValidateResult:
    return validate(params, raw, tmp / "validated", tmp / "reports", datasets=names)


def quarantined(result: ValidateResult, name: str) -> dict[str, list[str]]:
    (v,) = [v for v in result.validations if v.name == name]
    return dict(zip(v.quarantine["sample_id"], v.quarantine["reasons"], strict=True))


def ids(tiny_raw: Path, name: str) -> list[str]:
    return open_dataset(tiny_raw / name).index["sample_id"].tolist()


# ---------------------------------------------------------------- clean data passes


def test_clean_synthetic_world_passes(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    names = ["unlabelled", "landcover", "croptype"]
    result = validate(params, tiny_raw, tmp_path / "validated", tmp_path / "reports")
    assert all(v.usable for v in result.validations)
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    for name in names:
        n = len(open_dataset(tiny_raw / name))
        assert summary[f"{name}.n_samples"] == n
        assert summary[f"{name}.n_quarantined"] == 0
        assert summary[f"{name}.pass_rate.dn_max"] == 1.0
        v = open_validated(tmp_path / "validated" / name)
        assert len(v.store) == n
        assert v.norm_stats.bands[3] == "B04"
        assert all(0 < s < 1 for s in v.norm_stats.std)
        assert all(
            lo <= m <= hi
            for lo, m, hi in zip(
                v.norm_stats.low, v.norm_stats.mean, v.norm_stats.high, strict=True
            )
        )
    assert (tmp_path / "reports" / "datadocs" / "index.html").is_file()
    assert (tmp_path / "reports" / "band_stats.png").stat().st_size > 1000
    csv = pd.read_csv(tmp_path / "reports" / "quarantine.csv")
    assert list(csv.columns) == ["dataset", "position", "sample_id", "split", "reasons"]
    assert csv.empty


# ---------------------------------------------------------------- sample-level failures


def test_nans_are_quarantined(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    """The writer refuses NaNs, so they come from a shard edited or damaged after the fact."""

    def to_float(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["image"] = arrays["image"].astype(np.float32)

    path = copy_with(tiny_raw, tmp_path / "raw", "landcover", to_float)
    shard = open_dataset(path)
    first = sorted((path / "shards").iterdir())[int(shard.index.at[1, "shard"])]
    image = np.load(first / "image.npy", mmap_mode="r+")
    image[int(shard.index.at[1, "row"]), 0, 2, :5, :5] = np.nan
    image.flush()
    del image
    result = run(params, tmp_path / "raw", tmp_path, ["landcover"])
    bad = quarantined(result, "landcover")
    sid = ids(tiny_raw, "landcover")[1]
    assert list(bad) == [sid]
    assert any(r.startswith("nan_fraction <= 0.0: got") for r in bad[sid])
    assert (
        len(open_validated(tmp_path / "validated" / "landcover").store)
        == len(ids(tiny_raw, "landcover")) - 1
    )


def test_dn_out_of_range_names_the_band(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def saturate(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["image"][2, 0, 3, 10:20, 10:20] = 65535  # B04

    copy_with(tiny_raw, tmp_path / "raw", "landcover", saturate)
    result = run(params, tmp_path / "raw", tmp_path, ["landcover"])
    bad = quarantined(result, "landcover")
    sid = ids(tiny_raw, "landcover")[2]
    assert list(bad) == [sid]
    (reason,) = bad[sid]
    assert reason.startswith("dn_max <= 20000: got 6")  # 65535 + offset (0 or -1000)
    assert reason.endswith("in B04")


def test_all_cloud_sample_is_quarantined(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def cloud(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["mask"][0] = 1

    copy_with(tiny_raw, tmp_path / "raw", "croptype", cloud)
    result = run(params, tmp_path / "raw", tmp_path, ["croptype"])
    bad = quarantined(result, "croptype")
    sid = ids(tiny_raw, "croptype")[0]
    assert list(bad) == [sid]
    assert bad[sid] == ["cloud_fraction <= 0.9: got 1"]


def test_dates_out_of_order_or_range(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def dates(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        d0 = list(index.at[0, "dates"])
        d0[1], d0[2] = d0[2], d0[1]
        index.at[0, "dates"] = d0
        d3 = list(index.at[3, "dates"])
        d3[0] = "2012-05-01"
        index.at[3, "dates"] = d3
        d4 = list(index.at[4, "dates"])
        d4[-1] = "not a date"
        index.at[4, "dates"] = d4

    copy_with(tiny_raw, tmp_path / "raw", "croptype", dates)
    result = run(params, tmp_path / "raw", tmp_path, ["croptype"])
    bad = quarantined(result, "croptype")
    sids = ids(tiny_raw, "croptype")
    assert set(bad) == {sids[0], sids[3], sids[4]}
    assert bad[sids[0]] == ["dates_ordered: false"]
    assert bad[sids[3]] == ["dates_in_range: false"]
    assert set(bad[sids[4]]) == {"dates_in_range: false", "dates_ordered: false"}


def test_missing_crs_or_transform(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def geo(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        index.at[0, "crs"] = ""
        index.at[1, "crs"] = "EPSG:not-a-code"
        index.at[2, "transform"] = [10.0, 0.0, float("nan"), 0.0, -10.0, 0.0]

    copy_with(tiny_raw, tmp_path / "raw", "landcover", geo)
    result = run(params, tmp_path / "raw", tmp_path, ["landcover"])
    bad = quarantined(result, "landcover")
    sids = ids(tiny_raw, "landcover")
    assert bad == {
        sids[0]: ["crs_present: false"],
        sids[1]: ["crs_present: false"],
        sids[2]: ["transform_present: false"],
    }


def test_unknown_label_values(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def labels(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["landcover"][5, :2, :3] = 42  # 6 pixels of an unknown class
        arrays["landcover"][6] = 255  # fully unlabelled: coverage 0

    copy_with(tiny_raw, tmp_path / "raw", "landcover", labels)
    result = run(params, tmp_path / "raw", tmp_path, ["landcover"])
    bad = quarantined(result, "landcover")
    sids = ids(tiny_raw, "landcover")
    assert bad == {
        sids[5]: ["landcover_unknown == 0: got 6"],
        sids[6]: ["landcover_coverage >= 0.5: got 0"],
    }


def test_duplicate_ids_and_every_reason_listed(
    tiny_raw: Path, params: Params, tmp_path: Path
) -> None:
    def many(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        index.at[1, "sample_id"] = index.at[0, "sample_id"]
        index.at[3, "crs"] = None
        arrays["mask"][3] = 1

    copy_with(tiny_raw, tmp_path / "raw", "landcover", many)
    result = run(params, tmp_path / "raw", tmp_path, ["landcover"])
    (v,) = result.validations
    reasons = dict(zip(v.quarantine["position"], v.quarantine["reasons"], strict=True))
    assert reasons[0] == reasons[1] == ["sample_id is unique: got " + ids(tiny_raw, "landcover")[0]]
    assert set(reasons[3]) == {"cloud_fraction <= 0.9: got 1", "crs_present: false"}


# ---------------------------------------------------------------- dataset-level failures


def test_wrong_band_count_fails_the_dataset(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def drop(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["image"] = arrays["image"][:, :, :11]

    copy_with(tiny_raw, tmp_path / "raw", "landcover", drop)
    with pytest.raises(
        ValidationFailedError, match=r"landcover:\n.*images have 11 bands but the dataset names 12"
    ):
        run(params, tmp_path / "raw", tmp_path, ["landcover"])
    assert not (tmp_path / "validated" / "landcover").exists()
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["landcover.usable"] == 0


def test_a_dataset_lacking_a_configured_band_fails_naming_it_and_the_fix(
    tiny_raw: Path, params: Params, tmp_path: Path
) -> None:
    def no_b05(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["image"] = np.delete(arrays["image"], attrs["bands"].index("B05"), axis=2)
        attrs["bands"] = [b for b in attrs["bands"] if b != "B05"]

    copy_with(tiny_raw, tmp_path / "raw", "landcover", no_b05)
    with pytest.raises(
        ValidationFailedError, match=r"landcover:\n.*lacks band\(s\) B05 .*set `bands` to"
    ):
        run(params, tmp_path / "raw", tmp_path, ["landcover"])
    assert not (tmp_path / "validated" / "landcover").exists()
    without = [b for b in params.band_names if b != "B05"]
    result = run(
        params.model_copy(update={"bands": without}), tmp_path / "raw", tmp_path, ["landcover"]
    )
    assert result.validations[0].usable
    stats = open_validated(tmp_path / "validated" / "landcover").norm_stats
    assert stats.bands == tuple(without)  # per band, by name, over what the dataset holds


def test_norm_stats_cover_every_band_the_dataset_holds(
    tiny_raw: Path, params: Params, tmp_path: Path
) -> None:
    copy_with(tiny_raw, tmp_path / "raw", "landcover")
    rgb = params.model_copy(update={"bands": "rgb"})  # a subset of what the dataset holds
    run(rgb, tmp_path / "raw", tmp_path, ["landcover"])
    stats = open_validated(tmp_path / "validated" / "landcover").norm_stats
    assert stats.bands == open_dataset(tmp_path / "raw" / "landcover").bands


def test_too_many_failures_fail_the_dataset(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def most(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["mask"][: len(index) // 2] = 1

    copy_with(tiny_raw, tmp_path / "raw", "landcover", most)
    with pytest.raises(ValidationFailedError) as err:
        run(params, tmp_path / "raw", tmp_path, ["landcover"])
    message = str(err.value)
    assert "only 50.0% of 16 samples pass (minimum 80%)" in message
    assert "8 of 16 samples failed; most: cloud_fraction (8)" in message
    csv = pd.read_csv(tmp_path / "reports" / "quarantine.csv")
    assert len(csv) == 8 and (csv["dataset"] == "landcover").all()


def test_empty_split_fails_the_dataset(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    def no_test(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        test = (index["split"] == "test").to_numpy()
        arrays["mask"][test] = 1

    copy_with(tiny_raw, tmp_path / "raw", "landcover", no_test)
    with pytest.raises(ValidationFailedError, match=r"split\(s\) \['test'\] would be left empty"):
        run(params, tmp_path / "raw", tmp_path, ["landcover"])


def test_unreadable_store_fails_clearly(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    path = copy_with(tiny_raw, tmp_path / "raw", "landcover")
    shard = next((path / "shards").iterdir()) / "image.npy"
    shard.write_bytes(shard.read_bytes()[:200])  # truncated by a crash / bad copy
    with pytest.raises(ValidationFailedError, match="cannot read the dataset"):
        run(params, tmp_path / "raw", tmp_path, ["landcover"])


# ---------------------------------------------------------------- nothing is lost


def test_raw_data_untouched_and_previous_outputs_survive_a_failure(
    tiny_raw: Path, params: Params, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    copy_with(tiny_raw, raw, "landcover")
    run(params, raw, tmp_path, ["landcover"])
    manifest = (tmp_path / "validated" / "landcover" / "manifest.json").read_bytes()

    def corrupt(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["image"][0, 0, 0, 0, 0] = 65535
        arrays["image"] = arrays["image"][:, :, :11]

    bad_raw = tmp_path / "bad_raw"
    copy_with(tiny_raw, bad_raw, "landcover", corrupt)
    before = fingerprint(bad_raw / "landcover")
    with pytest.raises(ValidationFailedError):
        run(params, bad_raw, tmp_path, ["landcover"])
    assert fingerprint(bad_raw / "landcover") == before  # raw data never modified
    assert (tmp_path / "validated" / "landcover" / "manifest.json").read_bytes() == manifest
    assert len(open_validated(tmp_path / "validated" / "landcover").store) == 16


def test_quarantine_keeps_raw_and_validated_view_excludes(
    tiny_raw: Path, params: Params, tmp_path: Path
) -> None:
    def one(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        arrays["mask"][4] = 1

    raw = copy_with(tiny_raw, tmp_path / "raw", "landcover", one)
    run(params, tmp_path / "raw", tmp_path, ["landcover"])
    assert len(open_dataset(raw)) == 16
    v = open_validated(tmp_path / "validated" / "landcover")
    assert len(v.store) == 15
    assert ids(tiny_raw, "landcover")[4] not in set(v.store.index["sample_id"])
    assert v.quarantine["position"].tolist() == [4]
    # the validated view reads the same pixels as the raw store
    np.testing.assert_array_equal(v.store.read("image", 4), open_dataset(raw).read("image", 5))


def test_changed_raw_data_is_refused(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    copy_with(tiny_raw, tmp_path / "raw", "landcover")
    run(params, tmp_path / "raw", tmp_path, ["landcover"])
    shutil.rmtree(tmp_path / "raw" / "landcover")

    def shuffle(arrays: dict[str, np.ndarray], index: pd.DataFrame, attrs: dict[str, Any]) -> None:
        index["split"] = index["split"][::-1].to_numpy()

    copy_with(tiny_raw, tmp_path / "raw", "landcover", shuffle)
    with pytest.raises(ValueError, match="changed since it was validated"):
        open_validated(tmp_path / "validated" / "landcover")


# ---------------------------------------------------------------- real imagery

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "eolearn_slovenia_testpatch.npz"


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data is absent (a user's fresh clone)")
def test_real_sentinel2_patch_passes(tiny_raw: Path, params: Params, tmp_path: Path) -> None:
    from s2ssl.bands import BAND_NAMES

    data = np.load(REAL)
    bands = [str(b) for b in data["l1c_bands"]]
    assert bands == list(BAND_NAMES)
    order = np.argsort(data["ref_scene_timestamp_idx"])  # the file lists scenes out of order
    scenes = data["ref_scenes_l1c"][order]  # [5, 101, 100, 13] TOA reflectance
    when = data["ref_scene_timestamp_idx"][order]
    dates = [str(data["timestamps"][i])[:10] for i in when]
    dn = np.rint(scenes * 10_000).astype(np.uint16).transpose(0, 3, 1, 2)  # [T, C, H, W]
    patches = [(y, x) for y in (0, 37) for x in (0, 36)]  # four overlapping 64 x 64 patches
    image = np.stack([dn[:, :, y : y + 64, x : x + 64] for y, x in patches])
    clm = data["clm"][when].astype(np.uint8)
    clm = clm.reshape(clm.shape[0], 101, 100)
    mask = np.stack([clm[:, y : y + 64, x : x + 64] for y, x in patches])
    minx, _, _, maxy = (float(v) for v in data["bbox_utm33n"])
    index = pd.DataFrame(
        {
            "sample_id": [f"slovenia-{i}" for i in range(4)],
            "split": ["train", "train", "val", "test"],
            "region": "slovenia",
            "crs": "EPSG:32633",
            "transform": [
                [10.0, 0.0, minx + 10 * x, 0.0, -10.0, maxy - 10 * y] for y, x in patches
            ],
            "dates": [dates] * 4,
            "dn_offset": [[0] * len(dates)] * 4,
        }
    )
    write_dataset(
        tmp_path / "raw" / "slovenia",
        {"image": image, "mask": mask},
        index,
        attrs={"bands": bands},
    )
    real = load_params(
        tiny_raw.parent / "params.yaml",
        overrides={"fetch.start_date": "2015-01-01", "fetch.end_date": "2017-12-31"},
    )
    result = run(real, tmp_path / "raw", tmp_path, ["slovenia"])
    (v,) = result.validations
    assert v.usable and v.quarantine.empty
    stats = open_validated(tmp_path / "validated" / "slovenia").norm_stats
    assert 0.0 < stats.mean[BAND_NAMES.index("B08")] < 0.6  # vegetated: NIR bright, not saturated
    assert stats.mean[BAND_NAMES.index("B08")] > stats.mean[BAND_NAMES.index("B04")]
