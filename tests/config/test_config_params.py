"""Tests of s2ssl.config.params: loading, parsing and overriding the whole params.yaml."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from configkit import config_error, line_for
from pydantic import ValidationError

from s2ssl.config import ConfigError, Params, load_params, parse_params
from s2ssl.synthetic_vocabulary import CROPS, LANDCOVER_CLASSES
from testkit import REPO_PARAMS


def test_repo_params_load() -> None:
    p = load_params(REPO_PARAMS)
    assert isinstance(p, Params)
    assert p.seed == 42
    regions = p.fetch.synthetic.regions
    names = [r.name for r in regions]
    assert names == ["north_west", "north_east", "south_pampa", "south_highveld"]
    assert [r.hemisphere for r in regions] == ["north", "north", "south", "south"]
    assert p.fetch.source == "synthetic"
    assert p.fetch.start_date == dt.date(2019, 1, 1)
    assert p.fetch.end_date == dt.date(2023, 12, 31)
    assert p.fetch.datasets == ["unlabelled", "landcover", "croptype"]
    assert p.fetch.synthetic.landcover.patch_size % 16 == 0
    for r in regions:
        assert set(r.class_priors) == set(LANDCOVER_CLASSES)
        assert set(r.crop_mix) <= set(CROPS)
        assert sum(r.class_priors.values()) == pytest.approx(1.0, abs=1e-3)
        assert sum(r.crop_mix.values()) == pytest.approx(1.0, abs=1e-3)


def test_overrides_are_applied() -> None:
    p = load_params(
        REPO_PARAMS,
        overrides={"seed": 7, "fetch.synthetic.regions.2.snow": True, "fetch.shard_size": 3},
    )
    assert p.seed == 7
    assert p.fetch.synthetic.regions[2].snow is True
    assert p.fetch.shard_size == 3


def test_omitted_keys_are_errors_naming_each_key(tmp_path: Path) -> None:
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    del raw["fetch"]["synthetic"]["croptype"]
    del raw["fetch"]["shard_size"]
    del raw["pretrain"]["seco"]["temperature"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_params(path)
    msg = str(info.value)
    for key in ("fetch.synthetic.croptype", "fetch.shard_size", "pretrain.seco.temperature"):
        assert "required key is missing" in line_for(msg, key)


def test_unknown_top_level_section() -> None:
    msg = config_error({"trian": {"epochs": 3}})
    line = line_for(msg, "trian")
    assert "seed" in line
    assert "fetch" in line


def test_missing_required_section() -> None:
    with pytest.raises(ConfigError) as info:
        parse_params({"seed": 1}, source="inline")
    msg = str(info.value)
    assert "invalid inline" in msg
    assert "required key is missing" in line_for(msg, "fetch")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="params file not found") as info:
        load_params(path)
    assert "nope.yaml" in str(info.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("seed: 42\nfetch: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_params(path)
    assert "broken.yaml" in str(info.value)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- seed\n- fetch\n")
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        load_params(path)
    assert "list.yaml" in str(info.value)


def test_error_message_names_the_file(tmp_path: Path) -> None:
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    raw["fetch"]["shard_size"] = 0
    path = tmp_path / "custom_params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_params(path)
    msg = str(info.value)
    assert msg.startswith(f"invalid {path}")
    assert "greater than or equal to 1" in line_for(msg, "fetch.shard_size")


def test_section_level_errors_do_not_dump_the_whole_section(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_params(REPO_PARAMS, overrides={"fetch.end_date": "2019-06-01"})
    message = str(info.value)
    assert "fetch: " in message and "400 days" in message
    assert "class_priors" not in message  # the section's content is not echoed back
    assert len(message) < 400


def test_an_impossible_override_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"fetch\.synthetic\.regions\.9\.name"):
        load_params(REPO_PARAMS, overrides={"fetch.synthetic.regions.9.name": "x"})


def test_models_are_frozen() -> None:
    p = load_params(REPO_PARAMS)
    with pytest.raises(ValidationError, match="frozen"):
        p.seed = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        p.fetch.synthetic.regions[0].hemisphere = "south"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        p.fetch.synthetic.landcover.splits.train = 0.5  # type: ignore[misc]
    assert p.seed == 42
    assert p.fetch.synthetic.regions[0].hemisphere == "north"
