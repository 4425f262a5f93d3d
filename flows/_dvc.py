"""What the flows know about DVC and the pipeline's reports — plain Python, no Prefect, no torch.

- :func:`pipeline_stages` reads the stage order from ``dvc.yaml`` (so stages added there, such as
  ``register`` / ``promote``, join the pipeline flow without a code change).
- :func:`run_dvc` runs one ``dvc`` command in the project, streaming its output with a timestamp
  per line; :func:`parse_outcomes` turns that output into which stages ran, were skipped
  (unchanged) or restored from the run cache, with durations. DVC alone decides what is up to
  date; the flows only report it.
- :func:`classify_failure` makes "transient" concrete: a stage command that exited with
  ``EX_TEMPFAIL`` (75, what ``s2ssl fetch`` returns for network / rate-limit failures), a DVC
  workspace lock held by another process, or a network error of ``dvc push`` / ``pull``.
  Everything else (a failed validation, a code error, bad params) is permanent, never retried.
- :func:`stage_out_hashes` reads the hashes DVC recorded in ``dvc.lock`` for a stage's outputs
  (the ingest flow compares them before / after).
- :func:`render_pipeline_report` and friends write the markdown of the runs' Prefect artifacts
  from ``reports/evaluate/metrics.json`` and ``reports/promote/decisions.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

EX_TEMPFAIL: Final[int] = 75
"""Exit code of a transient failure (sysexits.h; ``s2ssl fetch`` returns it): worth retrying."""

TARGETED_ONLY: Final[frozenset[str]] = frozenset({"tune"})
"""Stages that never run in the pipeline flow, only when named (the sweep flow). The sweep's
``tune`` lives in ``tune/dvc.yaml`` so that a plain ``dvc repro`` skips it; should it ever sit in
the root dvc.yaml, the pipeline flow still leaves it out."""

GPU_STAGES: Final[frozenset[str]] = frozenset({"pretrain", "finetune", "tune"})
"""Stages that train, so hold the GPU concurrency slot while they run."""

REGISTRY_STAGES: Final[tuple[str, ...]] = ("register", "promote")
"""The MLflow registry stages; the pipeline flow reports them apart (they may not exist yet)."""

DVC_LOCK_BUSY: Final[str] = "Unable to acquire lock"
"""DVC's message when another dvc process holds the workspace lock (transient)."""

REMOTE_COMMANDS: Final[frozenset[str]] = frozenset({"push", "pull", "fetch"})
"""dvc commands that talk to the DVC remote; their network failures are transient."""

_NETWORK_ERROR = re.compile(
    r"ConnectionError|Connection (refused|reset|aborted)|timed out|Timeout|"
    r"Temporary failure in name resolution|Name or service not known|Too Many Requests|"
    r"SlowDown|\b(429|50[0234])\b"
)
"""Signs of a network problem in the output of a dvc remote command."""

OUTPUT_TAIL_LINES: Final[int] = 40
"""Lines of output the task logs when a dvc command fails."""

ERROR_TAIL_LINES: Final[int] = 20
"""Lines of output a :class:`DvcCommandError` (and so the artifact) carries."""

Status = Literal["ran", "skipped", "restored", "failed"]


class DvcPlanError(ValueError):
    """dvc.yaml is missing, unreadable, or lacks a stage the flow was asked to run."""


