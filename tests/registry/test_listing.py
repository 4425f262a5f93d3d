"""Listing and resolving registered models: URIs, credentials hidden, the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registrykit import CONFIG

from s2ssl.registry.listing import download_model, resolve_model
from s2ssl.registry.registration import model_hash, register_model
from s2ssl.registry.versions import safe_uri


def test_unknown_model_uris_are_clear_errors(
    uri: str, models: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="registered models: none"):
        download_model("models:/s2ssl-landcover@champion", tmp_path / "a", uri=uri)
    register_model(CONFIG, "landcover", models["a"], uri=uri)
    with pytest.raises(ValueError, match=r"has versions \['1'\] and aliases \['challenger'\]"):
        download_model("models:/s2ssl-landcover@champion", tmp_path / "b", uri=uri)
    with (
        pytest.raises(ValueError, match="neither an MLflow model URI"),
        resolve_model(tmp_path / "nowhere"),
    ):
        pass
    with resolve_model("models:/s2ssl-landcover@challenger") as path:
        assert (path / "weights.pt").is_file()
        assert model_hash(path) == model_hash(models["a"])
    assert not path.exists()  # the download lived only inside the context


def test_safe_uri_hides_credentials() -> None:
    assert safe_uri("postgresql://bob:hunter2@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    assert safe_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_cli_register_promote_models(uri: str, models: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from s2ssl.cli import app
    from testkit import write_tiny_params

    params = write_tiny_params(tmp_path / "params.yaml")
    root = tmp_path / "finetune"
    (root / "landcover").mkdir(parents=True)
    import shutil

    shutil.copytree(models["a"], root / "landcover" / "model")
    runner = CliRunner()
    args = ["--params", str(params)]
    done = runner.invoke(
        app,
        [
            "register",
            *args,
            "--models",
            str(root),
            "--task",
            "landcover",
            "--reports",
            str(tmp_path / "reg"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "registered as new version 1" in done.output
    registered = json.loads((tmp_path / "reg" / "registered.json").read_text())
    assert registered["tasks"]["landcover"]["version"] == "1"
    done = runner.invoke(
        app, ["promote", *args, "--task", "landcover", "--reports", str(tmp_path / "pro")]
    )
    assert done.exit_code == 0, done.output
    assert "promoted" in done.output and "no champion yet" in done.output
    decisions = json.loads((tmp_path / "pro" / "decisions.json").read_text())
    assert decisions["tasks"]["landcover"]["champion_version"] == "1"
    done = runner.invoke(app, ["models", *args], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "s2ssl-landcover" in done.output and "champion" in done.output
    done = runner.invoke(app, ["promote", *args, "--task", "landcover", "--force"])
    assert done.exit_code == 2 and "--force needs" in done.output
