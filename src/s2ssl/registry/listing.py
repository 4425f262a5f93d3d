"""Listing and loading registered models: what ``s2ssl models`` shows, and ``models:/`` /
``runs:/`` URIs resolved to the fine-tuned model directory for ``s2ssl predict``."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from s2ssl.registry.promotion import headline_metric, version_record
from s2ssl.registry.registration import META_FILE
from s2ssl.registry.versions import (
    TAG_DECISION,
    TAG_HASH,
    TAG_INIT,
    TAG_REASON,
    download_quietly,
    model_versions,
    registry_client,
    safe_uri,
)
from s2ssl.tracking.backend import tracking_uri


@dataclass(frozen=True)
class VersionSummary:
    """One row of ``s2ssl models``."""

    model: str
    version: str
    aliases: tuple[str, ...]
    created: str
    init: str
    metric: str
    value: float | None
    decision: str
    reason: str
    model_hash: str
    tags: Mapping[str, str] = field(default_factory=dict)


def list_models(prefix: str = "s2ssl", uri: str | None = None) -> list[VersionSummary]:
    """Every version of the registered models named ``<prefix>-*``, newest last per model."""
    uri = tracking_uri(uri)
    client = registry_client(uri)
    rows: list[VersionSummary] = []
    names = sorted(
        m.name for m in client.search_registered_models() if m.name.startswith(f"{prefix}-")
    )
    for name in names:
        model = client.get_registered_model(name)
        by_version: dict[str, list[str]] = {}
        for alias, v in (model.aliases or {}).items():
            by_version.setdefault(str(v), []).append(alias)
        task = name[len(prefix) + 1 :]
        metric = headline_metric(task)
        for v in model_versions(client, name):
            rec = version_record(task, v)
            created = dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC)
            rows.append(
                VersionSummary(
                    model=name,
                    version=str(v.version),
                    aliases=tuple(sorted(by_version.get(str(v.version), []))),
                    created=created.strftime("%Y-%m-%d %H:%M"),
                    init=v.tags.get(TAG_INIT, "?"),
                    metric=metric,
                    value=rec.metrics.get(metric),
                    decision=v.tags.get(TAG_DECISION, ""),
                    reason=v.tags.get(TAG_REASON, ""),
                    model_hash=v.tags.get(TAG_HASH, ""),
                    tags=dict(v.tags),
                )
            )
    return rows


def download_model(model_uri: str, dst: str | Path, uri: str | None = None) -> Path:
    """Download a registered (``models:/NAME@alias``, ``models:/NAME/3``) or logged (``runs:/``)
    s2ssl model and return the fine-tuned model directory inside it. The download is quiet
    (no MLflow progress bars or log lines: :func:`~s2ssl.registry.versions.download_quietly`).

    Raises:
        ValueError: unknown model / alias / version (the message lists what exists), or not an
            s2ssl model.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    resolved = tracking_uri(uri)
    # MLflow's models:/ repository resolves the name with the process-wide URIs (not the ones
    # passed to download_artifacts): point both at this store, as stage_run does for runs.
    mlflow.set_tracking_uri(resolved)
    try:
        local = download_quietly(model_uri, dst, resolved)
    except MlflowException as e:
        raise ValueError(_unknown_uri_message(model_uri, resolved, e)) from None
    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        raise ValueError(f"{model_uri} is not an MLflow model (no MLmodel file)")
    config = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    artifacts = config.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
    entry = artifacts.get("model") or {}
    inner = local / str(entry.get("path", "")) if entry else None
    if inner is None or not (inner / META_FILE).is_file():
        raise ValueError(
            f"{model_uri} is an MLflow model but not an s2ssl fine-tuned model (registered by "
            "`s2ssl register`)"
        )
    return inner


def _unknown_uri_message(model_uri: str, uri: str, error: Exception) -> str:
    name = None
    match = re.match(r"^models:/([^/@]+)", model_uri)
    if match:
        name = match.group(1)
    known: Sequence[str] = []
    try:
        client = registry_client(uri)
        known = sorted(m.name for m in client.search_registered_models())
        if name in known:
            model = client.get_registered_model(name)
            aliases = sorted(model.aliases or {})
            versions = [str(v.version) for v in model_versions(client, name)]
            return (
                f"cannot resolve {model_uri!r} at {safe_uri(uri)}: {name} has versions "
                f"{versions} and aliases {aliases}; `s2ssl models` lists them"
            )
    except Exception:  # listing is only a hint
        known = []
    shown = ", ".join(known) if known else "none"
    return (
        f"cannot resolve model URI {model_uri!r} at tracking URI {safe_uri(uri)} "
        f"({type(error).__name__}); registered models: {shown}. Run `dvc repro` (register and "
        "promote stages) or pass a local model directory, e.g. models/finetune/landcover/model"
    )


@contextmanager
def resolve_model(model: str | Path) -> Iterator[Path]:
    """The fine-tuned model directory of ``model``: an MLflow URI (``models:/``, ``runs:/``) is
    downloaded to a temporary directory that lives while the context is open; anything else is
    a local directory.

    Raises:
        ValueError: an unknown URI, or a local path that does not exist.
    """
    text = str(model)
    if re.match(r"^(models|runs|mlflow-artifacts):/", text):
        with tempfile.TemporaryDirectory(prefix="s2ssl-model-") as tmp:
            yield download_model(text, tmp)
        return
    path = Path(text)
    if not path.exists():
        raise ValueError(
            f"model {text!r} is neither an MLflow model URI (models:/NAME@champion) nor an "
            "existing directory; `s2ssl models` lists the registered models"
        )
    yield path
