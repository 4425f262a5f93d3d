"""Tests for s2ssl.tracking.runs: import cost, stage runs, metrics, weights and the Lightning
logger. One sqlite MLflow DB in a temp dir is shared by the module."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from s2ssl.tracking import (
    RunHandle,
    get_or_create_experiment,
    hash_input,
    lightning_logger,
    log_metrics,
    log_state_dict,
    stage_run,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"  # mlflow's sqlalchemy
)


def _experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


def test_import_does_not_load_mlflow_or_torch() -> None:
    code = (
        "import sys, s2ssl.tracking, s2ssl.tracking.runs\n"
        "heavy = [m for m in ('mlflow', 'torch', 'lightning') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stage_run_logs_params_tags_and_finishes(uri: str, client, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"samples")
    params = {"many": {f"p{i:03d}": i for i in range(150)}, "sh_client_secret": "nope"}
    with stage_run(
        _experiment(),
        "pretrain-seco",
        stage="pretrain",
        params=params,
        inputs={"data": data},
        tags={"method": "seco", "api_token": "nope"},
        uri=uri,
    ) as run:
        assert isinstance(run, RunHandle)
        assert run.tracking_uri == uri
        log_metrics({"loss": 1.5})

    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "pretrain-seco"
    assert logged.info.experiment_id == run.experiment_id
    assert logged.data.params == {f"many.p{i:03d}": str(i) for i in range(150)}
    tags = logged.data.tags
    assert tags["method"] == "seco"
    assert tags["s2ssl.stage"] == tags["dvc.stage"] == "pretrain"
    assert tags["input.data"] == hash_input(data)
    assert {"git.commit", "git.dirty"} <= tags.keys()
    assert "api_token" not in tags
    assert logged.data.metrics == {"loss": 1.5}


def test_stage_run_failed_killed_and_checks(uri: str, client, tmp_path: Path) -> None:
    name = _experiment()
    with pytest.raises(RuntimeError, match="boom"), stage_run(name, "bad", stage="s", uri=uri):
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), stage_run(name, "ctrl-c", stage="s", uri=uri):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit), stage_run(name, "exit-0", stage="s", uri=uri):
        raise SystemExit(0)
    with pytest.raises(SystemExit), stage_run(name, "exit-2", stage="s", uri=uri):
        raise SystemExit(2)
    statuses = {
        r.info.run_name: r.info.status
        for r in client.search_runs([get_or_create_experiment(name, uri)])
    }
    assert statuses == {
        "bad": "FAILED",
        "ctrl-c": "KILLED",
        "exit-0": "FINISHED",
        "exit-2": "FAILED",
    }

    with (
        pytest.raises(ValueError, match="'raw'"),
        stage_run(name, "no-input", stage="s", inputs={"raw": tmp_path / "missing"}, uri=uri),
    ):
        pass  # pragma: no cover - never entered
    with (
        pytest.raises(ValueError, match="set by lineage_tags"),
        stage_run(name, "x", stage="s", tags={"git.commit": "fake"}, uri=uri),
    ):
        pass  # pragma: no cover
    assert len(client.search_runs([get_or_create_experiment(name, uri)])) == 4  # none created


def test_nested_run_gets_parent_tag(uri: str, client) -> None:
    name = _experiment()
    with stage_run(name, "study", stage="tune", uri=uri) as parent:
        with stage_run(name, "trial-0", stage="tune", nested=True, uri=uri) as child:
            log_metrics({"val": 0.5})
        with (
            pytest.raises(ValueError, match="already active"),
            stage_run(name, "not-nested", stage="tune", uri=uri),
        ):
            pass  # pragma: no cover
        log_metrics({"best": 0.5})  # still logs into the parent
    assert client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert client.get_run(child.run_id).info.status == "FINISHED"
    assert client.get_run(parent.run_id).data.metrics == {"best": 0.5}
    assert client.get_run(parent.run_id).info.status == "FINISHED"


def test_log_metrics_skips_non_finite(uri: str, client) -> None:
    import numpy as np
    import torch

    with pytest.raises(ValueError, match="no active MLflow run"):
        log_metrics({"loss": 1.0})
    with stage_run(_experiment(), "m", stage="pretrain", uri=uri) as run:
        for step in range(2):
            log_metrics(
                {
                    "loss": 1.0 / (step + 1),
                    "nan": math.nan,
                    "inf": float("inf"),
                    "text": "n/a",
                    "probe/acc@1": np.float32(0.25),
                    "tensor": torch.tensor(2.0),
                    "vector": torch.ones(3),
                },
                step=step,
            )
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics == {"loss": 0.5, "probe/acc_1": 0.25, "tensor": 2.0}
    history = client.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


def test_log_state_dict_round_trip(uri: str, mlflow_root: Path) -> None:
    import mlflow
    import torch

    model = torch.nn.Linear(3, 2)
    with stage_run(_experiment(), "w", stage="pretrain", uri=uri) as run:
        uri_out = log_state_dict(
            model.state_dict(), "encoder", extra_files={"config.json": {"in": 3, "out": 2}}
        )
        with pytest.raises(TypeError, match="state_dict"):
            log_state_dict(model, "bad")  # type: ignore[arg-type]
    assert uri_out == f"{run.artifact_uri}/encoder"
    local = Path(uri_out.removeprefix("file://"))
    assert local.is_relative_to(mlflow_root / "mlruns" / "artifacts")

    fetched = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri_out))
    state = torch.load(fetched / "weights.pt", weights_only=True)
    restored = torch.nn.Linear(3, 2)
    restored.load_state_dict(state)
    assert torch.equal(restored.weight, model.weight)
    assert (fetched / "config.json").read_text().strip().startswith("{")


def test_lightning_logger_logs_into_the_same_run(uri: str, client) -> None:
    name = _experiment()
    with stage_run(name, "fit", stage="pretrain", params={"lr": 0.1}, uri=uri) as run:
        logger = lightning_logger(run)
        assert logger.run_id == run.run_id
        assert logger.experiment_id == run.experiment_id
        logger.log_metrics({"train/loss": 0.75}, step=3)
        logger.log_hyperparams({"module": {"queue": 16384}, "client_secret": "x"})
        logger.finalize("success")  # Lightning's end of fit must not end the stage run
        assert client.get_run(run.run_id).info.status == "RUNNING"
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.metrics == {"train/loss": 0.75}
    assert logged.data.params == {"lr": "0.1", "module.queue": "16384"}
    assert len(client.search_runs([run.experiment_id])) == 1
    assert os.environ.get("MLFLOW_TRACKING_URI") == uri
