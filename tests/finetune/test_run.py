"""The resumable fine-tuning stage: runs, resumption after a kill, export, MLflow runs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import mlflow
import pytest

from s2ssl.config import load_params
from s2ssl.finetune import run as run_module
from s2ssl.finetune.data import load_task_data
from s2ssl.finetune.run import run_finetune
from s2ssl.finetune.store import load_samples
from s2ssl.models.downstream import SceneNet, load_model


def _scores(result: Any) -> dict[str, tuple[float, float]]:
    return {k: (r["val_score"], r["test"]["top1"]) for k, r in result.results.items()}


@pytest.mark.slow
def test_stage_runs_resumes_an_interrupted_run_and_exports(
    tiny_validated: Path, tiny_run_params: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocols = {"finetune.scene.protocols": ["linear", "knn", "finetune"]}
    params = load_params(tiny_run_params, protocols)
    out, reports = tmp_path / "models", tmp_path / "reports"

    def stage(p: Any = params) -> Any:
        return run_finetune(
            p, "scene", tiny_validated, tmp_path / "none", out, reports, track=False
        )

    first = stage()
    assert first.reused == [] and len(first.executed) == 10  # 5 runs x 2 replicates
    record = json.loads((reports / "scene/runs/r0.in_domain.random.knn.f100.json").read_text())
    assert record["n_train"] == len(
        load_task_data("scene", tiny_validated, "in_domain", None, scene_tile=32).train
    )
    assert 0.0 <= record["test"]["top1"] <= 1.0 and not math.isnan(record["val_score"])
    # k chosen on val among knn_k_choices that fit the labelled bank (else the bank size)
    fitting = [k for k in params.finetune.scene.knn_k_choices if k <= record["n_train"]]
    assert record["val_metric"] == "balanced_accuracy"
    assert record["protocol_choice"]["knn_k"] in (fitting or [record["n_train"]])
    linear = json.loads((reports / "scene/runs/r0.in_domain.random.linear.f100.json").read_text())
    decays = params.finetune.scene.linear.weight_decay_choices
    assert linear["protocol_choice"]["linear_weight_decay"] in decays
    tuned = json.loads((reports / "scene/runs/r0.in_domain.random.finetune.f100.json").read_text())
    assert tuned["protocol_choice"] is None
    assert first.selected == "r0.in_domain.random.finetune.f100"  # candidates: replicate 0
    model, meta = load_model(out / "scene/model")
    assert isinstance(model, SceneNet) and meta["selected_run"] == first.selected
    # per-test-sample confusion matrices: what the evaluation bootstraps and promotion pairs
    ids, parts = load_samples(reports / "scene/runs/r0.in_domain.random.knn.f100.samples.npz")
    test = load_task_data("scene", tiny_validated, "in_domain", None, scene_tile=32).test
    assert ids == test.ids and parts["all"].shape == (len(ids), 7, 7)
    assert parts["all"].sum(axis=(1, 2)).tolist() == [1] * len(ids)  # one tile, one label each
    assert parts["all"].sum(axis=0).tolist() == record["test"]["confusion"]
    model_ids, model_parts = load_samples(out / "scene/model/test_samples.npz")
    assert model_ids == ids and set(model_parts) == {"confusion"}
    # the replicates of a setting are paired: same label subset size, other seeds
    r1 = json.loads((reports / "scene/runs/r1.in_domain.random.knn.f50.json").read_text())
    r0 = json.loads((reports / "scene/runs/r0.in_domain.random.knn.f50.json").read_text())
    assert r0["seed"] != r1["seed"] and r0["n_train"] == r1["n_train"]

    # a finished stage's results are never reused: DVC runs the stage only when an input changed
    again = stage()
    assert again.reused == [] and again.executed == first.executed
    assert _scores(again) == _scores(first)  # deterministic on CPU

    # killed after two runs: the next execution keeps those two and runs the other three
    real = run_module.execute_run
    calls: list[str] = []

    def killed_after_two(p: Any, spec: Any, *args: Any, **kwargs: Any) -> Any:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(spec.key)
        return real(p, spec, *args, **kwargs)

    monkeypatch.setattr(run_module, "execute_run", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        stage()
    monkeypatch.setattr(run_module, "execute_run", real)
    resumed = stage()
    assert resumed.reused == calls and len(resumed.executed) == 8
    assert _scores(resumed) == _scores(first)

    # killed again, then the configuration changes: nothing of the interrupted run is reused
    calls.clear()
    monkeypatch.setattr(run_module, "execute_run", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        stage()
    monkeypatch.setattr(run_module, "execute_run", real)
    third = stage(load_params(tiny_run_params, {**protocols, "finetune.fractions": [1.0]}))
    assert third.reused == [] and len(third.executed) == 6
    assert not (reports / "scene/runs/r0.in_domain.random.knn.f50.json").exists()  # stale: removed
    assert not (reports / "scene/runs/r0.in_domain.random.knn.f50.samples.npz").exists()


def test_stage_refuses_an_unknown_task(
    tiny_validated: Path, tiny_run_params: Path, tmp_path: Path
) -> None:
    params = load_params(tiny_run_params)
    with pytest.raises(ValueError, match="unknown task 'forest'"):
        run_finetune(params, "forest", tiny_validated, tmp_path, tmp_path, tmp_path, track=False)


@pytest.mark.slow
def test_stage_logs_a_parent_run_with_nested_runs(
    tiny_validated: Path, tiny_run_params: Path, tmp_path: Path
) -> None:
    params = load_params(
        tiny_run_params,
        {
            "finetune.fractions": [1.0],
            "finetune.scene.protocols": ["knn"],
            "evaluate.replicates": 1,
        },
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_finetune(
        params, "scene", tiny_validated, tmp_path, tmp_path / "m", tmp_path / "r", tracking_uri=uri
    )
    assert result.executed == ["r0.in_domain.random.knn.f100"]
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["finetune"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.info.run_name for r in parents] == ["scene"]
    assert [r.info.run_name for r in children] == ["scene/r0.in_domain.random.knn.f100"]
    assert children[0].data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert children[0].data.tags["s2ssl.init"] == "random"
    assert 0.0 <= children[0].data.metrics["test.top1"] <= 1.0
