"""The Optuna sweep on the tiny world: trials, reports, MLflow, resume after a kill, pruning."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml

from s2ssl.bands import BAND_NAMES
from s2ssl.config import Params, load_params, set_dotted
from s2ssl.finetune.data import TaskSplit, load_task_data
from s2ssl.tuning import run_study
from s2ssl.tuning.objective import make_objective
from s2ssl.tuning.space import distribution
from s2ssl.tuning.storage import STUDY_DB, study_lock
from s2ssl.tuning.trials import is_finished
from testkit import TINY_SIZES, read_repo_params, write_params

TINY_TUNE: dict[str, Any] = {
    "study_name": "tiny",
    "task": "croptype",  # the cheapest network of the tiny world (a 3-D U-Net of width 4)
    "init": "random",
    "fraction": 1.0,
    "n_trials": 4,
    "n_startup_trials": 2,
    "include_current": True,
    "pruner": {"enabled": True, "n_startup_trials": 2, "n_warmup_steps": 0, "interval_steps": 1},
    "fixed": {},
    "space": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [2, 4, 8]},
    },
}


def write_tune_params(path: Path, **tune: Any) -> Path:
    """The tiny params (2-step fine-tunes, one torch thread) with a tiny `tune` section (the repo's
    `tune` section with :data:`TINY_TUNE` and ``tune`` applied)."""
    raw = read_repo_params()
    for key, value in {**TINY_SIZES, "finetune.torch_threads": 1}.items():
        set_dotted(raw, key, value)
    raw["tune"] = {**raw["tune"], **TINY_TUNE, **tune}
    return write_params(path, raw)


def _trials(db: Path) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _mlflow_runs(uri: str) -> list[Any]:
    import mlflow

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
    for number in running:  # the trial the kill interrupted is retried with its values
        retry = next(t for t in after if t.user_attrs.get("retry_of") == number)
        assert retry.params == by_number[number].params and is_finished(retry)

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


def test_a_second_sweep_on_the_same_database_is_refused(
    tiny_validated: Path, tmp_path: Path
) -> None:
    params = load_params(write_tune_params(tmp_path / "params.yaml"))
    out = tmp_path / "models"
    with (
        study_lock(out / STUDY_DB),
        pytest.raises(ValueError, match=r"another sweep is running on .*study\.db"),
    ):
        run_study(params, tiny_validated, tmp_path, out, tmp_path / "reports", track=False)


def _easy(n: int, seed: int) -> TaskSplit:
    """Label 1 where the red band is bright: learnt in a few steps at a sane learning rate."""
    g = torch.Generator().manual_seed(seed)
    bright = (
        (torch.rand(n, 4, 4, generator=g) > 0.5).repeat_interleave(8, 1).repeat_interleave(8, 2)
    )
    image = torch.full((n, 1, len(BAND_NAMES), 32, 32), 800, dtype=torch.int16)
    image[:, 0, BAND_NAMES.index("B04")] = torch.where(bright, 3000, 500).to(torch.int16)
    image += torch.randint(0, 100, image.shape, generator=g).to(torch.int16)
    ids = tuple(f"p{i}" for i in range(n))
    return TaskSplit(image, torch.full((n, 1), 100), bright.long(), ids, np.zeros(n, np.int64))


def test_the_median_pruner_stops_a_trial_far_below_the_median(
    tiny_validated: Path, tmp_path: Path
) -> None:
    params = load_params(
        write_tune_params(
            tmp_path / "params.yaml",
            task="landcover",
            space={"lr": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}},
        ),
        {
            "finetune.landcover.feature_dim": 8,
            "finetune.landcover.min_steps": 8,
            "finetune.landcover.max_steps": 8,
            "finetune.landcover.val_every": 4,
            "finetune.landcover.batch_size": 4,
        },
    )
    data = load_task_data("landcover", tiny_validated, "in_domain", None)
    data = dataclasses.replace(data, train=_easy(16, 1), val=_easy(4, 2))
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    for lr in (3e-3, 2e-3, 1e-9):  # two that learn, then one that cannot
        study.enqueue_trial({"lr": lr})
    study.optimize(make_objective(params, data, tmp_path), n_trials=3)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"], [
        t.intermediate_values for t in study.trials
    ]
    pruned = study.trials[2]
    assert pruned.last_step == 4  # stopped at its first report after the warm-up, not at step 8
    assert list(study.trials[0].intermediate_values) == [4, 8]  # reported per optimiser step
