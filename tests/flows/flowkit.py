"""Helpers of the flow tests: a fake DVC runner (scripted outcomes, no subprocess) and a toy DVC
project whose stages are one-line Python scripts (real ``dvc``, seconds, no ML)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flows._dvc import DvcCall, parse_outcomes, stage_group

Response = str | int
"""``"ran"``, ``"skipped"``, ``"restored"`` or a failing exit code of the stage command."""


def dvc_lines(stage: str, response: Response) -> tuple[int, list[tuple[float, str]]]:
    """(dvc exit code, timed output) as ``dvc repro <stage>`` prints it."""
    if response == "ran":
        return 0, [
            (0.0, f"Running stage '{stage}':"),
            (0.0, f"> s2ssl {stage}"),
            (1.5, "Updating lock file 'dvc.lock'"),
        ]
    if response == "skipped":
        return 0, [
            (0.0, f"Stage '{stage}' didn't change, skipping"),
            (0.0, "Data and pipelines are up to date."),
        ]
    if response == "restored":
        return 0, [(0.0, f"Stage '{stage}' is cached - skipping run, checking out outputs")]
    assert isinstance(response, int)
    return 255, [
        (0.0, f"Running stage '{stage}':"),
        (0.0, f"> s2ssl {stage}"),
        (0.5, f"ERROR: failed to reproduce '{stage}': failed to run: s2ssl {stage}, "
         f"exited with {response}"),
    ]  # fmt: skip


@dataclass
class FakeRunner:
    """Answers ``dvc repro <stage>`` from a script per stage (default: ``"ran"``) and records
    every call. ``hooks[stage]`` runs before answering (e.g. to write reports or dvc.lock)."""

    project: Path
    script: dict[str, list[Response]] = field(default_factory=dict)
    hooks: dict[str, Callable[[Path], None]] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)
    default: Response = "ran"

    def __call__(self, args: Sequence[str], cwd: Path) -> DvcCall:
        assert Path(cwd) == self.project.resolve()
        self.calls.append(list(args))
        targets = [a for a in args if stage_group(a) in self.known]
        lines: list[tuple[float, str]] = []
        code = 0
        for stage in targets:  # script and hooks are keyed by the stage name (``tune``)
            queue = self.script.get(stage_group(stage), [])
            response = queue.pop(0) if queue else self.default
            if stage_group(stage) in self.hooks and response == "ran":
                self.hooks[stage_group(stage)](self.project)
            code, out = dvc_lines(stage, response)
            t0 = lines[-1][0] if lines else 0.0
            lines += [(t0 + t, text) for t, text in out]
            if code:
                break
        end = (lines[-1][0] if lines else 0.0) + 0.1
        return DvcCall(list(args), code, end, lines, parse_outcomes(lines, end))

    @property
    def known(self) -> list[str]:
        files = [self.project / "dvc.yaml", *self.project.glob("*/dvc.yaml")]
        return [s for f in files for s in yaml.safe_load(f.read_text())["stages"]]

    def repro_targets(self) -> list[str]:
        return [c[-1] for c in self.calls]


def write_dvc_yaml(project: Path, stages: Sequence[str]) -> Path:
    """A dvc.yaml naming ``stages`` (placeholder commands; the fake runner never runs them);
    ``tune`` goes to tune/dvc.yaml, as in the project."""
    project.mkdir(parents=True, exist_ok=True)
    for path, names in (
        (project / "dvc.yaml", [s for s in stages if s != "tune"]),
        (project / "tune" / "dvc.yaml", [s for s in stages if s == "tune"]),
    ):
        if names:
            path.parent.mkdir(parents=True, exist_ok=True)
            body = {"stages": {s: {"cmd": f"s2ssl {s}"} for s in names}}
            path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
    return project / "dvc.yaml"


PIPELINE = ("fetch", "validate", "pretrain", "finetune", "evaluate", "register", "promote")

METRICS = {
    "landcover.in_domain.random.finetune.f10.miou": 0.41,
    "landcover.in_domain.random.finetune.f100.miou": 0.70,
    "landcover.in_domain.dense.finetune.f100.miou": 0.74,
    "landcover.in_domain.dense.finetune.f100.miou.gain": 0.04,
    "landcover.in_domain.dense.finetune.f100.overall_accuracy": 0.9,
    "landcover.transfer.dense.finetune.f10.miou": 0.5,
    "scene.in_domain.seco.linear.f100.balanced_accuracy": 0.81,
    "scene.in_domain.seco.linear.f100.balanced_accuracy.gain": -0.02,
    "scene.in_domain.seco.linear.f100.top1": 0.9,
    "scene.majority_baseline.top1": 0.4,
    "scene.majority_baseline.balanced_accuracy": 0.25,
}

DECISIONS = {
    "tasks": {
        "landcover": {
            "model": "s2ssl-landcover",
            "candidate_version": "3",
            "champion_version": "3",
            "previous_champion_version": "2",
            "promoted": True,
            "reason": "miou 0.334 >= 0.301 + 0.005",
            "metric": "miou",
            "candidate_value": 0.334,
            "champion_value": 0.301,
        },
        "croptype": {
            "model": "s2ssl-croptype",
            "candidate_version": "1",
            "champion_version": None,
            "previous_champion_version": None,
            "promoted": False,
            "reason": "candidate | below the floor",
            "metric": "miou",
            "candidate_value": 0.1,
            "champion_value": None,
        },
    }
}


def write_reports(project: Path) -> None:
    """metrics.json and decisions.json as the evaluate / promote stages write them."""
    for rel, content in (
        ("reports/evaluate/metrics.json", METRICS),
        ("reports/promote/decisions.json", DECISIONS),
    ):
        path = project / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content), encoding="utf-8")


# --------------------------------------------------------------------------- toy DVC project
TOY_SCRIPT = textwrap.dedent(
    '''
    """A toy stage: `python stage.py NAME [ITEM]`. Exit codes queued in failures/NAME (one per
    line) are returned first, one per call; every call is counted in failures/NAME.count."""
    import json, pathlib, sys

    name = sys.argv[1]
    item = sys.argv[2] if len(sys.argv) > 2 else ""
    box = pathlib.Path("failures")
    box.mkdir(exist_ok=True)
    count = box / f"{name}.count"
    count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))
    queue = box / name
    codes = queue.read_text().split() if queue.exists() else []
    if codes:
        queue.write_text("\\n".join(codes[1:]))
        if int(codes[0]):
            print(f"{name}: failing with {codes[0]}", file=sys.stderr)
            sys.exit(int(codes[0]))

    def write(path, text):
        p = pathlib.Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    if name == "fetch":  # "the service": world.txt stands for what is available today
        write("data/raw/scenes.txt", pathlib.Path("world.txt").read_text())
    elif name == "validate":
        write("data/validated/scenes.txt", pathlib.Path("data/raw/scenes.txt").read_text().upper())
    elif name == "pretrain":
        write(f"models/pretrain/{item}.txt", item)
    elif name == "evaluate":
        write("reports/evaluate/metrics.json", json.dumps(
            {"toy.in_domain.random.finetune.f100.miou": 0.5,
             "toy.in_domain.dense.finetune.f100.miou": 0.6,
             "toy.in_domain.dense.finetune.f100.miou.gain": 0.1}))
    elif name == "tune":
        write("reports/tune/best_params.yaml", "pretrain:\\n  dense:\\n    lr: 0.01\\n")
    '''
)

TOY_DVC_YAML = """\
stages:
  fetch:
    cmd: python stage.py fetch
    params: [seed]
    outs: [data/raw]
  validate:
    cmd: python stage.py validate
    deps: [data/raw]
    outs: [data/validated]
  pretrain:
    foreach: ${methods}
    do:
      cmd: python stage.py pretrain ${item}
      deps: [data/validated]
      params: [lr]
      outs: ["models/pretrain/${item}.txt"]
  evaluate:
    cmd: python stage.py evaluate
    deps: [models/pretrain]
    metrics:
      - reports/evaluate/metrics.json:
          cache: false
