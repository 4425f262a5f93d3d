"""The flows under a temporary Prefect server with a fake DVC runner: stage order, skips, retries
only on transient failures, concurrency limits, artifacts, ingest triggering and the sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flowkit import PIPELINE, FakeRunner, write_dvc_yaml, write_reports

from flows import _dvc, _tasks
from flows.ingest import ingest
from flows.pipeline import ARTIFACT_KEY, pipeline
from flows.sweep import sweep

pytestmark = pytest.mark.usefixtures("prefect_server")

NO_WAIT: dict[str, Any] = {
    "retry_delays_s": [0.0, 0.0],
    "workspace_limit": "t-workspace",
    "gpu_limit": "",
}
"""No back-off; the workspace slot only (taking a freed slot again can wait ~2 s)."""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    """A project with the full stage list and a fake runner answering for dvc."""
    project = tmp_path / "project"
    write_dvc_yaml(project, [*PIPELINE, "tune"])
    runner = FakeRunner(project, hooks={"evaluate": write_reports})
    monkeypatch.setattr(_dvc, "RUNNER", runner)
    return runner


def artifact_of(state: Any, key: str) -> str:
    """The markdown of artifact ``key`` created by the flow run behind ``state``."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert len(found) == 1, found
    assert found[0].type == "markdown"
    return str(found[0].data)


def test_stages_run_in_dvc_yaml_order_then_register_and_promote(fake: FakeRunner) -> None:
    state = pipeline(str(fake.project), return_state=True, **NO_WAIT)
    assert state.is_completed()
    result = state.result()
    assert fake.calls == [["repro", s] for s in PIPELINE]  # tune: only when targeted
    assert result["ran"] == list(PIPELINE) and result["skipped"] == []
    assert result["missing"] == []
    md = artifact_of(state, ARTIFACT_KEY)
    assert "# s2ssl pipeline: completed" in md
    assert "7 stage(s) ran, 0 unchanged" in md
    assert "| evaluate | `evaluate` | ran | 1.5 | 1 |  |" in md
    assert "| landcover | dense | finetune | 100 % | miou | 0.740 | +0.040 |" in md
    assert "| landcover | s2ssl-landcover | v3 | v2 | v3 | **promoted** | miou 0.334" in md
    assert "did not run in this run" not in md


def test_unchanged_stages_are_reported_as_skipped(fake: FakeRunner) -> None:
    fake.default = "skipped"
    fake.script = {"pretrain": ["ran"], "validate": ["restored"]}
    result = pipeline(str(fake.project), **NO_WAIT)
    assert result["ran"] == ["pretrain"]
    assert result["skipped"] == ["fetch", "validate", "finetune", "evaluate", "register", "promote"]
    assert {s["name"]: s["status"] for s in result["stages"]}["validate"] == "restored"


def test_register_and_promote_are_skipped_cleanly_when_dvc_yaml_lacks_them(
    fake: FakeRunner,
) -> None:
    write_dvc_yaml(fake.project, ["fetch", "validate", "pretrain", "finetune", "evaluate"])
    state = pipeline(str(fake.project), return_state=True, **NO_WAIT)
    assert state.is_completed()
    assert fake.repro_targets() == ["fetch", "validate", "pretrain", "finetune", "evaluate"]
    assert state.result()["missing"] == ["register", "promote"]
    md = artifact_of(state, ARTIFACT_KEY)
    assert "| register | – | not run | – | – | not in dvc.yaml |" in md


def test_a_transient_failure_is_retried_then_succeeds(fake: FakeRunner) -> None:
    fake.script = {"fetch": [75, 75, "ran"]}  # two network failures, then it works
    state = pipeline(str(fake.project), return_state=True, **NO_WAIT)
    assert state.is_completed()
    assert fake.repro_targets()[:4] == ["fetch", "fetch", "fetch", "validate"]
    assert state.result()["stages"][0] == {
        "step": "fetch",
        "name": "fetch",
        "status": "ran",
        "seconds": 1.5,
        "attempts": 3,
    }


