"""MLflow runs for pipeline stages: URI and experiment set-up, lineage tags, params, metrics,
weights and a Lightning logger bound to the stage's run.

Conventions:

- Tracking URI from the argument, else ``MLFLOW_TRACKING_URI`` (:mod:`s2ssl.settings`), default
  ``sqlite:///mlruns/mlflow.db``. A relative sqlite path is made absolute against the working
  directory, so every process of a stage (Lightning workers, subprocesses) writes to one DB.
  MLflow 3 refuses the plain ``./mlruns`` file store, so ``file:`` URIs and bare paths are rejected.
- Artifacts of a local (sqlite) store go to ``<db dir>/artifacts/<experiment>``; a tracking
  server decides its own artifact root.
- One run per stage execution (:func:`stage_run`) tagged with ``s2ssl.stage``, ``dvc.stage``,
  ``git.commit``, ``git.dirty`` and ``input.<name>`` content hashes (:func:`lineage_tags`).
- Secrets never reach MLflow: params whose key looks like a credential are dropped
  (:func:`flatten_params`) and environment variables are never logged.

mlflow, torch and lightning are imported inside the functions that use them: importing this
module costs only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import re
import subprocess
import tempfile
from argparse import Namespace
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from s2ssl.settings import get_settings

if TYPE_CHECKING:
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow import MlflowClient
    from mlflow.entities import Run

_LOG = logging.getLogger(__name__)

DEFAULT_TRACKING_URI: Final[str] = "sqlite:///mlruns/mlflow.db"
"""The project's default tracking URI (the sqlite backend under ``mlruns/``)."""

MAX_PARAM_VAL_LENGTH: Final[int] = 6000
"""MLflow 3's limit on a param value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``)."""

MAX_TAG_VAL_LENGTH: Final[int] = 8000
"""MLflow 3's limit on a run tag value (``mlflow.utils.validation.MAX_TAG_VAL_LENGTH``)."""

MAX_KEY_LENGTH: Final[int] = 250
"""MLflow 3's limit on a param / metric / tag key (``MAX_ENTITY_KEY_LENGTH``)."""

PARAMS_PER_BATCH: Final[int] = 100
"""MLflow's limit on params per ``log_params`` / ``log_batch`` call."""

METRICS_PER_BATCH: Final[int] = 1000
"""MLflow's limit on metrics per ``log_metrics`` / ``log_batch`` call."""

SECRET_MARKERS: Final[tuple[str, ...]] = ("secret", "password", "token", "client_id")
"""A param or tag whose key contains one of these (case-insensitive) is never logged."""

STORE_FILES: Final[tuple[str, str]] = ("meta.json", "index.parquet")
"""A directory holding both is a dataset store (``s2ssl.data.store``): they name every shard."""

MANIFEST_FILE: Final[str] = "manifest.json"
"""A directory holding it is a validated dataset (``s2ssl.data.validated``)."""

LINEAGE_KEYS: Final[tuple[str, ...]] = ("s2ssl.stage", "dvc.stage", "git.commit", "git.dirty")
"""Tags set by :func:`lineage_tags` (plus ``input.<name>``); extra tags may not override them."""

_FILE_STORE_HINT: Final[str] = (
    "MLflow 3 refuses the plain file store (its ./mlruns directory backend is in maintenance "
    "mode); use a sqlite URI such as MLFLOW_TRACKING_URI=sqlite:///mlruns/mlflow.db (the project "
    "default) or an http(s):// tracking server"
)
_RUN_HINT: Final[str] = "call it inside `with stage_run(...)`"
_BAD_KEY_CHARS: Final[re.Pattern[str]] = re.compile(r"[^A-Za-z0-9_\-. /]")
_ATOMIC_LEFTOVER: Final[re.Pattern[str]] = re.compile(
    r"^\..+\.(tmp(-[0-9a-f]{32})?|old-[0-9a-f]{32})$"
)
"""Hidden temporary siblings of an atomic write (``s2ssl.io``); never part of an input's hash."""
_GIT_TIMEOUT_S: Final[float] = 30.0
_MAX_NESTING: Final[int] = 64


