"""Tests of s2ssl.config.fetch: the synthetic world, dataset specs and the fetch range."""

from __future__ import annotations

import datetime as dt

from configkit import config_error, line_for

from s2ssl.config import load_params
from testkit import REPO_PARAMS


def test_bad_source_names_path_and_allowed_value() -> None:
    line = line_for(config_error({"fetch.source": "ftp"}), "fetch.source")
    assert "'synthetic'" in line
    assert "'ftp'" in line


def test_bad_hemisphere_names_path_and_allowed_values() -> None:
    msg = config_error({"fetch.synthetic.regions.0.hemisphere": "east"})
    line = line_for(msg, "fetch.synthetic.regions.0.hemisphere")
    assert "'north'" in line
    assert "'south'" in line
    assert "'east'" in line


def test_bad_dataset_name_in_list() -> None:
    msg = config_error({"fetch.datasets": ["landcover", "imagenet"]})
    line = line_for(msg, "fetch.datasets.1")
    assert "'croptype'" in line
    assert "'imagenet'" in line


def test_bad_processing_baseline() -> None:
    msg = config_error({"fetch.synthetic.processing_baseline": "02.00"})
    line = line_for(msg, "fetch.synthetic.processing_baseline")
    assert "'by_date'" in line
    assert "'04.00'" in line


def test_class_priors_must_sum_to_one() -> None:
    msg = config_error({"fetch.synthetic.regions.0.class_priors.water": 0.5})
    line = line_for(msg, "fetch.synthetic.regions.0.class_priors")
    assert "sum to 1" in line
    assert "1.4600" in line


def test_unknown_crop_is_rejected() -> None:
    msg = config_error({"fetch.synthetic.regions.3.crop_mix.rice": 0.0})
    line = line_for(msg, "fetch.synthetic.regions.3.crop_mix")
    assert "['rice']" in line
    assert "winter_wheat" in line  # the allowed crops are listed


def test_unknown_landcover_class_is_rejected() -> None:
    raw_priors = dict(load_params(REPO_PARAMS).fetch.synthetic.regions[1].class_priors)
    raw_priors["glacier"] = raw_priors.pop("bare")
    msg = config_error({"fetch.synthetic.regions.1.class_priors": raw_priors})
    line = line_for(msg, "fetch.synthetic.regions.1.class_priors")
    assert "glacier" in line
    assert "wetland" in line


def test_fraction_out_of_range() -> None:
    msg = config_error({"fetch.synthetic.regions.0.cloudiness": 1.5})
    assert "less than or equal to 1" in line_for(msg, "fetch.synthetic.regions.0.cloudiness")


def test_duplicate_region_names() -> None:
    msg = config_error({"fetch.synthetic.regions.2.name": "north_west"})
    line = line_for(msg, "fetch.synthetic.regions")
    assert "unique" in line
    assert "['north_west']" in line


def test_region_name_pattern() -> None:
    msg = config_error({"fetch.synthetic.regions.0.name": "North West"})
    assert "pattern" in line_for(msg, "fetch.synthetic.regions.0.name")


def test_lon_range_must_be_ordered() -> None:
    msg = config_error({"fetch.synthetic.regions.0.lon": [4.0, 1.0]})
    assert "min < max" in line_for(msg, "fetch.synthetic.regions.0.lon")


def test_latitudes_must_match_hemisphere() -> None:
    msg = config_error({"fetch.synthetic.regions.2.lat": [10.0, 12.0]})
    line = line_for(msg, "fetch.synthetic.regions.2")
    assert "southern hemisphere" in line


def test_region_list_must_not_be_empty() -> None:
    msg = config_error({"fetch.synthetic.regions": []})
    assert "at least 1" in line_for(msg, "fetch.synthetic.regions")


def test_landcover_patch_size_divisible_by_16() -> None:
    msg = config_error({"fetch.synthetic.landcover.patch_size": 40})
    assert "divisible by 16" in line_for(msg, "fetch.synthetic.landcover.patch_size")
    # 48 is fine for landcover
    p = load_params(REPO_PARAMS, overrides={"fetch.synthetic.landcover.patch_size": 48})
    assert p.fetch.synthetic.landcover.patch_size == 48


def test_croptype_patch_size_divisible_by_4() -> None:
    msg = config_error({"fetch.synthetic.croptype.patch_size": 30})
    assert "divisible by 4" in line_for(msg, "fetch.synthetic.croptype.patch_size")


def test_splits_must_sum_to_one() -> None:
    msg = config_error({"fetch.synthetic.croptype.splits.val": 0.3})
    line = line_for(msg, "fetch.synthetic.croptype.splits")
    assert "must be 1" in line


def test_croptype_season_must_hold_n_dates() -> None:
    msg = config_error(
        {"fetch.synthetic.croptype.season_start_doy": 300, "fetch.synthetic.croptype.n_dates": 40}
    )
    assert "season_end_doy" in line_for(msg, "fetch.synthetic.croptype")


def test_end_date_too_close_to_start_date() -> None:
    msg = config_error({"fetch.end_date": dt.date(2019, 6, 1)})
    line = line_for(msg, "fetch")
    assert "end_date" in line
    assert "400 days" in line
    # 400 days exactly is accepted
    p = load_params(REPO_PARAMS, overrides={"fetch.end_date": dt.date(2020, 2, 5)})
    assert (p.fetch.end_date - p.fetch.start_date).days == 400


def test_positive_counts() -> None:
    msg = config_error({"fetch.synthetic.unlabelled.locations_per_region": 0})
    assert "greater than 0" in line_for(msg, "fetch.synthetic.unlabelled.locations_per_region")
