"""Downloading registered models and their per-sample results prints nothing of MLflow's."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from registrykit import CONFIG

from s2ssl.registry.listing import download_model
from s2ssl.registry.registration import model_hash, register_model
from s2ssl.registry.samples import download_test_samples
from s2ssl.registry.versions import by_alias, quiet_mlflow, registry_client


def test_registry_downloads_print_no_progress(
    uri: str, models: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    register_model(CONFIG, "landcover", models["a"], uri=uri)
    capfd.readouterr()
    path = download_model("models:/s2ssl-landcover@challenger", tmp_path / "m", uri=uri)
    version = by_alias(registry_client(uri), "s2ssl-landcover", "challenger")
    assert version is not None
    samples = download_test_samples(version, uri)
    out, err = capfd.readouterr()
    assert model_hash(path) == model_hash(models["a"])
    assert samples is not None and samples[0].size == 30
    assert "Downloading artifacts" not in out + err
    assert "%|" not in out + err  # no tqdm bar of any kind
    assert out == "" and err == ""


def test_quiet_mlflow_restores_what_it_changed() -> None:
    mlflow_logger = logging.getLogger("mlflow")
    before = (mlflow_logger.level, os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"))
    mlflow_logger.setLevel(logging.INFO)
    try:
        with quiet_mlflow():
            assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
            assert mlflow_logger.level == logging.WARNING
        assert mlflow_logger.level == logging.INFO
        assert os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR") == before[1]
    finally:
        mlflow_logger.setLevel(before[0])