@dataclass(frozen=True)
class RunHandle:
    """The MLflow run of one stage execution, as yielded by :func:`stage_run`."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    artifact_uri: str


# --------------------------------------------------------------------------- URIs, experiments


def _sqlite_path(uri: str) -> tuple[Path, str] | None:
    """``(absolute db path, '?query' or '')`` of a sqlite URI; ``None`` for any other scheme."""
    if not uri.lower().startswith("sqlite:"):
        return None
    prefix = "sqlite:///"
    if not uri.lower().startswith(prefix):
        raise ValueError(
            f"unsupported sqlite tracking URI {uri!r}: write it as sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db (e.g. sqlite:///mlruns/mlflow.db)"
        )
    rest = uri[len(prefix) :]
    path_part, sep, query = rest.partition("?")
    if path_part in ("", ":memory:"):
        raise ValueError(
            f"in-memory sqlite tracking URI {uri!r} is not supported (runs would vanish with the "
            "process); use a file such as sqlite:///mlruns/mlflow.db"
        )
    return Path(os.path.abspath(path_part)), sep + query


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri`` if given, else ``MLFLOW_TRACKING_URI`` (settings).

    A sqlite URI is returned with an absolute path (a relative one is resolved against the
    current working directory) and the database's directory is created. ``http(s)://`` and other
    server / database URIs pass through unchanged. ``file:`` URIs and bare paths raise
    :class:`ValueError` (MLflow 3 refuses the file store).
    """
    if uri is None:
        uri = get_settings().mlflow_tracking_uri.strip() or DEFAULT_TRACKING_URI
    if not isinstance(uri, str):
        raise TypeError(f"tracking URI must be a str, got {type(uri).__name__}")
    uri = uri.strip()
    if not uri:
        raise ValueError(
            f"empty tracking URI; pass one or set MLFLOW_TRACKING_URI, e.g. {DEFAULT_TRACKING_URI}"
        )
    lowered = uri.lower()
    if lowered.startswith("file:"):
        raise ValueError(f"tracking URI {uri!r} is a file store: {_FILE_STORE_HINT}")
    if "://" not in uri and not lowered.startswith(("databricks", "sqlite:")):
        raise ValueError(
            f"tracking URI {uri!r} looks like a directory path (a file store): {_FILE_STORE_HINT}"
        )
    sqlite = _sqlite_path(uri)
    if sqlite is None:
        return uri
    path, query = sqlite
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot create the directory {path.parent} for the MLflow database of {uri!r} ({e}); "
            "choose a writable location with MLFLOW_TRACKING_URI"
        ) from None
    return f"sqlite:///{path.as_posix()}{query}"


def artifact_root(uri: str) -> str:
    """Where artifacts of experiments created by s2ssl go for the tracking URI ``uri``.

    For a sqlite URI: ``file://<absolute dir of the db>/artifacts`` (i.e. ``mlruns/artifacts``).
    For a server (or any non-sqlite) URI: ``""``, meaning the server decides.
    """
    resolved = tracking_uri(uri)
    sqlite = _sqlite_path(resolved)
    if sqlite is None:
        return ""
    return (sqlite[0].parent / "artifacts").as_uri()


def _dir_name(name: str) -> str:
    """A file-system-safe directory name for the experiment ``name``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "experiment"


def get_or_create_experiment(name: str, uri: str | None = None) -> str:
    """The id of the experiment ``name``, created if missing (idempotent, race-safe).

    A new experiment of a local (sqlite) store gets ``artifact_location`` =
    ``<artifact_root>/<name>`` (``name`` made file-system safe); an existing one keeps its own.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"experiment name must be a non-empty str, got {name!r}")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = artifact_root(uri)
        location = f"{root}/{_dir_name(name)}" if root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as e:  # created concurrently by another process
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise ValueError(
            f"MLflow experiment {name!r} (id {experiment.experiment_id}) is deleted; restore it "
            f"(`mlflow experiments restore --experiment-id {experiment.experiment_id}` with "
            f"MLFLOW_TRACKING_URI={uri}) or purge it (`mlflow gc`) before running again"
        )
    return experiment.experiment_id