"""

TOY_TUNE_DVC_YAML = """\
stages:
  tune:
    wdir: ..
    cmd: python stage.py tune
    deps: [data/validated]
    outs:
      - reports/tune/best_params.yaml:
          cache: false
"""


def _git(project: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", *args], cwd=project, env=env, check=True, capture_output=True)


def make_toy_project(project: Path) -> Path:
    """A git + DVC repository with the toy stages (fetch → validate → pretrain@a/b → evaluate,
    and tune in tune/dvc.yaml as in the project), committed so ``dvc exp run`` works."""
    project.mkdir(parents=True)
    (project / "stage.py").write_text(TOY_SCRIPT, encoding="utf-8")
    (project / "dvc.yaml").write_text(TOY_DVC_YAML, encoding="utf-8")
    (project / "tune").mkdir()
    (project / "tune" / "dvc.yaml").write_text(TOY_TUNE_DVC_YAML, encoding="utf-8")
    (project / "params.yaml").write_text("seed: 1\nlr: 0.1\nmethods: [a, b]\n", encoding="utf-8")
    (project / "world.txt").write_text("scene-1\n", encoding="utf-8")
    (project / ".gitignore").write_text("failures/\n", encoding="utf-8")
    _git(project, "init", "-q")
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc), "init", "-q"], cwd=project, check=True, capture_output=True)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "toy")
    return project


def queue_failures(project: Path, stage: str, codes: Sequence[int]) -> None:
    """The next calls of toy ``stage`` exit with ``codes`` (0: run normally)."""
    box = project / "failures"
    box.mkdir(exist_ok=True)
    (box / stage).write_text("\n".join(str(c) for c in codes), encoding="utf-8")


def stage_calls(project: Path, stage: str) -> int:
    """How many times toy ``stage``'s command ran."""
    count = project / "failures" / f"{stage}.count"
    return int(count.read_text()) if count.exists() else 0
