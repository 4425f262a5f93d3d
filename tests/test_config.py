"""Tests of params.yaml validation (s2ssl.config) and environment settings (s2ssl.settings)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from s2ssl.classes import CROPS, LANDCOVER_CLASSES
from s2ssl.config import ConfigError, Params, load_params, parse_params, set_dotted
from s2ssl.settings import Settings, get_settings

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def config_error(overrides: dict[str, Any]) -> str:
    """The ConfigError message for the repo params.yaml with ``overrides`` applied."""
    with pytest.raises(ConfigError) as info:
        load_params(REPO_PARAMS, overrides=overrides)
    return str(info.value)


def line_for(message: str, path: str) -> str:
    """The single message line describing ``path`` (``"<path>: ..."``)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip().startswith(f"{path}:")]
    assert len(lines) == 1, f"expected one line for {path!r} in:\n{message}"
    return lines[0]


# --------------------------------------------------------------------------- the repo's file
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


def test_defaults_fill_omitted_sections(tmp_path: Path) -> None:
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    del raw["fetch"]["synthetic"]["croptype"]
    del raw["fetch"]["shard_size"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    p = load_params(path)
    assert p.fetch.shard_size == 256
    assert p.fetch.synthetic.croptype.n_dates == 16
    assert p.fetch.synthetic.croptype.splits.train == pytest.approx(0.7)


# --------------------------------------------------------------------------- unknown keys
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


def test_unknown_top_level_section() -> None:
    msg = config_error({"trian": {"epochs": 3}})
    line = line_for(msg, "trian")
    assert "seed" in line
    assert "fetch" in line


def test_every_error_is_reported_at_once() -> None:
    msg = config_error({"seed": -1, "fetch.synthetic.unlabelled.n_datez": 3})
    line_for(msg, "seed")
    line_for(msg, "fetch.synthetic.unlabelled.n_datez")


def test_missing_required_section() -> None:
    with pytest.raises(ConfigError) as info:
        parse_params({"seed": 1}, source="inline")
    msg = str(info.value)
    assert "invalid inline" in msg
    assert "required key is missing" in line_for(msg, "fetch")


# --------------------------------------------------------------------------- literals
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


# --------------------------------------------------------------------------- region checks
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


# --------------------------------------------------------------------------- dataset specs
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


# --------------------------------------------------------------------------- frozen models
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


# --------------------------------------------------------------------------- set_dotted
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


# --------------------------------------------------------------------------- files
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


# --------------------------------------------------------------------------- settings
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No s2ssl settings in the environment and no .env in the working directory."""
    for var in (
        "SH_CLIENT_ID",
        "SH_CLIENT_SECRET",
        "SH_BASE_URL",
        "SH_TOKEN_URL",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = get_settings()
    assert s.mlflow_tracking_uri == "sqlite:///mlruns/mlflow.db"
    assert s.sh_base_url == "https://services.sentinel-hub.com"
    assert s.sh_client_id is None
    assert s.sh_client_secret is None
    assert s.sh_token_url is None


def test_settings_secret_from_env_is_hidden(clean_env: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-VALUE-123"
    clean_env.setenv("SH_CLIENT_SECRET", secret)
    clean_env.setenv("SH_CLIENT_ID", "my-client")
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://localhost:5000")
    s = get_settings()
    assert isinstance(s.sh_client_secret, SecretStr)
    assert s.sh_client_secret.get_secret_value() == secret
    assert s.sh_client_id is not None
    assert s.sh_client_id.get_secret_value() == "my-client"
    assert s.mlflow_tracking_uri == "http://localhost:5000"
    for text in (repr(s), str(s), repr(s.sh_client_secret), str(s.sh_client_secret)):
        assert secret not in text
    assert "**********" in str(s.sh_client_secret)


def test_settings_read_dotenv_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SH_CLIENT_SECRET=from-dotenv\nUNRELATED=1\n")
    s = Settings()
    assert s.sh_client_secret is not None
    assert s.sh_client_secret.get_secret_value() == "from-dotenv"
    # the environment wins over .env
    clean_env.setenv("SH_CLIENT_SECRET", "from-env")
    assert get_settings().sh_client_secret.get_secret_value() == "from-env"  # type: ignore[union-attr]


def test_section_level_errors_do_not_dump_the_whole_section(tmp_path):
    from s2ssl.config import ConfigError, load_params

    with pytest.raises(ConfigError) as info:
        load_params(REPO_PARAMS, overrides={"fetch.end_date": "2019-06-01"})
    message = str(info.value)
    assert "fetch: " in message and "400 days" in message
    assert "class_priors" not in message  # the section's content is not echoed back
    assert len(message) < 400


def test_an_impossible_override_is_a_config_error_naming_the_key():
    from s2ssl.config import ConfigError, load_params

    with pytest.raises(ConfigError, match=r"fetch\.synthetic\.regions\.9\.name"):
        load_params(REPO_PARAMS, overrides={"fetch.synthetic.regions.9.name": "x"})