# --------------------------------------------------------------------------- lineage


def _git(repo: Path, *args: str) -> str | None:
    """Stripped stdout of ``git <args>`` in ``repo``; ``None`` if git is missing or fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _hash_dir(path: Path) -> str:
    """Content hash of a directory (see :func:`hash_input`)."""
    if all((path / name).is_file() for name in STORE_FILES):
        # Same value as s2ssl.data.validated.fingerprint(), so it can be compared with a
        # validated dataset's manifest["raw_fingerprint"].
        h = hashlib.sha256()
        for name in STORE_FILES:
            h.update((path / name).read_bytes())
        return h.hexdigest()
    only_files = (path / MANIFEST_FILE).is_file()  # a validated dataset: small top-level files
    h = hashlib.sha256()
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if _ATOMIC_LEFTOVER.match(entry.name):
            continue
        if entry.is_file():
            h.update(f"{entry.name}\0{_sha256_file(entry)}\n".encode())
        elif entry.is_dir() and not only_files:
            h.update(f"{entry.name}/\0{_hash_dir(entry)}\n".encode())
    return h.hexdigest()


def hash_input(path: str | Path) -> str:
    """SHA-256 content hash (hex) of a stage input.

    - a file: sha256 of its bytes;
    - a dataset store (a directory with ``meta.json`` and ``index.parquet``): sha256 of those two
      files only, which name every shard (equal to ``s2ssl.data.validated.fingerprint``);
    - a validated dataset (a directory with ``manifest.json``): its top-level files only (all
      small; the manifest holds the raw store's fingerprint);
    - any other directory: sha256 over ``(name, hash)`` of its entries sorted by name, recursing
      into sub-directories (stores inside are hashed as above); hidden leftovers of atomic
      writes (``.<name>.tmp-*`` / ``.<name>.old-*``) are ignored.
    """
    p = Path(path)
    if p.is_file():
        return _sha256_file(p)
    if p.is_dir():
        return _hash_dir(p)
    if not p.exists():
        raise ValueError(f"input {str(p)!r} does not exist; run the stage that produces it first")
    raise ValueError(f"input {str(p)!r} is neither a file nor a directory")


def lineage_tags(
    stage: str,
    inputs: Mapping[str, str | Path] | None = None,
    repo: Path | None = None,
) -> dict[str, str]:
    """Run tags tying a run to its code and data.

    ``s2ssl.stage`` and ``dvc.stage`` (= ``stage``), ``git.commit`` (``git rev-parse HEAD`` in
    ``repo`` or the working directory; ``"unknown"`` outside a git repository or without git),
    ``git.dirty`` (``"true"`` / ``"false"``: tracked files modified, untracked files ignored;
    ``"unknown"`` outside git) and ``input.<name>`` = :func:`hash_input` of each input. Relative
    input paths are taken relative to ``repo`` when given, else to the working directory.
    """
    if not isinstance(stage, str) or not stage.strip():
        raise ValueError(f"stage must be a non-empty str (the DVC stage name), got {stage!r}")
    if repo is not None and not Path(repo).is_dir():
        raise ValueError(f"repo {str(repo)!r} is not a directory; pass the repository root")
    root = Path(repo) if repo is not None else Path.cwd()
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty = "unknown" if status is None else ("true" if status else "false")
    tags = {
        "s2ssl.stage": stage,
        "dvc.stage": stage,
        "git.commit": commit or "unknown",
        "git.dirty": dirty,
    }
    for name, path in (inputs or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"input names must be non-empty str, got {name!r}")
        p = Path(path)
        if not p.is_absolute():
            p = root / p
        if not p.exists():
            raise ValueError(
                f"input {name!r} ({str(path)!r}) does not exist; run the stage that produces it "
                "first (e.g. `dvc repro`)"
            )
        tags[f"input.{_sanitize_key(name)}"] = hash_input(p)
    return tags


# --------------------------------------------------------------------------- params


def _sanitize_key(key: str) -> str:
    """An MLflow-valid key: characters outside ``[A-Za-z0-9_-. /]`` become ``_``, empty / ``.`` /
    ``..`` path segments are dropped or replaced (MLflow refuses keys that are not normal paths).
    """
    cleaned = _BAD_KEY_CHARS.sub("_", key)
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    return "/".join("__" if p == ".." else p for p in parts)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _flatten_into(out: dict[str, str], origin: dict[str, str], value: Any, key: str) -> None:
    if key and _is_secret(key):
        return
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return
    if hasattr(value, "model_dump") and callable(value.model_dump):  # a pydantic model
        value = value.model_dump()
    if isinstance(value, Mapping):
        if not value and key:
            _put(out, origin, key, "{}")
        for k, v in value.items():
            _flatten_into(out, origin, v, f"{key}.{k}" if key else str(k))
        return
    if isinstance(value, list | tuple):
        if not value:
            _put(out, origin, key, "[]")
        for i, v in enumerate(value):
            _flatten_into(out, origin, v, f"{key}.{i}")
        return
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = value.as_posix()
    _put(out, origin, key, _truncate(str(value), MAX_PARAM_VAL_LENGTH))


def _put(out: dict[str, str], origin: dict[str, str], key: str, value: str) -> None:
    clean = _sanitize_key(key)
    if not clean:
        raise ValueError(f"param key {key!r} is empty after removing invalid characters")
    if len(clean) > MAX_KEY_LENGTH:
        raise ValueError(
            f"param key {clean[:60]!r}... is {len(clean)} characters; MLflow allows "
            f"{MAX_KEY_LENGTH}: shorten the config keys or log that section as an artifact"
        )
    if clean in out:
        raise ValueError(
            f"params {origin[clean]!r} and {key!r} both flatten to the MLflow key {clean!r}; "
            "rename one of them"
        )
    out[clean] = value
    origin[clean] = key


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested params to dotted MLflow param keys with string values.

    ``{"pretrain": {"seco": {"lr": 0.03}}}`` → ``{"pretrain.seco.lr": "0.03"}``; list items get
    their index (``"milestones.0"``); empty containers stay as ``"{}"`` / ``"[]"``; pydantic
    models are dumped first. Values longer than MLflow's limit (6000 characters) are truncated
    with ``...``. Keys containing ``secret``, ``password``, ``token`` or ``client_id``
    (case-insensitive, anywhere in the dotted key) and pydantic secret values are dropped.
    Characters MLflow refuses in keys become ``_``.
    """
    if not isinstance(params, Mapping):
        hint = " (call .model_dump() on a pydantic model)" if hasattr(params, "model_dump") else ""
        raise TypeError(f"params must be a mapping, got {type(params).__name__}{hint}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    out: dict[str, str] = {}
    _flatten_into(out, {}, params, prefix.strip("."))
    return out


# --------------------------------------------------------------------------- runs


def _descends_from(client: MlflowClient, run: Run, ancestor_id: str) -> bool:
    """Whether ``run`` descends from the run ``ancestor_id`` (via ``mlflow.parentRunId`` tags)."""
    parent = run.data.tags.get("mlflow.parentRunId")
    for _ in range(_MAX_NESTING):
        if parent is None:
            return False
        if parent == ancestor_id:
            return True
        parent = client.get_run(parent).data.tags.get("mlflow.parentRunId")
    return False


def _end_own_run(run_id: str, status: str) -> None:
    """End the run ``run_id`` with ``status``, first ending any child runs the body left open."""
    import mlflow

    client = mlflow.MlflowClient()
    for _ in range(_MAX_NESTING):
        active = mlflow.active_run()
        if active is None:
            return
        if active.info.run_id == run_id:
            mlflow.end_run(status=status)
            return
        if not _descends_from(client, active, run_id):
            return  # ours was already ended by the body; leave the outer runs alone
        _LOG.warning(
            "ending MLflow run %s left open inside stage run %s", active.info.run_id, run_id
        )
        mlflow.end_run(status=status)


def _is_clean_exit(error: BaseException) -> bool:
    """``sys.exit(0)`` / ``typer.Exit()``: leaving a command early with success."""
    if isinstance(error, SystemExit):
        return error.code in (None, 0)
    return getattr(error, "exit_code", None) == 0  # click / typer Exit(0)


@contextmanager
def stage_run(
    experiment: str,
    run_name: str,
    *,
    stage: str,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | Path] | None = None,
    tags: Mapping[str, str] | None = None,
    uri: str | None = None,
    nested: bool = False,
) -> Iterator[RunHandle]:
    """One MLflow run for one stage execution.

    Sets the process's tracking URI (MLflow also exports it as ``MLFLOW_TRACKING_URI`` to child
    processes), gets or creates ``experiment``, starts the run with :func:`lineage_tags` for
    ``stage`` and ``inputs`` plus ``tags``, logs :func:`flatten_params` of ``params`` and yields a
    :class:`RunHandle`. The run ends ``FINISHED`` (also on ``sys.exit(0)`` / ``typer.Exit()``),
    ``FAILED`` if the body raised (the exception propagates), or ``KILLED`` on
    :class:`KeyboardInterrupt`; child runs the body left open are ended with it. With
    ``nested=True`` inside another run the new run is its child (tag ``mlflow.parentRunId``).

    Inputs and params are checked before the run is created, so a missing input leaves no run.
    """
    for label, value in (("experiment", experiment), ("run_name", run_name)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label} must be a non-empty str, got {value!r}")
    uri = tracking_uri(uri)
    all_tags = lineage_tags(stage, inputs)
    for key, value in (tags or {}).items():
        clean = _sanitize_key(str(key))
        if clean in LINEAGE_KEYS or clean.startswith("input."):
            raise ValueError(f"tag {key!r} is set by lineage_tags(); choose another tag name")
        if not clean or _is_secret(clean):
            continue
        all_tags[clean] = _truncate(str(value), MAX_TAG_VAL_LENGTH)
    flat = flatten_params(params or {})

    import mlflow

    active = mlflow.active_run()
    if active is not None and not nested:
        raise ValueError(
            f"an MLflow run ({active.info.run_id}) is already active; pass nested=True for a child "
            "run or end it first"
        )
    if active is not None and mlflow.get_tracking_uri() != uri:
        raise ValueError(
            f"the parent run uses tracking URI {mlflow.get_tracking_uri()!r}, this run {uri!r}; "
            "a nested run must use the same tracking URI"
        )
    mlflow.set_tracking_uri(uri)
    experiment_id = get_or_create_experiment(experiment, uri)
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, nested=nested, tags=all_tags
    )
    run_id = run.info.run_id
    handle = RunHandle(
        run_id=run_id,
        experiment_id=experiment_id,
        tracking_uri=uri,
        artifact_uri=run.info.artifact_uri,
    )
    status = "FINISHED"
    try:
        items = list(flat.items())
        for i in range(0, len(items), PARAMS_PER_BATCH):
            mlflow.log_params(dict(items[i : i + PARAMS_PER_BATCH]))
        yield handle
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as e:
        status = "FINISHED" if _is_clean_exit(e) else "FAILED"
        raise
    finally:
        try:
            _end_own_run(run_id, status)
        except Exception:
            if status == "FINISHED":
                raise
            _LOG.warning("could not end MLflow run %s as %s", run_id, status, exc_info=True)