def test_transient_failures_give_up_after_the_last_retry(fake: FakeRunner) -> None:
    fake.script = {"fetch": [75, 75, 75, 75]}
    state = pipeline(str(fake.project), return_state=True, **NO_WAIT)
    assert state.is_failed()
    assert fake.repro_targets() == ["fetch"] * 3  # 1 try + 2 retries, nothing after fetch
    with pytest.raises(_dvc.DvcCommandError, match="transient"):
        state.result()
    md = artifact_of(state, ARTIFACT_KEY)
    assert "# s2ssl pipeline: failed" in md
    assert "| fetch | `fetch` | failed | 0.5 | 3 | transient, retries exhausted |" in md
    assert "exited with 75" in md


@pytest.mark.parametrize("exit_code", [1, 2])
def test_a_failed_validation_or_code_error_is_not_retried(fake: FakeRunner, exit_code: int):
    fake.script = {"validate": [exit_code, "ran"]}
    state = pipeline(str(fake.project), return_state=True, **NO_WAIT)
    assert state.is_failed()
    assert fake.repro_targets() == ["fetch", "validate"]  # once, and the run stops there
    md = artifact_of(state, ARTIFACT_KEY)
    assert "| validate | `validate` | failed | 0.5 | 1 | permanent: not retried |" in md


