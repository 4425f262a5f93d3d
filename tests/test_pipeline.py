"""The DVC pipeline for real: `dvc repro` in a temporary copy of the project, twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit import REPO_ROOT, write_tiny_params

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


def test_dvc_repro_runs_the_stages_then_is_a_no_op(tmp_path: Path) -> None:
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent))
    if dvc is None:
        pytest.skip("dvc is not installed in this environment")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", ".dvcignore", "tune/dvc.yaml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, project / name)
    shutil.copytree(
        REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    write_tiny_params(project / "params.yaml")
    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    raw["tune"] = {  # a 2-trial sweep of the cheapest task (for the targeted run below)
        **raw["tune"],
        "task": "croptype",
        "init": "random",
        "fraction": 1.0,
        "n_trials": 2,
        "fixed": {},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    assert run(["git", "init", "-q"], project).returncode == 0
    init = run([dvc, "init", "-q"], project)
    assert init.returncode == 0, init.stderr

    first = run([dvc, "repro"], project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Running stage 'fetch'" in first.stdout
    assert "Running stage 'validate'" in first.stdout
    for name in ("unlabelled", "landcover", "croptype"):
        assert (project / "data" / "raw" / name / "index.parquet").is_file()
    assert (project / "reports" / "fetch" / "ndvi_curves.png").is_file()
    assert (project / "dvc.lock").is_file()
    for name in ("unlabelled", "landcover", "croptype"):
        assert (project / "data" / "validated" / name / "norm_stats.json").is_file()
    assert (project / "reports" / "validate" / "datadocs" / "index.html").is_file()
    for method in ("seco", "moco", "moco_tp", "dense", "cscl"):
        assert (project / "models" / "pretrain" / method / "encoder" / "weights.pt").is_file()
        assert (project / "reports" / "pretrain" / method / "metrics.json").is_file()

    # register + promote: every task's model registered, the first version is champion
    decisions = json.loads((project / "reports" / "promote" / "decisions.json").read_text())
    for task in ("landcover", "croptype", "scene"):
        assert decisions["tasks"][task]["promoted"] is True
        assert decisions["tasks"][task]["champion_version"] == "1"
    assert "no champion yet" in first.stdout
    listed = run([sys.executable, "-m", "s2ssl.cli", "models"], project)
    assert listed.returncode == 0, listed.stderr
    assert "s2ssl-landcover" in listed.stdout and "champion" in listed.stdout

    second = run([dvc, "repro"], project)
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout or "up to date" in second.stdout

    status = run([dvc, "status", "dvc.yaml"], project)
    assert "up to date" in status.stdout, status.stdout

    # the Optuna sweep lives in tune/dvc.yaml: never part of a plain `dvc repro` ...
    assert "tune/dvc.yaml:tune" not in first.stdout + second.stdout
    assert not (project / "reports" / "tune").exists()
    assert "tune/dvc.yaml:tune" in run([dvc, "status"], project).stdout  # (never run yet)
    # ... it runs when targeted, upstream stages untouched, then is up to date
    tune = run([dvc, "repro", "tune/dvc.yaml"], project)
    assert tune.returncode == 0, tune.stdout + tune.stderr
    assert "Running stage 'tune/dvc.yaml:tune'" in tune.stdout
    assert tune.stdout.count("Running stage") == 1, tune.stdout
    assert (project / "reports" / "tune" / "best_params.yaml").is_file()
    assert (project / "models" / "tune" / "study.db").is_file()
    again = run([dvc, "repro", "tune/dvc.yaml"], project)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert "Running stage" not in run([dvc, "repro"], project).stdout

    # another configuration whose model cannot clear the bar: a challenger, not promoted, and why
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["finetune"]["landcover"]["lr"] = 1e-6
    raw["register"]["promote"]["min_improvement"] = 0.9
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    third = run([dvc, "repro", "promote"], project)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Running stage 'finetune@landcover'" in third.stdout
    # (finetune@scene runs too — its params section changed — but reuses every run, exports the
    # same weights, and registration recognises the model's hash: nothing new to promote)
    decisions = json.loads((project / "reports" / "promote" / "decisions.json").read_text())
    landcover = decisions["tasks"]["landcover"]
    assert landcover["promoted"] is False and landcover["candidate_version"] == "2"
    assert landcover["champion_version"] == "1"
    assert "+ 0.9 (champion version 1)" in landcover["reason"]
    assert "not promoted" in third.stdout
    assert decisions["tasks"]["scene"]["reason"].startswith("no challenger")