def end_stale_runs(
    experiment: str,
    tags: Mapping[str, str],
    *,
    status: str = "KILLED",
    uri: str | None = None,
) -> list[str]:
    """End the runs of ``experiment`` still marked ``RUNNING`` that carry all ``tags``.

    For runs whose process died without ending them (a SIGKILL, a power cut): call it only when
    no live process can own such a run (e.g. while holding the lock of the work they tracked).
    Their nested runs still ``RUNNING`` are ended too. Returns the ids of the runs ended (none if
    the experiment does not exist).
    """
    if status not in ("KILLED", "FAILED", "FINISHED"):
        raise ValueError(f"status must be KILLED, FAILED or FINISHED, got {status!r}")
    from mlflow import MlflowClient

    uri = tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    conditions = ["attributes.status = 'RUNNING'"]
    for key, value in tags.items():
        clean_key, clean_value = _sanitize_key(str(key)), str(value).replace("'", "\\'")
        conditions.append(f"tags.`{clean_key}` = '{clean_value}'")
    ended: list[str] = []
    stale = client.search_runs([found.experiment_id], " and ".join(conditions))
    for run in stale:
        children = client.search_runs(
            [found.experiment_id],
            f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run.info.run_id}'",
        )
        for child in children:
            client.set_terminated(child.info.run_id, status=status)
            ended.append(child.info.run_id)
        client.set_terminated(run.info.run_id, status=status)
        ended.append(run.info.run_id)
    return ended


