"""What the registry modules share: alias and tag names, the MLflow client, a model's versions,
the per-model lock and the process-wide registry URI."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from s2ssl.io import file_lock
from s2ssl.tracking.backend import sqlite_path

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION: Final[str] = "champion"
CHALLENGER: Final[str] = "challenger"

TAG_HASH: Final[str] = "s2ssl.model_hash"
TAG_TASK: Final[str] = "s2ssl.task"
TAG_TEST_SET: Final[str] = "s2ssl.test_set"
TAG_INIT: Final[str] = "s2ssl.init"
TAG_DECISION: Final[str] = "s2ssl.promotion.decision"
TAG_REASON: Final[str] = "s2ssl.promotion.reason"
TAG_AGAINST: Final[str] = "s2ssl.promotion.champion_version"
TAG_DECIDED_AT: Final[str] = "s2ssl.promotion.decided_at"
TAG_TEST_SAMPLES: Final[str] = "s2ssl.test_samples"
"""Version tag: the artifact URI of the version's per-test-sample confusion matrices."""
METRIC_TAG_PREFIX: Final[str] = "metric."


@contextmanager
def registry_lock(uri: str, name: str) -> Iterator[None]:
    """Serialise registration / promotion of ``name``: an exclusive ``flock`` on a lock file next
    to a sqlite store (so all processes on this file system), else in the temp directory."""
    sqlite = sqlite_path(uri)
    if sqlite is not None:
        directory = sqlite[0].parent
    else:
        directory = Path(tempfile.gettempdir()) / "s2ssl-registry-locks"
    key = hashlib.sha256(f"{uri}\0{name}".encode()).hexdigest()[:16]
    with file_lock(directory / f".registry-{key}.lock"):
        yield


def registry_client(uri: str) -> MlflowClient:
    """An MLflow client whose tracking and registry URIs are both ``uri``."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def model_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of the registered model ``name``, oldest first (none if it does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    found: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return sorted(found, key=lambda v: int(v.version))


def by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version of ``name`` that ``alias`` points to, or ``None``."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


MLFLOW_LOGGERS: Final[tuple[str, ...]] = ("mlflow", "alembic", "urllib3")
"""Loggers quietened to warnings while MLflow logs or downloads (store migrations, retries)."""


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's chatter while logging or downloading: the artifact progress bars
    (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, read at each transfer), its info-level log lines,
    and advice that does not apply here (type hints on ``predict``: the tensor signature is
    explicit). Warnings and errors still show; s2ssl's own progress (rich) is untouched."""
    import logging
    import os
    import warnings

    old = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    loggers = [logging.getLogger(name) for name in MLFLOW_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if old is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = old


def download_quietly(artifact_uri: str, dst: str | Path, uri: str) -> Path:
    """Download ``artifact_uri`` (``models:/``, ``runs:/``, an artifact URI) into ``dst`` from
    the store at ``uri`` (tracking and registry) without MLflow's progress bars or log lines
    (:func:`quiet_mlflow`); returns the local path.

    Raises:
        mlflow.exceptions.MlflowException: MLflow's error (callers turn it into an actionable
            ``ValueError``).
    """
    import mlflow

    with quiet_mlflow(), registry_uri(uri):
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(dst), tracking_uri=uri, registry_uri=uri
            )
        )


@contextmanager
def registry_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide registry URI at ``uri`` for the block, then restore it (and
    the ``MLFLOW_REGISTRY_URI`` variable it exports), so later calls with another tracking URI
    do not register into this store."""
    import os

    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils

    saved = getattr(registry_utils, "_registry_uri", None)
    saved_env = os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        registry_utils._registry_uri = saved
        if saved_env is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)
        else:
            os.environ["MLFLOW_REGISTRY_URI"] = saved_env


_USERINFO: Final[re.Pattern[str]] = re.compile(r"//[^/@\s]+@")


def safe_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` removed (for messages)."""
    return _USERINFO.sub("//***@", uri)
