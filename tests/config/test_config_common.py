"""Tests of s2ssl.config.common: error descriptions and dotted keys."""

from __future__ import annotations

from typing import Any

import pytest
from configkit import config_error, line_for

from s2ssl.config import set_dotted
from s2ssl.config.common import unique_items


def test_unknown_key_names_path_and_allowed_keys() -> None:
    msg = config_error({"fetch.synthetic.landcover.patch_sise": 64})
    line = line_for(msg, "fetch.synthetic.landcover.patch_sise")
    assert "unknown key" in line
    allowed = line.split("allowed keys here:", 1)[1]
    assert [k.strip() for k in allowed.split(",")] == [
        "patches_per_region",
        "patch_size",
        "max_cloud_coverage",
        "splits",
    ]


def test_unknown_key_inside_a_region_lists_region_keys() -> None:
    msg = config_error({"fetch.synthetic.regions.1.colour": "red"})
    line = line_for(msg, "fetch.synthetic.regions.1.colour")
    assert "hemisphere" in line
    assert "class_priors" in line
    assert "phenology_shift_days" in line


def test_every_error_is_reported_at_once() -> None:
    msg = config_error({"seed": -1, "fetch.synthetic.unlabelled.n_datez": 3})
    line_for(msg, "seed")
    line_for(msg, "fetch.synthetic.unlabelled.n_datez")


def test_set_dotted_nested_dicts_and_list_indices() -> None:
    raw: dict[str, Any] = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x": [10, 20]}
    set_dotted(raw, "a.b.1.c", 5)
    set_dotted(raw, "x.0", 11)
    set_dotted(raw, "new.deep.key", "v")  # missing levels are created
    set_dotted(raw, "top", 3)
    assert raw == {
        "a": {"b": [{"c": 1}, {"c": 5}]},
        "x": [11, 20],
        "new": {"deep": {"key": "v"}},
        "top": 3,
    }


def test_set_dotted_bad_list_index_raises() -> None:
    raw: dict[str, Any] = {"x": [1]}
    with pytest.raises(IndexError):
        set_dotted(raw, "x.3", 0)
    with pytest.raises(ValueError):
        set_dotted(raw, "x.first", 0)


def test_unique_items_names_the_repeated_items() -> None:
    assert unique_items([1, 2, 3], "xs") == [1, 2, 3]
    with pytest.raises(ValueError, match=r"xs must be unique; repeated: \['2'\]"):
        unique_items([1, 2, 2], "xs")
