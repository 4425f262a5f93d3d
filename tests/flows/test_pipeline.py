"""The whole pipeline for real, once: the pipeline flow runs every ``dvc.yaml`` stage on tiny params
in a temporary copy of the project (git + DVC + MLflow), under the test Prefect server.

The one run answers several questions:

- the flow runs every stage in ``dvc.yaml`` order, registers and promotes; a second run is a no-op;
- the DVC graph tells the truth: each stage command runs through ``stage_probe.py``, which records
  the ``s2ssl`` modules it loaded and the ``params.yaml`` keys it read. Every loaded module must be
  covered by the stage's ``deps``; every key read must be covered by its ``params``, and every
  declared params key must be read (no stage depends on a whole section it reads one item of);
- the Optuna sweep (``tune/dvc.yaml``) and the calibration (``calibrate/dvc.yaml``) run only when
  targeted;
- a configuration whose model cannot clear the promotion bar becomes a challenger, not champion.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from flows import _dvc, _markdown
from flows.pipeline import ARTIFACT_KEY, pipeline
from testkit import REPO_ROOT, write_params, write_tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PROBE = Path(__file__).with_name("stage_probe.py")
TUNE: dict[str, Any] = {  # a 2-trial sweep of the cheapest task (for the targeted run)
    "task": "croptype",
    "init": "random",
    "fraction": 1.0,
    "n_trials": 2,
    "fixed": {},
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
}
CALIBRATE_CLASSIFIER: dict[str, Any] = {  # baselines of a few milliseconds (targeted run)
    "max_train_pixels": 500,
    "max_iter": 5,
}
TARGETED = ("tune/dvc.yaml", "calibrate/dvc.yaml")
"""The dvc.yaml files of the stages that run only when targeted."""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "COLUMNS": "200",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }


def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1200
    )


def _probed(cmd: str, records: Path) -> str:
    """``s2ssl <args>`` → the same arguments through the recording probe."""
    if not cmd.startswith("s2ssl "):
        raise ValueError(f"stage command does not start with 's2ssl ': {cmd!r}")
    return f"{sys.executable} {PROBE} {records} {cmd.removeprefix('s2ssl ')}"


def _copy_with_probe(src: Path, dst: Path, records: Path) -> None:
    """Copy a dvc.yaml, every stage command going through the probe."""
    raw = yaml.safe_load(src.read_text(encoding="utf-8"))
    for stage in raw["stages"].values():
        body = stage.get("do", stage)
        body["cmd"] = _probed(" ".join(body["cmd"].split()), records)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny copy of the project (git + DVC + MLflow store), nothing run yet."""
    root = tmp_path_factory.mktemp("pipeline")
    project, records = root / "project", root / "records"
    project.mkdir()
    for name in ("dvc.yaml", *TARGETED):
        _copy_with_probe(REPO_ROOT / name, project / name, records)
    shutil.copy(REPO_ROOT / ".dvcignore", project / ".dvcignore")
    shutil.copytree(
        REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO_ROOT / "weights", project / "weights")  # published encoders (a dep)
    raw = yaml.safe_load(write_tiny_params(project / "params.yaml").read_text(encoding="utf-8"))
    raw["tune"].update(TUNE)
    raw["calibrate"]["pixel_classifier"].update(CALIBRATE_CLASSIFIER)
    write_params(project / "params.yaml", raw)
    (project / "mlruns").mkdir()
    for cmd in (["git", "init", "-q"], [str(Path(sys.executable).parent / "dvc"), "init", "-q"]):
        done = _run(cmd, project)
        assert done.returncode == 0, done.stderr
    shutil.copytree(REPO_ROOT / ".dvc" / "plots", project / ".dvc" / "plots", dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlruns/mlflow.db")
        mp.setenv("GX_ANALYTICS_ENABLED", "false")
        mp.setenv("MPLBACKEND", "Agg")
        yield project


@pytest.fixture(scope="module")
def flow_runs(project: Path) -> dict[str, Any]:
    """The pipeline flow run twice on the tiny project."""
    options = {"retry_delays_s": [], "workspace_limit": "real-workspace", "gpu_limit": ""}
    first = pipeline(str(project), return_state=True, **options)
    second = pipeline(str(project), return_state=True, **options)
    return {"first": first, "second": second}


# ------------------------------------------------------------------ what the DVC graph declares
@dataclass(frozen=True)
class StageDecl:
    """What ``dvc.yaml`` declares for one (foreach-expanded) stage."""

    name: str
    argv: tuple[str, ...]
    deps: tuple[str, ...]
    params: tuple[str, ...]


def declared_stages(project: Path, records: Path) -> dict[str, StageDecl]:
    """Every stage of the project's DVC graph (``tune/dvc.yaml`` and ``calibrate/dvc.yaml``
    included), by its ``s2ssl`` arguments as the probe records them."""
    out: dict[str, StageDecl] = {}
    with contextlib.chdir(project), Repo(str(project)) as repo:
        for stage in repo.index.stages:
            cmd = getattr(stage, "cmd", None)
            if not cmd:
                continue
            argv = tuple(cmd.split())
            prefix = (sys.executable, str(PROBE), str(records))
            assert argv[: len(prefix)] == prefix, cmd
            params = [k for d in stage.deps if isinstance(d, ParamsDependency) for k in d.params]
            deps = [str(d.def_path) for d in stage.deps if not isinstance(d, ParamsDependency)]
            decl = StageDecl(stage.addressing, argv[len(prefix) :], tuple(deps), tuple(params))
            out[" ".join(decl.argv)] = decl
    return out


def uncovered_modules(modules: Mapping[str, str], deps: Sequence[str]) -> list[str]:
    """Loaded ``s2ssl`` modules (``name -> s2ssl/...py``) whose file no dep covers."""
    paths = [d.rstrip("/") for d in deps if d.startswith("src/")]
    missing = []
    for name, file in sorted(modules.items()):
        path = f"src/{file}"
        if not any(path == p or path.startswith(p + "/") for p in paths):
            missing.append(f"{name} ({path})")
    return missing


def _covers(declared: str, key: str) -> bool:
    return key == declared or key.startswith(declared + ".")


def param_problems(
    read: Sequence[str], declared: Sequence[str], params: Mapping[str, Any]
) -> list[str]:
    """Keys read but not declared, declared keys never read, and declared sections with a child
    key that is never read (a whole section where one item would do; a child set to null, an
    optional section that is off, does not count)."""
    problems = [
        f"reads {k} but does not depend on it"
        for k in read
        if not any(_covers(d, k) for d in declared)
    ]
    for d in declared:
        under = [k for k in read if _covers(d, k) or _covers(k, d)]
        if not under:
            problems.append(f"depends on {d} but never reads it")
            continue
        value: Any = params
        for part in d.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping) and not any(_covers(k, d) for k in read):
            problems += [
                f"depends on all of {d} but never reads {d}.{child}"
                for child, setting in value.items()
                if setting is not None  # an optional section that is off (e.g. fetch.local)
                and not any(_covers(f"{d}.{child}", k) or _covers(k, f"{d}.{child}") for k in read)
            ]
    return problems


