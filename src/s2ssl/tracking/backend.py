"""The MLflow backend of the pipeline's runs: the tracking URI, the sqlite database path, the
artifact root and experiments of a local (sqlite) store.

- Tracking URI from the argument, else ``MLFLOW_TRACKING_URI`` (:mod:`s2ssl.settings`), default
  ``sqlite:///mlruns/mlflow.db``. A relative sqlite path is made absolute against the working
  directory, so every process of a stage (Lightning workers, subprocesses) writes to one DB.
  MLflow 3 refuses the plain ``./mlruns`` file store, so ``file:`` URIs and bare paths are rejected.
- Artifacts of a local (sqlite) store go to ``<db dir>/artifacts/<experiment>``; a tracking
  server decides its own artifact root.

mlflow is imported inside the functions that use it: importing this module costs only the
standard library.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from s2ssl.settings import get_settings

DEFAULT_TRACKING_URI: Final[str] = "sqlite:///mlruns/mlflow.db"
"""The project's default tracking URI (the sqlite backend under ``mlruns/``)."""

_FILE_STORE_HINT: Final[str] = (
    "MLflow 3 refuses the plain file store (its ./mlruns directory backend is in maintenance "
    "mode); use a sqlite URI such as MLFLOW_TRACKING_URI=sqlite:///mlruns/mlflow.db (the project "
    "default) or an http(s):// tracking server"
)


def sqlite_path(uri: str) -> tuple[Path, str] | None:
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
    sqlite = sqlite_path(uri)
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
    sqlite = sqlite_path(resolved)
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
