"""Fixtures of the tracking tests: one sqlite MLflow store per test module, no run left active."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2ssl.tracking import (
    get_or_create_experiment,
    tracking_uri,
)


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp project root whose ``mlruns/mlflow.db`` holds all runs of this module.

    Telemetry is off; the process's tracking URI and MLFLOW_TRACKING_URI are restored afterwards.
    """
    import mlflow

    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield root
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI before mp restores it


@pytest.fixture(scope="module")
def uri(mlflow_root: Path) -> str:
    """The module's sqlite tracking URI (absolute), its tables created once."""
    resolved = tracking_uri(f"sqlite:///{mlflow_root}/mlruns/mlflow.db")
    get_or_create_experiment("warm-up", resolved)
    return resolved


@pytest.fixture
def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.fixture(autouse=True)
def _no_run_left_active() -> Iterator[None]:
    yield
    if "mlflow" in sys.modules:
        import mlflow

        leftover = mlflow.active_run()
        while mlflow.active_run() is not None:
            mlflow.end_run()
        assert leftover is None, "a test left an MLflow run active"
