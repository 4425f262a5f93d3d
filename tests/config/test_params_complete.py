"""params.yaml is the one home of every setting: each field of :class:`Params` is written in the
repository's params.yaml, and no model field carries a default that could compete with it."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from s2ssl.config import LocalSource, Params, SearchDimension, SentinelHubSource
from testkit import REPO_PARAMS

OPTIONAL_SOURCES: tuple[type[BaseModel], ...] = (SentinelHubSource, LocalSource)
"""Sections written only when ``fetch.source`` selects them (``null`` in the repository's file);
their fields keep defaults, the only value they have there."""

OWN_DEFAULTS: tuple[type[BaseModel], ...] = (*OPTIONAL_SOURCES, SearchDimension)
"""Models whose fields may have defaults: the optional sources and the shape of one sweep
dimension (a categorical has no ``low`` / ``high``)."""


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds (``list[X]``, ``X | None``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from models_in(arg)


def absent_keys(model: type[BaseModel], raw: Any, path: str) -> Iterator[str]:
    """Dotted keys of ``model``'s fields (recursively) that ``raw`` lacks."""
    if model in OWN_DEFAULTS:
        return
    for name, field in model.model_fields.items():
        key = field.alias or name
        dotted = f"{path}.{key}" if path else key
        if not isinstance(raw, dict) or key not in raw:
            yield dotted
            continue
        value = raw[key]
        for sub in models_in(field.annotation):
            if isinstance(value, dict) and typing.get_origin(field.annotation) is dict:
                for k, item in value.items():
                    yield from absent_keys(sub, item, f"{dotted}.{k}")
            elif isinstance(value, dict):
                yield from absent_keys(sub, value, dotted)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    yield from absent_keys(sub, item, f"{dotted}.{i}")


def reachable_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model class below ``root`` (``root`` included), stopping at :data:`OWN_DEFAULTS`."""
    seen: list[type[BaseModel]] = []
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen or model in OWN_DEFAULTS:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo.extend(models_in(field.annotation))
    return seen


@pytest.fixture(scope="module")
def raw_params() -> dict[str, Any]:
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def test_every_setting_is_written_in_params_yaml(raw_params: dict[str, Any]) -> None:
    missing = list(absent_keys(Params, raw_params, ""))
    assert not missing, f"params.yaml lacks {', '.join(missing)}"


def test_the_walk_finds_a_missing_key_by_its_dotted_path(raw_params: dict[str, Any]) -> None:
    raw = yaml.safe_load(yaml.safe_dump(raw_params))
    del raw["pretrain"]["moco_tp"]["appearance"]["blur_p"]
    del raw["finetune"]["scene"]["linear"]["lr"]
    del raw["fetch"]["synthetic"]["regions"][2]["snow"]
    del raw["tune"]["pruner"]
    assert sorted(absent_keys(Params, raw, "")) == [
        "fetch.synthetic.regions.2.snow",
        "finetune.scene.linear.lr",
        "pretrain.moco_tp.appearance.blur_p",
        "tune.pruner",
    ]


def test_every_pretrain_method_and_finetune_task_section_is_walked() -> None:
    names = {m.__name__ for m in reachable_models(Params)}
    expected = {
        "AppearanceConfig",
        "CSCLConfig",
        "CroptypeFinetune",
        "DenseConfig",
        "LandcoverFinetune",
        "LinearProbeConfig",
        "MocoConfig",
        "ProbeConfig",
        "PromotionPolicy",
        "RegionSpec",
        "RegionTransferConfig",
        "SceneFinetune",
        "SplitFractions",
        "TunePrunerConfig",
    }
    assert expected <= names


def test_no_setting_has_a_default() -> None:
    with_default = [
        f"{model.__name__}.{name}"
        for model in reachable_models(Params)
        for name, field in model.model_fields.items()
        if not field.is_required()
    ]
    assert not with_default, f"fields with a default (a second home): {with_default}"


def test_optional_sources_are_written_as_null(raw_params: dict[str, Any]) -> None:
    assert raw_params["fetch"]["source"] == "synthetic"
    assert raw_params["fetch"]["sentinelhub"] is None
    assert raw_params["fetch"]["local"] is None


def test_optional_values_are_written_too(raw_params: dict[str, Any]) -> None:
    """A ``None`` meaning "off" is written out, not left to a default."""
    assert "crop_size" in raw_params["finetune"]["landcover"]  # 32 by default, null is allowed
    assert raw_params["finetune"]["scene"]["crop_size"] is None
    assert raw_params["pretrain"]["limit_train_batches"] is None
    assert raw_params["register"]["tasks"] is None


def test_models_in_sees_through_unions_lists_and_dicts() -> None:
    assert list(models_in(SentinelHubSource | None)) == [SentinelHubSource]
    assert list(models_in(list[LocalSource])) == [LocalSource]
    assert list(models_in(dict[str, SearchDimension])) == [SearchDimension]
    assert list(models_in(int | None)) == []
