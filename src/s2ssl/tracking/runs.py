"""MLflow runs for pipeline stages: one run per stage execution, params, metrics, weights and a
Lightning logger bound to the stage's run.

Conventions:

- The tracking URI and experiments: :mod:`s2ssl.tracking.backend`.
- One run per stage execution (:func:`stage_run`) tagged with ``s2ssl.stage``, ``dvc.stage``,
  ``git.commit``, ``git.dirty`` and ``input.<name>`` content hashes
  (:func:`s2ssl.tracking.lineage.lineage_tags`).
- Secrets never reach MLflow: params whose key looks like a credential are dropped
  (:func:`s2ssl.tracking.flatten.flatten_params`) and environment variables are never logged.

mlflow, torch and lightning are imported inside the functions that use them: importing this
module costs only the standard library.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import tempfile
from argparse import Namespace
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from s2ssl.tracking.backend import get_or_create_experiment, tracking_uri
from s2ssl.tracking.flatten import (
    MAX_KEY_LENGTH,
    MAX_TAG_VAL_LENGTH,
    METRICS_PER_BATCH,
    PARAMS_PER_BATCH,
    flatten_params,
    is_secret,
    sanitize_key,
    truncate,
)
from s2ssl.tracking.lineage import LINEAGE_KEYS, lineage_tags

if TYPE_CHECKING:
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow import MlflowClient
    from mlflow.entities import Run

_LOG = logging.getLogger(__name__)

_RUN_HINT: Final[str] = "call it inside `with stage_run(...)`"
_MAX_NESTING: Final[int] = 64


@dataclass(frozen=True)
class RunHandle:
    """The MLflow run of one stage execution, as yielded by :func:`stage_run`."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    artifact_uri: str


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
        clean = sanitize_key(str(key))
        if clean in LINEAGE_KEYS or clean.startswith("input."):
            raise ValueError(f"tag {key!r} is set by lineage_tags(); choose another tag name")
        if not clean or is_secret(clean):
            continue
        all_tags[clean] = truncate(str(value), MAX_TAG_VAL_LENGTH)
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
        clean_key, clean_value = sanitize_key(str(key)), str(value).replace("'", "\\'")
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
        name = sanitize_key(str(key))
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