def test_an_unexpected_error_in_the_runner_is_not_retried(
    fake: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def broken(args: list[str], cwd: Path) -> _dvc.DvcCall:
        calls.append(list(args))
        raise FileNotFoundError("dvc is not installed")

    monkeypatch.setattr(_dvc, "RUNNER", broken)
    state = pipeline(str(fake.project), return_state=True, **NO_WAIT)
    assert state.is_failed() and len(calls) == 1


def test_set_params_run_as_one_dvc_experiment(fake: FakeRunner) -> None:
    result = pipeline(
        str(fake.project),
        set_params={"pretrain.dense.lr": "0.01", "seed": "7"},
        experiment_name="try-lr",
        **NO_WAIT,
    )
    assert fake.calls == [
        ["exp", "run", "-S", "pretrain.dense.lr=0.01", "-S", "seed=7", "--name", "try-lr",
         *PIPELINE],
    ]  # fmt: skip
    assert result["mode"] == "exp run" and result["ran"] == list(PIPELINE)


def test_push_sends_the_outputs_to_the_dvc_remote_after_the_stages(fake: FakeRunner) -> None:
    state = pipeline(str(fake.project), push=True, return_state=True, **NO_WAIT)
    assert fake.calls[-1] == ["push"] and len(fake.calls) == len(PIPELINE) + 1
    assert "| push | – | done |" in artifact_of(state, ARTIFACT_KEY)
    fake.calls.clear()
    fake.script = {"evaluate": [1]}
    assert pipeline(str(fake.project), push=True, return_state=True, **NO_WAIT).is_failed()
    assert ["push"] not in fake.calls  # nothing pushed after a failure


def test_stages_parameter_runs_a_subset_in_dvc_yaml_order(fake: FakeRunner) -> None:
    pipeline(str(fake.project), stages=["evaluate", "fetch"], **NO_WAIT)
    assert fake.repro_targets() == ["fetch", "evaluate"]
    with pytest.raises(_dvc.DvcPlanError, match=r"not in dvc\.yaml"):
        pipeline(str(fake.project), stages=["nope"], **NO_WAIT)
    assert fake.repro_targets() == ["fetch", "evaluate"]


def test_concurrency_limits_are_created_when_missing_and_enforced(fake: FakeRunner) -> None:
    from prefect import get_client
    from prefect.concurrency.sync import concurrency

    pipeline(str(fake.project), retry_delays_s=[], workspace_limit="t-ws", gpu_limit="t-gpu")
    with get_client(sync_client=True) as client:
        for name in ("t-ws", "t-gpu"):
            limit = client.read_global_concurrency_limit_by_name(name)
            assert limit.limit == 1 and limit.active and limit.active_slots == 0
    assert _tasks.ensure_limit("t-ws") is False  # exists: left as it is
    fake.calls.clear()
    with concurrency("t-ws", occupy=1, strict=True):  # another run holds the workspace
        state = pipeline(
            str(fake.project),
            retry_delays_s=[],
            workspace_limit="t-ws",
            gpu_limit="t-gpu",
            lock_timeout_s=2,
            return_state=True,
        )
    assert state.is_failed() and fake.calls == []  # waited, gave up, touched nothing
    with pytest.raises(TimeoutError, match="no free slot of concurrency limit 't-ws'"):
        state.result()


def test_training_stages_hold_the_gpu_slot(fake: FakeRunner) -> None:
    from prefect import get_client

    seen: dict[str, int] = {}

    def spy(project: Path) -> None:
        with get_client(sync_client=True) as client:
            seen["gpu"] = client.read_global_concurrency_limit_by_name("t-gpu2").active_slots

    fake.hooks["pretrain"] = spy
    pipeline(str(fake.project), **{**NO_WAIT, "gpu_limit": "t-gpu2"})
    assert seen == {"gpu": 1}


def _lock_with(project: Path, md5: str) -> None:
    lock = {
        "schema": "2.0",
        "stages": {"validate": {"outs": [{"path": "data/validated/x", "md5": md5}]}},
    }
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_ingest_triggers_the_pipeline_only_when_validated_data_changed(fake: FakeRunner) -> None:
    _lock_with(fake.project, "old.dir")
    fake.default = "skipped"
    fake.script = {"fetch": ["ran"]}  # fetched, but the same data: validate unchanged
    result = ingest(str(fake.project), **NO_WAIT)
    assert fake.calls == [["repro", "--force", "--single-item", "fetch"], ["repro", "validate"]]
    assert result["changed"] is False and result["pipeline"] is None

    fake.calls.clear()
    fake.script = {"fetch": ["ran"], "validate": ["ran"]}
    fake.hooks["validate"] = lambda p: _lock_with(p, "new.dir")
    state = ingest(str(fake.project), return_state=True, **NO_WAIT)
    result = state.result()
    assert result["changed"] is True
    assert result["before"] == {"data/validated/x": "old.dir"}
    assert result["after"] == {"data/validated/x": "new.dir"}
    assert fake.calls[2:] == [["repro", s] for s in PIPELINE]  # the pipeline ran after
    assert result["pipeline"]["state"] == "completed"
    md = artifact_of(state, "s2ssl-ingest")
    assert "# s2ssl ingest: data changed, pipeline triggered" in md
    assert "| `data/validated/x` | old.dir | new.dir | changed |" in md


@pytest.mark.slow
def test_ingest_does_not_retry_a_failed_validation(fake: FakeRunner) -> None:
    fake.script = {"validate": [1]}
    state = ingest(str(fake.project), force_fetch=False, return_state=True, **NO_WAIT)
    assert state.is_failed()
    assert fake.calls == [["repro", "fetch"], ["repro", "validate"]]


def test_sweep_runs_tune_and_summarises_best_params(fake: FakeRunner) -> None:
    def best(project: Path) -> None:
        path = project / "reports" / "tune" / "best_params.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(  # as s2ssl tune writes it
            "study: s2ssl-landcover\ntask: landcover\nmetric: miou\ntrial: 7\nvalue: 0.62\n"
            "params:\n  finetune.landcover.lr: 0.002\n  finetune.landcover.batch_size: 16\n"
        )

    fake.hooks["tune"] = best
    state = sweep(str(fake.project), return_state=True, **NO_WAIT)
    assert fake.calls == [["repro", "tune/dvc.yaml:tune"]]
    assert state.result()["best_params"]["params"]["finetune.landcover.lr"] == 0.002
    md = artifact_of(state, "s2ssl-sweep")
    assert "study `s2ssl-landcover` · task `landcover` · metric `miou` · trial `7`" in md
    assert "| `finetune.landcover.lr` | `0.002` |" in md and "Not applied automatically" in md

    fake.calls.clear()
    sweep(str(fake.project), set_params={"tune.n_trials": "3"}, **NO_WAIT)
    assert fake.calls == [["exp", "run", "-S", "tune.n_trials=3", "tune/dvc.yaml:tune"]]


def test_sweep_needs_a_tune_stage(fake: FakeRunner) -> None:
    write_dvc_yaml(fake.project, PIPELINE)
    with pytest.raises(_dvc.DvcPlanError, match=r"no 'tune' stage in .*/dvc\.yaml nor in"):
        sweep(str(fake.project), **NO_WAIT)
