"""What the flows know about DVC — plain Python, no Prefect, no torch.

- :func:`pipeline_stages` reads the stage order from ``dvc.yaml`` (so stages added there, such as
  ``register`` / ``promote``, join the pipeline flow without a code change).
- :func:`run_dvc` runs one ``dvc`` command in the project, streaming its output with a timestamp
  per line; :func:`parse_outcomes` turns that output into which stages ran, were skipped
  (unchanged) or restored from the run cache, with durations. DVC alone decides what is up to
  date; the flows only report it. ``dvc repro`` and ``dvc exp run`` print no machine-readable
  report (in DVC 3 only ``status``, ``metrics show``, ``params diff`` and ``exp show`` take
  ``--json``), so their log lines are what is parsed.
- :func:`classify_failure` makes "transient" concrete: a stage command that exited with
  ``EX_TEMPFAIL`` (75, what ``s2ssl fetch`` returns for network / rate-limit failures), a DVC
  workspace lock held by another process, or a network error of ``dvc push`` / ``pull``.
  Everything else (a failed validation, a code error, bad params) is permanent, never retried.
- :func:`stage_out_hashes` reads the hashes DVC recorded in ``dvc.lock`` for a stage's outputs
  (the ingest flow compares them before / after).

The markdown of the runs' Prefect artifacts lives in :mod:`flows._markdown`.
"""

from __future__ import annotations

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

TARGETED_ONLY: Final[frozenset[str]] = frozenset({"tune", "calibrate"})
"""Stages that never run in the pipeline flow, only when named (the sweep flow). The sweep's
``tune`` lives in ``tune/dvc.yaml`` (``calibrate`` in ``calibrate/dvc.yaml``) so that a plain
``dvc repro`` skips it; should one ever sit in the root dvc.yaml, the pipeline flow still leaves
it out."""

GPU_STAGES: Final[frozenset[str]] = frozenset(
    {"pretrain", "pretrain_cscl", "finetune", "tune", "calibrate"}
)
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
