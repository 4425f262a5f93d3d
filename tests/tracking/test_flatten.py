"""Tests for s2ssl.tracking.flatten: params flattened, truncated and secret-free."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.tracking import (
    flatten_params,
)
from s2ssl.tracking.flatten import MAX_PARAM_VAL_LENGTH


def test_flatten_params_nesting_truncation_and_secrets() -> None:
    from pydantic import BaseModel, SecretStr

    class Opt(BaseModel):
        lr: float = 0.03
        key: SecretStr = SecretStr("hidden")

    params = {
        "pretrain": {"seco": {"lr": 0.03, "milestones": [120, 160], "opt": Opt()}},
        "fetch": {"source": "synthetic", "regions": [], "extra": {}, "out": Path("data/raw")},
        "long": "x" * 10_000,
        "SH_CLIENT_ID": "id",
        "sentinelhub": {"client_secret": "s", "Password": "p", "access_token": "t"},
        "auth_token": {"value": "nested under a secret key"},
        "bad key@1": None,
    }
    flat = flatten_params(params)
    assert flat == {
        "pretrain.seco.lr": "0.03",
        "pretrain.seco.milestones.0": "120",
        "pretrain.seco.milestones.1": "160",
        "pretrain.seco.opt.lr": "0.03",
        "fetch.source": "synthetic",
        "fetch.regions": "[]",
        "fetch.extra": "{}",
        "fetch.out": "data/raw",
        "long": flat["long"],
        "bad key_1": "None",
    }
    assert len(flat["long"]) == MAX_PARAM_VAL_LENGTH and flat["long"].endswith("...")
    assert flatten_params({"lr": 1}, prefix="pretrain") == {"pretrain.lr": "1"}

    with pytest.raises(ValueError, match="both flatten"):
        flatten_params({"a.b": 1, "a": {"b": 2}})
    with pytest.raises(TypeError, match="mapping"):
        flatten_params([("a", 1)])  # type: ignore[arg-type]


def test_param_limit_matches_mlflow() -> None:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as MLFLOW_LIMIT

    assert MLFLOW_LIMIT == MAX_PARAM_VAL_LENGTH
