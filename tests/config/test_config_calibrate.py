"""The ``calibrate`` section: the repository's values and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from s2ssl.config import ConfigError, parse_params, set_dotted


def test_the_repository_section(repo_params_raw: dict[str, Any]) -> None:
    cal = parse_params(repo_params_raw).calibrate
    assert cal.tasks == ["landcover", "croptype", "scene"]
    assert cal.seasonal_dates == 5
    assert cal.pixel_classifier.max_train_pixels == 20000
    assert cal.scene_classifier.C == 1.0
    assert cal.targets.seasonal_gap_min == 0.03 and cal.targets.zero_shot_drop_min == 0.1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("calibrate.tasks", ["landcover", "landcover"], "tasks must be unique"),
        ("calibrate.tasks", [], "calibrate.tasks"),
        ("calibrate.tasks", ["roads"], "calibrate.tasks.0"),
        ("calibrate.seasonal_dates", 1, "calibrate.seasonal_dates"),
        ("calibrate.pixel_classifier.max_leaf_nodes", 1, "max_leaf_nodes"),
        ("calibrate.scene_classifier.C", 0, "calibrate.scene_classifier.C"),
        ("calibrate.targets.landcover_f100_min", 2.0, "calibrate.targets.landcover_f100_min"),
        ("calibrate.extra", 1, "calibrate.extra: unknown key"),
    ],
)
def test_invalid_settings_are_refused(
    repo_params_raw: dict[str, Any], key: str, value: Any, message: str
) -> None:
    set_dotted(repo_params_raw, key, value)
    with pytest.raises(ConfigError, match=message):
        parse_params(repo_params_raw)


def test_a_missing_setting_is_named(repo_params_raw: dict[str, Any]) -> None:
    del repo_params_raw["calibrate"]["pixel_classifier"]["max_train_pixels"]
    with pytest.raises(ConfigError, match=r"pixel_classifier\.max_train_pixels: required key"):
        parse_params(repo_params_raw)
