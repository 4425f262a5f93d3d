"""Fixtures of the registry tests: a fresh sqlite store per test, saved models per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registrykit import segmentation_model

from s2ssl.tracking.backend import tracking_uri


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite store per test (also exported for subprocesses)."""
    import mlflow

    resolved = tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", resolved)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    previous = mlflow.get_tracking_uri()
    yield resolved
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "a": segmentation_model(root, "a", 0, 0.40),
        "better": segmentation_model(root, "better", 1, 0.50),
        "worse": segmentation_model(root, "worse", 2, 0.30),
        "best": segmentation_model(root, "best", 3, 0.60),
        "bare": segmentation_model(root, "bare", 4, 0.70, samples=False),
    }
