"""The pipeline flow for real: ``dvc repro`` of every stage in a temporary copy of the project on
tiny params, under the test Prefect server; then a second run that DVC skips entirely, and the
model the register / promote stages put in the MLflow registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows import _dvc, _markdown
from flows.pipeline import ARTIFACT_KEY, pipeline
from s2ssl.config import set_dotted
from testkit import REPO_ROOT, write_params, write_tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

HAS_REGISTRY = all(_dvc.has_stage(REPO_ROOT, s) for s in _dvc.REGISTRY_STAGES)

SMALLER: dict[str, Any] = {
    "pretrain.methods": ["dense"],
    "finetune.tasks": ["landcover"],
    "finetune.landcover.inits": ["random", "dense"],
    "finetune.fractions": [1.0],
    "finetune.region_transfer.enabled": False,
}
"""On top of the tiny sizes: one method, one task (every stage still runs; ~2 min on 2 cores)."""


def _git(project: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *args], cwd=project, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A tiny copy of the project (git + DVC), the pipeline flow run on it twice."""
    project = tmp_path_factory.mktemp("flow_project") / "project"
    project.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO_ROOT / name, project / name)
    shutil.copytree(
        REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    raw = yaml.safe_load(write_tiny_params(project / "params.yaml").read_text())
    for key, value in SMALLER.items():
        set_dotted(raw, key, value)
    write_params(project / "params.yaml", raw)
    (project / "mlruns").mkdir()
    _git(project, "init", "-q")
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc), "init", "-q"], cwd=project, check=True, capture_output=True)
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", project / ".dvc" / "plots", dirs_exist_ok=True)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlruns/mlflow.db")
        mp.setenv("GX_ANALYTICS_ENABLED", "false")
        mp.setenv("MPLBACKEND", "Agg")
        options = {"retry_delays_s": [], "workspace_limit": "real-workspace", "gpu_limit": ""}
        first = pipeline(str(project), return_state=True, **options)
        second = pipeline(str(project), return_state=True, **options)
        yield {"project": project, "first": first, "second": second}


def test_the_flow_runs_every_stage_then_dvc_skips_them_all(real_run: dict[str, Any]) -> None:
    from test_flows import artifact_of

    project: Path = real_run["project"]
    first, second = real_run["first"], real_run["second"]
    assert first.is_completed(), first.message
    ran = first.result()["ran"]
    plan = _dvc.pipeline_stages(project)
    assert list(dict.fromkeys(s.split("@")[0] for s in ran)) == plan  # all, in dvc.yaml order
    assert {"pretrain@dense", "finetune@landcover"} <= set(ran)
    assert (project / "reports" / "evaluate" / "metrics.json").is_file()
    md = artifact_of(first, ARTIFACT_KEY)
    assert "| landcover | random | finetune | 100 % | miou |" in md

    assert second.is_completed(), second.message
    again = second.result()
    assert again["ran"] == [] and set(again["skipped"]) == set(ran)
    assert "0 stage(s) ran" in artifact_of(second, ARTIFACT_KEY)


@pytest.mark.skipif(not HAS_REGISTRY, reason="register stage not in dvc.yaml")
def test_the_flow_registers_and_promotes_a_model(real_run: dict[str, Any]) -> None:
    from mlflow import MlflowClient
    from test_flows import artifact_of

    project: Path = real_run["project"]
    assert {"register", "promote"} <= set(real_run["first"].result()["ran"])
    assert (project / "reports" / "register" / "registered.json").is_file()
    decisions = _markdown.read_json(project / "reports" / "promote" / "decisions.json")
    assert decisions is not None and decisions["tasks"]
    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlruns/mlflow.db")
    for task, d in decisions["tasks"].items():
        version = client.get_model_version(d["model"], str(d["candidate_version"]))
        assert version.status == "READY", task
    md = artifact_of(real_run["first"], ARTIFACT_KEY)
    task, d = next(iter(sorted(decisions["tasks"].items())))
    assert f"| {task} | {d['model']} | v{d['candidate_version']} |" in md
    assert str(d["reason"]).split("|")[0].strip() in md
