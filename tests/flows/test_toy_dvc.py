"""The flows with real ``dvc`` on a toy project (one-line stage scripts, seconds): DVC's own
output drives the ran / skipped report, exit 75 of a stage command is retried, exit 1 is not,
set_params become a DVC experiment, and ingest compares real dvc.lock hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from flowkit import make_toy_project, queue_failures, stage_calls

from flows.ingest import ingest
from flows.pipeline import pipeline
from flows.sweep import sweep

pytestmark = pytest.mark.usefixtures("prefect_server")

FAST = {"retry_delays_s": [0.0, 0.0], "workspace_limit": "toy-workspace", "gpu_limit": ""}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return make_toy_project(tmp_path / "toy")


@pytest.mark.slow
def test_real_dvc_runs_then_skips_and_retries_only_exit_75(toy: Path) -> None:
    queue_failures(toy, "fetch", [75])  # the service is down once
    first = pipeline(str(toy), **FAST)
    assert first["ran"] == ["fetch", "validate", "pretrain@a", "pretrain@b", "evaluate"]
    assert stage_calls(toy, "fetch") == 2 and first["stages"][0]["attempts"] == 2
    assert stage_calls(toy, "tune") == 0  # targeted only
    assert first["missing"] == ["register", "promote"]

    second = pipeline(str(toy), **FAST)  # nothing changed: DVC skips every stage
    assert second["ran"] == []
    assert second["skipped"] == ["fetch", "validate", "pretrain@a", "pretrain@b", "evaluate"]

    (toy / "params.yaml").write_text("seed: 1\nlr: 0.2\nmethods: [a, b]\n")
    queue_failures(toy, "pretrain", [1])  # a code error: no retry
    state = pipeline(str(toy), return_state=True, **FAST)
    assert state.is_failed()
    assert stage_calls(toy, "pretrain") == 3  # 2 in the first run + this one failing call
    assert stage_calls(toy, "evaluate") == 1


def test_set_params_make_a_dvc_experiment_in_the_workspace(toy: Path) -> None:
    result = pipeline(str(toy), set_params={"lr": "0.5"}, experiment_name="toy-lr", **FAST)
    assert result["mode"] == "exp run"
    assert result["ran"] == ["fetch", "validate", "pretrain@a", "pretrain@b", "evaluate"]
    assert yaml.safe_load((toy / "params.yaml").read_text())["lr"] == 0.5  # applied by DVC
    lock = yaml.safe_load((toy / "dvc.lock").read_text())
    assert lock["stages"]["pretrain@a"]["params"]["params.yaml"]["lr"] == 0.5


@pytest.mark.slow
def test_ingest_triggers_the_pipeline_only_for_new_data(toy: Path) -> None:
    first = ingest(str(toy), **FAST)  # nothing validated before: new data
    assert first["changed"] is True and first["pipeline"]["ran"][-1] == "evaluate"

    again = ingest(str(toy), **FAST)  # fetch forced, same scenes: validate skipped
    assert [s["status"] for s in again["stages"]] == ["ran", "skipped"]
    assert again["changed"] is False and again["pipeline"] is None

    (toy / "world.txt").write_text("scene-1\nscene-2\n")  # a new acquisition
    third = ingest(str(toy), **FAST)
    assert third["changed"] is True
    assert third["pipeline"]["ran"] == ["pretrain@a", "pretrain@b"]
    assert third["pipeline"]["skipped"][-1] == "evaluate"  # same models: DVC skips evaluate


def test_sweep_runs_the_targeted_tune_stage(toy: Path) -> None:
    result = sweep(str(toy), **FAST)
    assert [s["name"] for s in result["stages"] if s["status"] == "ran"][-1] == "tune/dvc.yaml:tune"
    assert result["best_params"] == {"pretrain": {"dense": {"lr": 0.01}}}
    assert stage_calls(toy, "evaluate") == 0  # the sweep runs tune (and what it needs) only