def _require_active_run() -> str:
    import mlflow

    active = mlflow.active_run()
    if active is None:
        raise ValueError(f"no active MLflow run; {_RUN_HINT}")
    return active.info.run_id


def _as_finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (non-numeric, NaN, ±inf, multi-element arrays)."""
    if isinstance(value, str | bytes):
        return None
    if not isinstance(value, numbers.Real):  # a one-element tensor / array counts as a number
        numel = getattr(value, "numel", None)
        count = numel() if callable(numel) else getattr(value, "size", None)
        item = getattr(value, "item", None)
        if count != 1 or not callable(item):
            return None
        try:
            value = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        if not isinstance(value, numbers.Real):
            return None
    result = float(value)
    return result if math.isfinite(result) else None


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log the finite numeric values of ``metrics`` into the active run.

    NaN / ±inf and non-numeric values are skipped (one-element tensors and numpy scalars are
    numbers); keys are sanitised (characters outside ``[A-Za-z0-9_-. /]`` become ``_``).
    """
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"metrics must be a mapping of name -> number, got {type(metrics).__name__}"
        )
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"step must be an int or None, got {step!r}")
    import mlflow

    _require_active_run()
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        number = _as_finite_float(value)
        if number is None:
            _LOG.debug("skipping metric %r: %r is not a finite number", key, value)
            continue
        name = _sanitize_key(str(key))
        if not name:
            raise ValueError(f"metric name {key!r} is empty after removing invalid characters")
        clean[name[:MAX_KEY_LENGTH]] = number
    items = list(clean.items())
    for i in range(0, len(items), METRICS_PER_BATCH):
        mlflow.log_metrics(dict(items[i : i + METRICS_PER_BATCH]), step=step)