def test_uncovered_modules_names_what_a_dep_list_misses() -> None:
    modules = {"s2ssl.bands": "s2ssl/bands.py", "s2ssl.data.store": "s2ssl/data/store.py"}
    assert uncovered_modules(modules, ["src/s2ssl/bands.py", "src/s2ssl/data"]) == []
    assert uncovered_modules(modules, ["src/s2ssl/bands.py", "src/s2ssl/dat"]) == [
        "s2ssl.data.store (src/s2ssl/data/store.py)"
    ]
    assert uncovered_modules(modules, ["data/raw", "src/s2ssl/data/"]) == [
        "s2ssl.bands (src/s2ssl/bands.py)"
    ]


def test_param_problems_flags_undeclared_unread_and_whole_sections() -> None:
    params = {"seed": 1, "pretrain": {"probe": {"k": 2}, "seco": {"lr": 1}, "moco": {"lr": 2}}}
    read = ["seed", "pretrain.seco.lr", "pretrain.probe.k"]
    assert param_problems(read, ["seed", "pretrain.seco", "pretrain.probe"], params) == []
    assert param_problems(read, ["seed", "pretrain"], params) == [
        "depends on all of pretrain but never reads pretrain.moco"
    ]
    assert param_problems(read, ["pretrain.seco", "pretrain.probe", "holdout_region"], params) == [
        "reads seed but does not depend on it",
        "depends on holdout_region but never reads it",
    ]
    # a section serialised whole counts as read whole
    assert param_problems(["pretrain"], ["pretrain"], params) == []
    # an optional section set to null need not be read
    off = {"fetch": {"source": "synthetic", "local": None}}
    assert param_problems(["fetch.source"], ["fetch"], off) == []


