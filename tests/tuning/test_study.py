"""The Optuna sweep on the tiny world: trials, reports, MLflow, resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
import yaml
from tunekit import write_tune_params

from s2ssl.config import Params, load_params
from s2ssl.tuning import run_study
from s2ssl.tuning.space import distribution
from s2ssl.tuning.storage import STUDY_DB
from s2ssl.tuning.trials import is_finished


def _trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _mlflow_runs(uri: str) -> list[Any]:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=["tune"], output_format="list")


@pytest.fixture(scope="module")
def tiny_study(
    tiny_validated: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Params, Path, Any, list[Any]]:
    """A 4-trial study of the tiny world with MLflow tracking (read-only for the tests)."""
    root = tmp_path_factory.mktemp("tune")
    params = load_params(write_tune_params(root / "params.yaml"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    seen: list[Any] = []
    result = run_study(
        params,
        tiny_validated,
        root / "none",
        root / "models",
        root / "reports",
        on_trial=seen.append,
        tracking_uri=uri,
    )
    return params, root, result, seen


def test_study_runs_its_trials_and_writes_the_reports(tiny_study: Any) -> None:
    _, root, result, seen = tiny_study
    assert result.n_finished == 4 and [t.number for t in seen] == [0, 1, 2, 3]
    assert [t.number for t in result.executed] == [0, 1, 2, 3] and not result.timed_out
    baseline = seen[0]  # trial 0: the current values of params.yaml
    assert baseline.note == "baseline" and baseline.state == "COMPLETE"
    assert baseline.params == {"finetune.croptype.lr": 0.001, "finetune.croptype.batch_size": 8}
    assert result.study_name.startswith("tiny-") and result.storage == root / "models" / STUDY_DB

    reports = root / "reports"
    for name in ("history.png", "importance.png", "html/history.html", "html/importance.html"):
        assert (reports / name).stat().st_size > 1000, name
    assert (reports / "html" / "plotly.min.js").is_file()  # the pages open offline
    with (reports / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert set(rows[0]) >= {
        "state",
        "value",
        "finetune.croptype.lr",
        "finetune.croptype.batch_size",
    }
    complete = {int(r["number"]): float(r["value"]) for r in rows if r["state"] == "COMPLETE"}

    best = yaml.safe_load((reports / "best_params.yaml").read_text())
    assert best["study"] == result.study_name and best["metric"] == "val_miou"
    assert best["value"] == max(complete.values()) and complete[best["trial"]] == best["value"]
    assert set(best["params"]) == {"finetune.croptype.lr", "finetune.croptype.batch_size"}
    assert best["params"] == next(t.params for t in seen if t.number == best["trial"])
    assert best["baseline_value"] == baseline.value
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["n_finished"] == 4 and metrics["best_trial"] == best["trial"]
    assert metrics["n_complete"] + metrics["n_pruned"] + metrics["n_failed"] == 4
    assert metrics["gain_over_baseline"] == pytest.approx(best["value"] - baseline.value)
    assert all(0.0 <= v <= 1.0 for v in complete.values())


def test_study_logs_one_parent_run_and_a_nested_run_per_trial(tiny_study: Any) -> None:
    _, root, result, seen = tiny_study
    runs = _mlflow_runs(f"sqlite:///{root / 'mlflow.db'}")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [p.info.run_name for p in parents] == [result.study_name]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["optuna.study"] == result.study_name
    assert parent.data.tags["dvc.stage"] == "tune" and "input.croptype" in parent.data.tags
    assert parent.data.params["tune.task"] == "croptype"
    assert parent.data.metrics["n_finished"] == 4
    assert sorted(int(c.data.tags["optuna.trial"]) for c in children) == [0, 1, 2, 3]
    by_number = {t.number: t for t in seen}
    trials = {t.number: t for t in _trials(root / "models" / STUDY_DB)}
    for child in children:
        number = int(child.data.tags["optuna.trial"])
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["optuna.state"] == by_number[number].state
        assert trials[number].user_attrs["mlflow_run_id"] == child.info.run_id
        lr = by_number[number].params["finetune.croptype.lr"]
        assert float(child.data.params["finetune.croptype.lr"]) == pytest.approx(lr)
        if by_number[number].state == "COMPLETE":
            assert child.data.metrics["value"] == pytest.approx(by_number[number].value)


def test_a_finished_study_is_not_rerun_and_interrupted_trials_are_retried(
    tiny_study: Any, tiny_validated: Path
) -> None:
    params, root, result, _ = tiny_study
    again = run_study(
        params, tiny_validated, root / "none", root / "models", root / "reports2", track=False
    )
    assert again.executed == [] and again.n_finished == 4
    assert again.study_name == result.study_name and again.best == result.best

    # a trial left RUNNING (its process died): failed at the next start, its values retried
    db = root / "models" / STUDY_DB
    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{db}")
    dists = {k: distribution(d) for k, d in params.tune.space.items()}
    orphan = study.ask(dists)
    assert orphan.number == 4
    resumed = run_study(
        params,
        tiny_validated,
        root / "none",
        root / "models",
        root / "reports2",
        n_trials=5,
        track=False,
    )
    assert resumed.interrupted == [4] and resumed.retried == [4]
    assert [t.number for t in resumed.executed] == [5] and resumed.n_finished == 5
    trials = {t.number: t for t in _trials(db)}
    assert trials[4].state.name == "FAIL" and trials[4].user_attrs["interrupted"] is True
    assert not is_finished(trials[4])
    assert trials[5].user_attrs["retry_of"] == 4 and trials[5].params == trials[4].params


@pytest.mark.slow
def test_sweep_killed_mid_study_resumes_without_repeating_trials(
    tiny_validated: Path, tmp_path: Path
) -> None:
    params_path = write_tune_params(tmp_path / "params.yaml", n_trials=6)
    params = load_params(params_path)
    out, reports = tmp_path / "models", tmp_path / "reports"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
    }
    cmd = [
        str(Path(sys.executable).parent / "s2ssl"),
        "tune",
        "--params",
        str(params_path),
        "--data",
        str(tiny_validated),
        "--pretrained",
        str(tmp_path / "none"),
        "--out",
        str(out),
        "--reports",
        str(reports),
    ]
    log = (tmp_path / "sweep.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    db = out / STUDY_DB
    deadline = time.monotonic() + 240
    try:
        while True:
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()
            assert time.monotonic() < deadline, "the sweep did not finish 2 trials in time"
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                    (n,) = con.execute("select count(*) from trials where state = 'COMPLETE'")
                    if n[0] >= 2:
                        break
            except sqlite3.OperationalError:
                pass  # not created yet / being written
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        log.close()
    before = {t.number: t for t in _trials(db) if is_finished(t)}
    running = [t.number for t in _trials(db) if t.state.name == "RUNNING"]
    assert len(before) >= 2 and len(before) < 6

    result = run_study(params, tiny_validated, tmp_path / "none", out, reports, tracking_uri=uri)
    after = _trials(db)
    assert result.n_finished == 6 and sum(is_finished(t) for t in after) == 6
    assert result.interrupted == running
    by_number = {t.number: t for t in after}
    for number, old in before.items():  # finished trials are untouched ...
        new = by_number[number]
        assert (new.state, new.params, new.value) == (old.state, old.params, old.value)
    assert all(t.number > max(before) for t in result.executed)  # ... and never run again
    assert len(result.executed) == 6 - len(before)
    for number in running:  # the trial the kill interrupted is retried with its values ...
        retries = [t for t in after if t.user_attrs.get("retry_of") == number]
        if set(by_number[number].params) == set(params.tune.space):
            assert len(retries) == 1
            assert retries[0].params == by_number[number].params and is_finished(retries[0])
        else:  # ... unless the kill came before its values were all drawn: nothing to retry
            assert retries == []

    # the same sweep without the kill proposes the same values in the same order
    reference = run_study(
        params, tiny_validated, tmp_path / "none", tmp_path / "ref", tmp_path / "ref", track=False
    )
    resumed_seq = [t.params for t in after if is_finished(t)]
    reference_seq = [t.params for t in _trials(tmp_path / "ref" / STUDY_DB)]
    assert resumed_seq == reference_seq and reference.n_finished == 6

    runs = _mlflow_runs(uri)  # the killed execution's parent run is ended, none is left running
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
    assert all(r.info.status != "RUNNING" for r in runs)