def _check_relative(label: str, value: str, *, single: bool) -> str:
    if not isinstance(value, str) or not value.strip("/"):
        raise ValueError(f"{label} must be a non-empty relative path, got {value!r}")
    parts = value.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or (single and len(parts) > 1):
        what = "a plain file name" if single else "a relative path without '.' / '..'"
        raise ValueError(f"{label} must be {what}, got {value!r}")
    return "/".join(parts)


def log_state_dict(
    state_dict: Mapping[str, Any],
    artifact_path: str,
    filename: str = "weights.pt",
    extra_files: Mapping[str, Any] | None = None,
) -> str:
    """Save a plain ``state_dict`` (``torch.save``) and log it under ``artifact_path``.

    Top-level tensors are detached and moved to the CPU. The file is checked to load with
    ``torch.load(..., weights_only=True)`` (how weights are read back) before it is logged.
    ``extra_files`` maps file names to JSON-serialisable objects written beside the weights
    (e.g. ``{"config.json": {...}}``). Returns the artifact URI of ``artifact_path``.
    """
    if not isinstance(state_dict, Mapping):
        hint = " (pass model.state_dict())" if hasattr(state_dict, "state_dict") else ""
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}{hint}")
    artifact_path = _check_relative("artifact_path", artifact_path, single=False)
    filename = _check_relative("filename", filename, single=True)
    extras = dict(extra_files or {})
    for name in extras:
        _check_relative("extra_files name", name, single=True)
        if name == filename:
            raise ValueError(f"extra file {name!r} would overwrite the weights file")
    import mlflow
    import torch

    _require_active_run()
    plain = {
        key: value.detach().cpu() if isinstance(value, torch.Tensor) else value
        for key, value in state_dict.items()
    }
    with tempfile.TemporaryDirectory(prefix="s2ssl-weights-") as tmp:
        target = Path(tmp) / filename
        torch.save(plain, target)
        try:
            torch.load(target, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:
            raise TypeError(
                "state_dict holds objects torch.load(weights_only=True) refuses; keep it to "
                f"tensors and plain Python values ({e})"
            ) from None
        for name, obj in extras.items():
            try:
                text = json.dumps(obj, indent=2, sort_keys=True)
            except (TypeError, ValueError) as e:
                raise TypeError(f"extra file {name!r} is not JSON-serialisable ({e})") from None
            (Path(tmp) / name).write_text(text + "\n", encoding="utf-8")
        mlflow.log_artifacts(tmp, artifact_path=artifact_path)
    return mlflow.get_artifact_uri(artifact_path)


# --------------------------------------------------------------------------- Lightning


@cache
def _stage_logger_class() -> type[MLFlowLogger]:
    """A Lightning ``MLFlowLogger`` that leaves the run's lifecycle to :func:`stage_run`."""
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.utilities import rank_zero_only

    class StageMLFlowLogger(MLFlowLogger):
        """Logs into an existing stage run; never ends it; hyperparameters via flatten_params."""

        @rank_zero_only
        def log_hyperparams(self, params: Mapping[str, Any] | Namespace | None) -> None:
            """Log hyperparameters flattened, secret-free, in batches of 100."""
            if params is None:
                return
            if isinstance(params, Namespace):
                params = vars(params)
            from mlflow.entities import Param

            items = [Param(k, v) for k, v in flatten_params(params).items()]
            for i in range(0, len(items), PARAMS_PER_BATCH):
                self.experiment.log_batch(
                    run_id=self.run_id, params=items[i : i + PARAMS_PER_BATCH]
                )

        @rank_zero_only
        def finalize(self, status: str = "success") -> None:
            """Leave the run open: :func:`stage_run` ends it with the stage's real status."""
            _LOG.debug("Lightning finished (%s); the stage run stays open", status)

    return StageMLFlowLogger


def lightning_logger(run: RunHandle) -> MLFlowLogger:
    """A Lightning ``MLFlowLogger`` writing into the run of ``run`` (no new run is created).

    Model checkpoints are not logged by it (``log_model=False``): give ``ModelCheckpoint`` a
    ``dirpath`` (or the Trainer a ``default_root_dir``), otherwise Lightning writes them under
    ``./<experiment id>/<run id>/checkpoints`` of the working directory; log final weights with
    :func:`log_state_dict`. Lightning's ``finalize`` does not end the run: the enclosing
    :func:`stage_run` does.
    """
    if not isinstance(run, RunHandle):
        raise TypeError(f"run must be the RunHandle yielded by stage_run, got {type(run).__name__}")
    logger_class = _stage_logger_class()
    return logger_class(tracking_uri=run.tracking_uri, run_id=run.run_id, log_model=False)