# ------------------------------------------------------------------------------------ the run
def test_the_flow_runs_every_stage_then_dvc_skips_them_all(
    project: Path, flow_runs: dict[str, Any]
) -> None:
    from test_flows import artifact_of

    first, second = flow_runs["first"], flow_runs["second"]
    assert first.is_completed(), first.message
    ran = first.result()["ran"]
    plan = _dvc.pipeline_stages(project)
    assert list(dict.fromkeys(s.split("@")[0] for s in ran)) == plan  # all, in dvc.yaml order
    for method in ("seco", "moco", "moco_tp", "dense", "cscl"):
        assert (f"pretrain@{method}" if method != "cscl" else "pretrain_cscl") in ran
        units = ["r0", "r1"] if method != "cscl" else ["r0.in_domain.f50", "r1.in_domain.f100"]
        for unit in units:  # one encoder per replicate (CSCL: and label subset)
            encoder = project / "models" / "pretrain" / method / "encoders" / unit
            assert (encoder / "weights.pt").is_file()
        assert (project / "reports" / "pretrain" / method / "metrics.json").is_file()
    for name in ("unlabelled", "landcover", "croptype"):
        assert (project / "data" / "raw" / name / "index.parquet").is_file()
        assert (project / "data" / "validated" / name / "norm_stats.json").is_file()
    assert (project / "reports" / "fetch" / "ndvi_curves.png").is_file()
    assert (project / "reports" / "validate" / "datadocs" / "index.html").is_file()
    assert (project / "reports" / "evaluate" / "metrics.json").is_file()
    verdicts = json.loads((project / "reports" / "evaluate" / "verdicts.json").read_text())
    assert {"embedding_earth", "cscl", "seco", "aa_control"} <= set(verdicts)
    report = (project / "reports" / "evaluate" / "report.md").read_text(encoding="utf-8")
    assert "## Rules" in report and "A/A control" in report
    md = artifact_of(first, ARTIFACT_KEY)
    assert "| landcover | random | finetune | 100 % | miou |" in md

    assert second.is_completed(), second.message
    again = second.result()
    assert again["ran"] == [] and set(again["skipped"]) == set(ran)
    assert "0 stage(s) ran" in artifact_of(second, ARTIFACT_KEY)
    status = _run([str(Path(sys.executable).parent / "dvc"), "status", "dvc.yaml"], project)
    assert "up to date" in status.stdout, status.stdout


def test_the_flow_registers_and_promotes_every_task(
    project: Path, flow_runs: dict[str, Any]
) -> None:
    from mlflow import MlflowClient
    from test_flows import artifact_of

    assert {"register", "promote"} <= set(flow_runs["first"].result()["ran"])
    decisions = _markdown.read_json(project / "reports" / "promote" / "decisions.json")
    assert decisions is not None
    client = MlflowClient(tracking_uri=f"sqlite:///{project}/mlruns/mlflow.db")
    for task in ("landcover", "croptype", "scene"):
        d = decisions["tasks"][task]
        assert d["promoted"] is True and d["champion_version"] == "1", d
        assert client.get_model_version(d["model"], "1").status == "READY", task
    md = artifact_of(flow_runs["first"], ARTIFACT_KEY)
    task, d = next(iter(sorted(decisions["tasks"].items())))
    assert f"| {task} | {d['model']} | v{d['candidate_version']} |" in md
    listed = _run([sys.executable, "-m", "s2ssl.cli", "models"], project)
    assert listed.returncode == 0, listed.stderr
    assert "s2ssl-landcover" in listed.stdout and "champion" in listed.stdout