class DvcCommandError(RuntimeError):
    """A ``dvc`` command failed; ``transient`` says whether running it again later may help."""

    def __init__(self, call: DvcCall, exit_code: int | None, transient: bool) -> None:
        self.call = call
        self.exit_code = exit_code
        self.transient = transient
        kind = "transient" if transient else "permanent"
        code = f"the stage command exited with {exit_code}" if exit_code is not None else ""
        super().__init__(
            f"`{call.command}` failed ({kind}; dvc exit code {call.returncode}"
            f"{'; ' + code if code else ''}):\n{call.tail(ERROR_TAIL_LINES)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable for Prefect's state handling
        return (DvcCommandError, (self.call, self.exit_code, self.transient))


@dataclass(frozen=True)
class StageOutcome:
    """One DVC stage (``pretrain@seco`` for a foreach item) in one dvc command's output."""

    name: str
    status: Status
    seconds: float = 0.0

    @property
    def group(self) -> str:
        """The stage's name in its dvc.yaml (``pretrain`` for ``pretrain@seco``, ``tune`` for
        ``tune/dvc.yaml:tune``)."""
        return stage_group(self.name)


def stage_group(name: str) -> str:
    """``tune/dvc.yaml:tune`` → ``tune``; ``pretrain@seco`` → ``pretrain``."""
    return name.rsplit(":", 1)[-1].split("@", 1)[0]


@dataclass
class DvcCall:
    """A finished ``dvc`` command: arguments, exit code, timed output and the parsed outcomes."""

    args: list[str]
    returncode: int
    seconds: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    """(seconds since the start, line) for every line of merged stdout / stderr."""
    outcomes: list[StageOutcome] = field(default_factory=list)
    attempts: int = 1

    @property
    def command(self) -> str:
        return " ".join(["dvc", *self.args])

    def tail(self, n: int = OUTPUT_TAIL_LINES) -> str:
        return "\n".join(line for _, line in self.lines[-n:])


Runner = Callable[[Sequence[str], Path], DvcCall]
"""Runs ``dvc <args>`` in a project directory (tests swap in a fake)."""


# --------------------------------------------------------------------------- plan
def read_dvc_yaml(project: Path, file: str = "dvc.yaml") -> dict[str, Any]:
    """The ``stages`` mapping of ``<project>/<file>`` (file order kept)."""
    path = project / file
    if not path.is_file():
        raise DvcPlanError(f"no dvc.yaml in {project} (project_dir must be the repository root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise DvcPlanError(f"{path} is not valid YAML: {e}") from None
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, dict) or not stages:
        raise DvcPlanError(f"{path} defines no stages")
    return stages


def pipeline_stages(project: Path) -> list[str]:
    """The pipeline's stages in dvc.yaml order, without targeted-only (``tune``) and frozen
    stages. ``pretrain`` stands for every ``pretrain@<item>`` (``dvc repro pretrain``)."""
    stages = read_dvc_yaml(project)
    return [
        name
        for name, spec in stages.items()
        if name not in TARGETED_ONLY and not (isinstance(spec, dict) and spec.get("frozen"))
    ]


def has_stage(project: Path, name: str) -> bool:
    """Whether the root dvc.yaml defines stage ``name`` (a foreach group counts)."""
    return name in read_dvc_yaml(project)


def find_stage(project: Path, name: str) -> str | None:
    """The ``dvc repro`` target of stage ``name``: ``name`` in the root dvc.yaml, else
    ``<dir>/dvc.yaml:name`` from a dvc.yaml one directory down (``tune/dvc.yaml:tune``)."""
    if has_stage(project, name):
        return name
    for path in sorted(project.glob("*/dvc.yaml")):
        file = path.relative_to(project).as_posix()
        if not file.startswith(".") and name in read_dvc_yaml(project, file):
            return f"{file}:{name}"
    return None


def check_stages(project: Path, wanted: Sequence[str]) -> list[str]:
    """``wanted`` in dvc.yaml order, after checking every one exists."""
    known = list(read_dvc_yaml(project))
    unknown = [s for s in wanted if s.split("@", 1)[0] not in known]
    if unknown:
        raise DvcPlanError(
            f"stage(s) {', '.join(unknown)} not in dvc.yaml; its stages: {', '.join(known)}"
        )
    order = {name: i for i, name in enumerate(known)}
    return sorted(dict.fromkeys(wanted), key=lambda s: order[s.split("@", 1)[0]])


def repro_args(stage: str, force: bool = False) -> list[str]:
    """``dvc repro <stage>``: runs it (every item of a foreach) only if something changed;
    ``force``: ``dvc repro --force --single-item <stage>`` runs it (and only it) regardless."""
    return ["repro", "--force", "--single-item", stage] if force else ["repro", stage]


def exp_run_args(
    targets: Sequence[str], set_params: Mapping[str, Any], name: str | None = None
) -> list[str]:
    """``dvc exp run -S key=value ... [--name N] <targets>``: one DVC experiment with the
    overrides applied to params.yaml (DVC writes them there and keeps the result in the
    workspace)."""
    args = ["exp", "run"]
    for key, value in set_params.items():
        if not key or any(c.isspace() for c in key) or "=" in key:
            raise DvcPlanError(f"bad parameter name {key!r} in set_params (use dotted keys)")
        args += ["-S", f"{key}={_param_text(value)}"]
    if name:
        args += ["--name", name]
    return [*args, *targets]


def _param_text(value: Any) -> str:
    """A value as ``dvc exp run -S`` reads it (YAML): strings as they are, the rest as YAML."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


# --------------------------------------------------------------------------- run
def dvc_executable() -> str:
    """``dvc`` next to this interpreter (the project's venv), else on PATH."""
    local = Path(sys.executable).parent / "dvc"
    if local.is_file():
        return str(local)
    found = shutil.which("dvc")
    if found is None:
        raise FileNotFoundError("dvc is not installed (pip install -e . in the project's venv)")
    return found


def run_dvc(args: Sequence[str], cwd: Path) -> DvcCall:
    """Run ``dvc <args>`` in ``cwd``; stdout and stderr merged, each line timestamped.

    The interpreter's bin directory leads PATH, so the stage commands (``s2ssl ...``) resolve
    to the same environment. Output is echoed to this process's stdout as it arrives.
    """
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": os.environ.get("DVC_NO_ANALYTICS", "1"),
    }
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    with subprocess.Popen(
        [dvc_executable(), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
            sys.stdout.write(line)
        returncode = proc.wait()
    seconds = time.monotonic() - start
    return DvcCall(list(args), returncode, seconds, lines, parse_outcomes(lines, seconds))


RUNNER: Runner = run_dvc
"""The runner the flows use (a module attribute so tests can swap it)."""


# --------------------------------------------------------------------------- parse
_RUNNING = re.compile(r"^Running stage '([^']+)':")
_UNCHANGED = re.compile(r"^Stage '([^']+)' didn't change, skipping")
_CACHED = re.compile(r"^Stage '([^']+)' is cached - skipping run")
_FAILED = re.compile(r"failed to reproduce '([^']+)'")
_EXITED = re.compile(r"exited with (-?\d+)\s*$")
_END_OF_RUN = re.compile(r"^(Updating lock file|Generating lock file|ERROR)")


def parse_outcomes(lines: Sequence[tuple[float, str]], end: float) -> list[StageOutcome]:
    """Stages of one ``dvc repro`` / ``dvc exp run`` output, in order.

    A running stage lasts from its ``Running stage`` line to the lock-file update (or error, or
    the next stage, or ``end``). A stage named in ``failed to reproduce`` is ``failed``.
    """
    out: dict[str, StageOutcome] = {}
    running: tuple[str, float] | None = None

    def close(t: float, status: Status = "ran") -> None:
        nonlocal running
        if running is not None:
            name, t0 = running
            out[name] = StageOutcome(name, status, round(max(t - t0, 0.0), 3))
            running = None

    for t, line in lines:
        text = line.strip()
        if m := _FAILED.search(text):
            close(t, "failed")
            name = m.group(1)
            previous = out.get(name)
            out[name] = StageOutcome(name, "failed", previous.seconds if previous else 0.0)
        elif m := _RUNNING.match(text):
            close(t)
            running = (m.group(1), t)
        elif m := _UNCHANGED.match(text):
            close(t)
            out.setdefault(m.group(1), StageOutcome(m.group(1), "skipped"))
        elif m := _CACHED.match(text):
            close(t)
            out[m.group(1)] = StageOutcome(m.group(1), "restored")
        elif _END_OF_RUN.match(text):
            close(t)
    close(end)
    return list(out.values())


def own_outcomes(call: DvcCall, stage: str) -> DvcCall:
    """``call`` with the upstream stages that ``dvc repro <stage>`` merely found unchanged left
    out (they were reported by their own step); anything that ran or failed stays."""
    own = stage_group(stage)
    call.outcomes = [o for o in call.outcomes if o.group == own or o.status != "skipped"]
    return call


def classify_failure(call: DvcCall) -> tuple[int | None, bool]:
    """(exit code of the failed stage command or None, transient?) of a failed dvc command.

    Transient: the stage command exited with :data:`EX_TEMPFAIL`, DVC could not take the
    workspace lock (another dvc process), or a remote command (``dvc push`` / ``pull``) hit a
    network problem. Anything else — a validation that failed (exit 1), bad params (exit 2), a
    crash, an invalid dvc.yaml — is permanent.
    """
    exit_code = None
    for _, line in call.lines:
        if _FAILED.search(line) and (m := _EXITED.search(line)):
            exit_code = int(m.group(1))
    if exit_code is not None:
        return exit_code, exit_code == EX_TEMPFAIL
    text = "\n".join(line for _, line in call.lines)
    remote = bool(call.args) and call.args[0] in REMOTE_COMMANDS
    return None, DVC_LOCK_BUSY in text or (remote and bool(_NETWORK_ERROR.search(text)))


def raise_for_failure(call: DvcCall) -> DvcCall:
    """``call`` if it succeeded, else :class:`DvcCommandError` (transient or not)."""
    if call.returncode == 0:
        return call
    exit_code, transient = classify_failure(call)
    raise DvcCommandError(call, exit_code, transient)


# --------------------------------------------------------------------------- dvc.lock
def stage_out_hashes(project: Path, stage: str, prefix: str = "data/") -> dict[str, str]:
    """``{path: md5}`` that ``dvc.lock`` records for the outputs of ``stage`` under ``prefix``
    (all its outputs when none is). Empty when the stage has never run."""
    lock = project / "dvc.lock"
    if not lock.is_file():
        return {}
    raw = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    entry = (raw.get("stages") or {}).get(stage) or {}
    outs = {
        str(o["path"]): str(o.get("md5") or o.get("etag") or o.get("checksum") or "")
        for o in entry.get("outs") or []
        if isinstance(o, dict) and "path" in o
    }
    data = {p: h for p, h in outs.items() if p.startswith(prefix)}
    return data or outs


# --------------------------------------------------------------------------- reports
def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when the file is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


_HEADLINE = re.compile(
    r"^(?P<task>[^.]+)\.in_domain\.(?P<init>[^.]+)\.(?P<protocol>[^.]+)\.f(?P<pct>\d+)"
    r"\.(?P<metric>miou|top1)$"
)


@dataclass(frozen=True)
class MetricRow:
    task: str
    init: str
    protocol: str
    labels_pct: int
    metric: str
    value: float
    gain: float | None


def key_metrics(metrics: Mapping[str, Any]) -> list[MetricRow]:
    """The headline of each task: in-domain mIoU (segmentation) or top-1 (scenes) of every init
    and protocol at the task's largest label fraction, with the gain over random init."""
    rows: list[MetricRow] = []
    for key, value in metrics.items():
        m = _HEADLINE.match(key)
        if m and isinstance(value, int | float):
            gain = metrics.get(f"{key}.gain")
            rows.append(
                MetricRow(
                    m["task"],
                    m["init"],
                    m["protocol"],
                    int(m["pct"]),
                    m["metric"],
                    float(value),
                    float(gain) if isinstance(gain, int | float) else None,
                )
            )
    largest = {}
    for r in rows:
        largest[r.task] = max(largest.get(r.task, 0), r.labels_pct)
    keep = [r for r in rows if r.labels_pct == largest[r.task]]
    return sorted(keep, key=lambda r: (r.task, r.init != "random", r.init, r.protocol))


def _cell(value: Any) -> str:
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_outcomes(calls: Sequence[tuple[str, DvcCall | None, str]]) -> str:
    """The stages table: one row per DVC stage, grouped by the flow step that ran it.

    ``calls``: (flow step, its dvc call or None when it did not run, a note)."""
    rows: list[list[Any]] = []
    for step, call, note in calls:
        if call is None:
            rows.append([step, "–", "not run", "–", "–", note])
            continue
        if not call.outcomes:
            rows.append([step, "–", "done", f"{call.seconds:.1f}", call.attempts, note])
        for o in call.outcomes:
            seconds = f"{o.seconds:.1f}" if o.status in ("ran", "failed") else "–"
            rows.append([step, f"`{o.name}`", o.status, seconds, call.attempts, note])
    return _table(["step", "DVC stage", "status", "seconds", "attempts", "note"], rows)


def render_metrics(project: Path) -> str:
    """Key metrics from ``reports/evaluate/metrics.json`` (a line saying so when absent)."""
    path = project / "reports" / "evaluate" / "metrics.json"
    metrics = read_json(path)
    if metrics is None:
        return "_No `reports/evaluate/metrics.json` yet._"
    rows = key_metrics(metrics)
    if not rows:
        return "_`reports/evaluate/metrics.json` has no in-domain headline metrics._"
    return _table(
        ["task", "init", "protocol", "labels", "metric", "test", "vs random init"],
        [
            [
                r.task,
                r.init,
                r.protocol,
                f"{r.labels_pct} %",
                r.metric,
                f"{r.value:.3f}",
                f"{r.gain:+.3f}" if r.gain is not None else "–",
            ]
            for r in rows
        ],
    )


_VERSIONS = ("candidate_version", "previous_champion_version", "champion_version")


def render_decisions(project: Path) -> str:
    """Promotion decision and reason per task from ``reports/promote/decisions.json``."""
    path = project / "reports" / "promote" / "decisions.json"
    decisions = read_json(path)
    tasks = (decisions or {}).get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        return "_No `reports/promote/decisions.json`: nothing was promoted._"
    rows = []
    for task, d in sorted(tasks.items()):
        d = d if isinstance(d, dict) else {}
        version = {k: f"v{d[k]}" if d.get(k) is not None else None for k in _VERSIONS}
        rows.append(
            [
                task,
                d.get("model"),
                version["candidate_version"],
                version["previous_champion_version"],
                version["champion_version"],
                "**promoted**" if d.get("promoted") else "kept champion",
                d.get("reason"),
            ]
        )
    return _table(
        ["task", "model", "candidate", "champion before", "champion now", "decision", "reason"],
        rows,
    )


def render_pipeline_report(
    project: Path,
    calls: Sequence[tuple[str, DvcCall | None, str]],
    *,
    state: str,
    mode: str,
    seconds: float,
    error: str | None = None,
) -> str:
    """The pipeline flow's markdown artifact."""
    ran = [o.name for _, c, _ in calls if c for o in c.outcomes if o.status == "ran"]
    skipped = [o.name for _, c, _ in calls if c for o in c.outcomes if o.status == "skipped"]
    parts = [
        f"# s2ssl pipeline: {state}",
        f"`{project}` · {mode} · {seconds:.1f} s · {len(ran)} stage(s) ran, "
        f"{len(skipped)} unchanged (skipped)",
        "## Stages",
        render_outcomes(calls),
    ]
    if error:
        parts += ["## Error", f"```\n{error.strip()[-4000:]}\n```"]
    groups = {o.group for _, c, _ in calls if c for o in c.outcomes if o.status == "ran"}

    def earlier(stage: str) -> list[str]:
        return [] if stage in groups else [f"_`{stage}` did not run in this run: earlier results._"]

    parts += [
        "## Key metrics (`reports/evaluate/metrics.json`)",
        *earlier("evaluate"),
        render_metrics(project),
        "## Promotion (`reports/promote/decisions.json`)",
        *earlier("promote"),
        render_decisions(project),
    ]
    return "\n\n".join(parts) + "\n"
