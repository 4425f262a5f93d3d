"""Tests for s2ssl.tracking.backend: tracking URIs and experiments."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.tracking import (
    artifact_root,
    get_or_create_experiment,
    tracking_uri,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"  # mlflow's sqlalchemy
)


def test_relative_sqlite_uri_resolved_and_directory_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    expected = f"sqlite:///{work.as_posix()}/mlruns/mlflow.db"
    assert tracking_uri("sqlite:///mlruns/mlflow.db") == expected
    assert (work / "mlruns").is_dir()
    assert tracking_uri() == expected  # the settings default is the same relative URI
    assert tracking_uri(expected) == expected  # absolute: unchanged
    assert tracking_uri("sqlite:///mlruns/../db/x.db?timeout=5") == (
        f"sqlite:///{work.as_posix()}/db/x.db?timeout=5"
    )

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other/runs.db")
    assert tracking_uri() == f"sqlite:///{work.as_posix()}/other/runs.db"
    assert (work / "other").is_dir()
    assert tracking_uri("sqlite:///mlruns/mlflow.db") == expected  # the argument wins

    assert artifact_root(expected) == f"file://{work.as_posix()}/mlruns/artifacts"
    assert tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert tracking_uri("https://mlflow.example.org/") == "https://mlflow.example.org/"
    assert artifact_root("http://127.0.0.1:5000") == ""


@pytest.mark.parametrize("bad", ["file:./mlruns", "file:///tmp/mlruns", "mlruns", "/tmp/mlruns"])
def test_file_store_uri_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="MLflow 3 refuses the plain file store") as info:
        tracking_uri(bad)
    assert "sqlite:///mlruns/mlflow.db" in str(info.value)


@pytest.mark.parametrize("bad", ["", "sqlite:///:memory:", "sqlite://host/db"])
def test_unusable_uri_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite|tracking URI"):
        tracking_uri(bad)


def test_experiment_idempotent_with_artifacts_under_mlruns(
    uri: str, mlflow_root: Path, client
) -> None:
    first = get_or_create_experiment("pretrain seco", uri)
    assert get_or_create_experiment("pretrain seco", uri) == first
    location = client.get_experiment(first).artifact_location
    assert location == f"file://{mlflow_root.as_posix()}/mlruns/artifacts/pretrain_seco"

    client.delete_experiment(get_or_create_experiment("gone", uri))
    with pytest.raises(ValueError, match="deleted; restore it"):
        get_or_create_experiment("gone", uri)