def test_tune_runs_only_when_targeted(project: Path, flow_runs: dict[str, Any]) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    assert not [s for s in flow_runs["first"].result()["ran"] if s.startswith("tune")]
    assert not (project / "reports" / "tune").exists()
    assert "tune/dvc.yaml:tune" in _run([dvc, "status"], project).stdout  # never run yet
    tune = _run([dvc, "repro", "tune/dvc.yaml"], project)
    assert tune.returncode == 0, tune.stdout + tune.stderr
    assert "Running stage 'tune/dvc.yaml:tune'" in tune.stdout
    assert tune.stdout.count("Running stage") == 1, tune.stdout
    assert (project / "reports" / "tune" / "best_params.yaml").is_file()
    assert (project / "models" / "tune" / "study.db").is_file()
    again = _run([dvc, "repro", "tune/dvc.yaml"], project)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert "Running stage" not in _run([dvc, "repro"], project).stdout


def test_calibrate_runs_only_when_targeted(project: Path, flow_runs: dict[str, Any]) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    assert not [s for s in flow_runs["first"].result()["ran"] if s.startswith("calibrate")]
    assert not (project / "reports" / "calibrate").exists()
    assert "calibrate/dvc.yaml:calibrate" in _run([dvc, "status"], project).stdout
    calibrate = _run([dvc, "repro", "calibrate/dvc.yaml"], project)
    assert calibrate.returncode == 0, calibrate.stdout + calibrate.stderr
    assert "Running stage 'calibrate/dvc.yaml:calibrate'" in calibrate.stdout
    assert calibrate.stdout.count("Running stage") == 1, calibrate.stdout
    reports = project / "reports" / "calibrate"
    summary = json.loads((reports / "summary.json").read_text(encoding="utf-8"))
    assert "landcover.random.f100.miou" in summary and "season.croptype.gap" in summary
    assert (reports / "report.md").is_file() and (reports / "curves.png").is_file()
    assert len(list((reports / "runs").glob("*.json"))) == 6  # 3 tasks x 2 fractions
    assert not (project / "models" / "calibrate").exists()
    again = _run([dvc, "repro", "calibrate/dvc.yaml"], project)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    assert "Running stage" not in _run([dvc, "repro"], project).stdout


def test_every_stage_depends_on_the_code_it_loads_and_the_params_it_reads(
    project: Path, flow_runs: dict[str, Any]
) -> None:
    for targeted in TARGETED:  # (no-ops after the tests above)
        done = _run([str(Path(sys.executable).parent / "dvc"), "repro", targeted], project)
        assert done.returncode == 0, done.stdout + done.stderr
    records = project.parent / "records"
    declared = declared_stages(project, records)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    seen: set[str] = set()
    problems: list[str] = []
    for path in sorted(records.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        decl = declared.get(" ".join(record["argv"]))
        if decl is None:
            continue  # a command run by hand in this test (e.g. `s2ssl models`)
        seen.add(decl.name)
        problems += [
            f"{decl.name}: loads {m}" for m in uncovered_modules(record["modules"], decl.deps)
        ]
        problems += [
            f"{decl.name}: {p}" for p in param_problems(record["params"], decl.params, params)
        ]
    assert seen == {d.name for d in declared.values()}, "stages that never ran under the probe"
    assert problems == [], "\n".join(problems)


def test_a_challenger_that_cannot_clear_the_bar_is_not_promoted(
    project: Path, flow_runs: dict[str, Any]
) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    raw["finetune"]["landcover"]["lr"] = 1e-6
    raw["register"]["promote"]["min_improvement"] = 0.9
    write_params(project / "params.yaml", raw)
    third = _run([str(Path(sys.executable).parent / "dvc"), "repro", "promote"], project)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Running stage 'finetune@landcover'" in third.stdout
    assert "Running stage 'finetune@scene'" not in third.stdout  # its params did not change
    decisions = json.loads((project / "reports" / "promote" / "decisions.json").read_text())
    landcover = decisions["tasks"]["landcover"]
    assert landcover["promoted"] is False and landcover["candidate_version"] == "2"
    assert landcover["champion_version"] == "1"
    # the interval's lower bound is not above 0.9: the reason states the interval
    assert "champion version 1" in landcover["reason"] and "CI" in landcover["reason"]
    assert "not promoted" in third.stdout
    assert decisions["tasks"]["scene"]["reason"].startswith("no challenger")
