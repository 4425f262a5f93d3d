"""MLflow model registry: registration with lineage, the promotion policy, aliases, listing.

- :func:`register_model` logs a fine-tuned model directory (``models/finetune/<task>/model``) as
  a ``python_function`` model (:mod:`s2ssl.tracking.pyfunc`: explicit tensor signature, input
  example, explicit pip requirements, the ``s2ssl`` code shipped with it) in one MLflow run of
  stage ``register``, and registers it as ``<prefix>-<task>``. It is **idempotent**: the model's
  hash (:func:`model_hash`, weights + architecture) is a version tag, and a hash that is already
  registered is not registered again. A new version gets the alias ``challenger`` and lineage
  tags: git commit, the ``dvc.lock`` hashes of the fine-tuning stage's data, code, encoders and
  params, the pre-training method (init), the test set fingerprint and the test metrics.
- :func:`should_promote` (in :mod:`s2ssl.tracking.promotion`, re-exported here) is the **pure**
  promotion policy (``register.promote`` in params).
- :func:`promote` applies it to the ``challenger`` (or a given version) against the
  ``champion``, moves ``champion`` only when it holds, and records the decision and its reason
  as version tags. Promotions of one model are serialised by a lock (a file lock next to a
  sqlite store; on a tracking server, one lock per machine) and re-read the aliases inside it,
  so concurrent promotions cannot both win against a stale champion; an alias names exactly
  one version, so there is never more than one champion.
- :func:`list_models` is what ``s2ssl models`` shows; :func:`download_model` resolves a
  ``models:/`` (or ``runs:/``) URI to the fine-tuned model directory for ``s2ssl predict``.

Aliases only (``champion`` / ``challenger``), never the deprecated stages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from s2ssl.io import file_lock
from s2ssl.tracking.promotion import (
    Decision,
    ModelRecord,
    class_prefix,
    headline_metric,
    should_promote,
)
from s2ssl.tracking.runs import (
    MAX_TAG_VAL_LENGTH,
    _sanitize_key,
    _sqlite_path,
    stage_run,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from s2ssl.config import RegisterConfig

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Decision",
    "ModelRecord",
    "Promotion",
    "Registration",
    "VersionSummary",
    "class_prefix",
    "download_model",
    "dvc_lineage",
    "headline_metric",
    "list_models",
    "model_hash",
    "promote",
    "register_model",
    "resolve_model",
    "safe_uri",
    "should_promote",
]

_LOG = logging.getLogger(__name__)

CHAMPION: Final[str] = "champion"
CHALLENGER: Final[str] = "challenger"
EXPERIMENT: Final[str] = "register"

TAG_HASH: Final[str] = "s2ssl.model_hash"
TAG_TASK: Final[str] = "s2ssl.task"
TAG_TEST_SET: Final[str] = "s2ssl.test_set"
TAG_INIT: Final[str] = "s2ssl.init"
TAG_DECISION: Final[str] = "s2ssl.promotion.decision"
TAG_REASON: Final[str] = "s2ssl.promotion.reason"
TAG_AGAINST: Final[str] = "s2ssl.promotion.champion_version"
TAG_DECIDED_AT: Final[str] = "s2ssl.promotion.decided_at"
METRIC_TAG_PREFIX: Final[str] = "metric."

PIP_PACKAGES: Final[tuple[str, ...]] = ("torch", "numpy", "pydantic", "pyyaml")
"""What loading a registered model imports besides mlflow (checked by a fresh-process test)."""

_WEIGHTS: Final[str] = "weights.pt"
_META: Final[str] = "meta.json"


# --------------------------------------------------------------------------- hashing, lineage


def model_hash(model_dir: str | Path) -> str:
    """SHA-256 of a fine-tuned model: its weights file and its architecture record."""
    path = Path(model_dir)
    weights, meta = path / _WEIGHTS, path / _META
    if not weights.is_file() or not meta.is_file():
        raise ValueError(
            f"{path} is not a fine-tuned model directory ({_WEIGHTS} + {_META}); run "
            "`dvc repro finetune` (or `s2ssl finetune --task ...`) first"
        )
    architecture = json.loads(meta.read_text(encoding="utf-8")).get("architecture")
    h = hashlib.sha256()
    with weights.open("rb") as fh:
        h.update(hashlib.file_digest(fh, "sha256").digest())
    h.update(json.dumps(architecture, sort_keys=True).encode())
    return h.hexdigest()


def dvc_lineage(lock_file: str | Path, stage: str) -> dict[str, str]:
    """Tags from ``dvc.lock`` for ``stage``: ``dvc.dep.<path>`` / ``dvc.out.<path>`` = md5 and
    ``dvc.params`` = SHA-256 of the stage's params; ``{"dvc.lock": "absent"}`` without it."""
    path = Path(lock_file)
    try:
        lock = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        lock = None
    entry = (lock or {}).get("stages", {}).get(stage) if isinstance(lock, dict) else None
    if not isinstance(entry, dict):
        return {"dvc.lock": f"no entry for stage {stage}"}
    tags: dict[str, str] = {"dvc.lock_stage": stage}
    for kind in ("deps", "outs"):
        for item in entry.get(kind) or []:
            digest = item.get("md5") or item.get("hash") or item.get("etag")
            if item.get("path") and digest:
                tags[_sanitize_key(f"dvc.{kind[:-1]}.{item['path']}")] = str(digest)
    params = entry.get("params")
    if params:
        tags["dvc.params"] = hashlib.sha256(
            json.dumps(params, sort_keys=True, default=str).encode()
        ).hexdigest()
    return tags


def _pip_requirements() -> list[str]:
    out = []
    for name in PIP_PACKAGES:
        try:
            version = metadata.version(name).split("+")[0]
        except metadata.PackageNotFoundError:
            out.append(name)
            continue
        out.append(f"{name}=={version}")
    return out


# --------------------------------------------------------------------------- locking


@contextmanager
def _registry_lock(uri: str, name: str) -> Iterator[None]:
    """Serialise registration / promotion of ``name``: an exclusive ``flock`` on a lock file next
    to a sqlite store (so all processes on this file system), else in the temp directory."""
    sqlite = _sqlite_path(uri)
    if sqlite is not None:
        directory = sqlite[0].parent
    else:
        directory = Path(tempfile.gettempdir()) / "s2ssl-registry-locks"
    key = hashlib.sha256(f"{uri}\0{name}".encode()).hexdigest()[:16]
    with file_lock(directory / f".registry-{key}.lock"):
        yield


# --------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class Registration:
    """The outcome of :func:`register_model`."""

    task: str
    name: str
    version: str
    model_hash: str
    created: bool
    run_id: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record (``reports/register/registered.json``)."""
        return {
            "model": self.name,
            "version": self.version,
            "created": self.created,
            "model_hash": self.model_hash,
            "run_id": self.run_id,
            "uri": f"models:/{self.name}/{self.version}",
        }


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
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


def _example(model: Any, meta: Mapping[str, Any]) -> Any:
    """A small plausible input: the model's band means (its standardisation) plus a ramp."""
    import numpy as np

    from s2ssl.models.downstream import TimeSeriesSegmentationNet

    mean = model.normalize.mean.detach().cpu().numpy() if hasattr(model, "normalize") else None
    bands = len(model.bands)
    if mean is None or mean.shape != (bands,):
        mean = np.full(bands, 0.1, dtype=np.float32)
    if isinstance(model, TimeSeriesSegmentationNet):
        steps = int(meta["architecture"]["backbone"]["timesteps"])
        size = 32
        ramp = np.linspace(0.9, 1.1, size * size, dtype=np.float32).reshape(size, size)
        x = mean[None, None, :, None, None] * ramp[None, None, None]
        x = np.repeat(x, steps, axis=1).astype(np.float32)
        doy = np.linspace(15, 350, steps, dtype=np.float32)[None]
        return {"x": x, "doy": doy}
    size = 32 if meta["architecture"]["kind"] == "scene" else 64
    ramp = np.linspace(0.9, 1.1, size * size, dtype=np.float32).reshape(size, size)
    return (mean[None, :, None, None] * ramp[None, None]).astype(np.float32)


def _signature(model: Any, meta: Mapping[str, Any]) -> Any:
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    from s2ssl.models.downstream import TimeSeriesSegmentationNet

    f32 = np.dtype(np.float32)
    bands, classes = len(model.bands), len(model.classes)
    if isinstance(model, TimeSeriesSegmentationNet):
        steps = int(meta["architecture"]["backbone"]["timesteps"])
        inputs = Schema(
            [
                TensorSpec(f32, (-1, steps, bands, -1, -1), "x"),
                TensorSpec(f32, (-1, steps), "doy"),
            ]
        )
    else:
        inputs = Schema([TensorSpec(f32, (-1, bands, -1, -1))])
    scene = meta["architecture"]["kind"] == "scene"
    outputs = Schema([TensorSpec(f32, (-1, classes) if scene else (-1, classes, -1, -1))])
    params = ParamSchema([ParamSpec("output", "string", "probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _code_copy(tmp: Path) -> Path:
    """A copy of the installed ``s2ssl`` package without caches (shipped as the model's code)."""
    import s2ssl

    source = Path(s2ssl.__file__).parent
    target = tmp / "s2ssl"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _metric_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    return {
        f"{METRIC_TAG_PREFIX}{_sanitize_key(k)}": f"{float(v):.6g}"
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def register_model(
    config: RegisterConfig,
    task: str,
    model_dir: str | Path,
    *,
    lock_file: str | Path = "dvc.lock",
    params: Mapping[str, Any] | None = None,
    uri: str | None = None,
) -> Registration:
    """Register ``model_dir`` as a version of ``<prefix>-<task>`` unless its hash already is.

    A new version gets alias ``challenger``; its tags carry the lineage (see module docstring).

    Raises:
        ValueError: ``model_dir`` is not a fine-tuned model, or is a model of another task.
    """
    import mlflow

    from s2ssl.models.downstream import load_model

    uri = tracking_uri(uri)
    name = config.model_name(task)
    digest = model_hash(model_dir)
    model, meta = load_model(model_dir)
    if meta.get("task") not in (None, task):
        raise ValueError(f"{model_dir} holds a {meta.get('task')!r} model, not {task!r}")
    client = _client(uri)
    with _registry_lock(uri, name):
        for version in _versions(client, name):
            if version.tags.get(TAG_HASH) == digest:
                _LOG.info(
                    "%s: model %s… already registered as version %s",
                    name,
                    digest[:12],
                    version.version,
                )
                return Registration(task, name, str(version.version), digest, False, version.run_id)

        metrics = {
            k: float(v) for k, v in (meta.get("test") or {}).items() if isinstance(v, int | float)
        }
        tags = {
            TAG_TASK: task,
            TAG_HASH: digest,
            TAG_TEST_SET: str(meta.get("test_set") or "unknown"),
            TAG_INIT: str(meta.get("init", "unknown")),
            "s2ssl.selected_run": str(meta.get("selected_run", "")),
            **dvc_lineage(lock_file, f"finetune@{task}"),
            **_metric_tags(metrics),
        }
        stage_tags = {k: v for k, v in tags.items() if not k.startswith("dvc.")}
        with (
            stage_run(
                EXPERIMENT,
                name,
                stage="register",
                params=params,
                inputs={"model": model_dir},
                tags=stage_tags,
                uri=uri,
            ) as run,
            tempfile.TemporaryDirectory(prefix="s2ssl-register-") as tmp,
        ):
            from s2ssl.tracking.pyfunc import MODEL_ARTIFACT

            mlflow.log_metrics({f"test.{k}": v for k, v in metrics.items() if math.isfinite(v)})
            with _quiet_mlflow():
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                    artifacts={MODEL_ARTIFACT: str(Path(model_dir).resolve())},
                    code_paths=[str(_code_copy(Path(tmp)))],
                    signature=_signature(model, meta),
                    input_example=_example(model, meta),
                    pip_requirements=_pip_requirements(),
                    metadata={"s2ssl_task": task, "s2ssl_model_hash": digest},
                )
            version_tags = {**tags, **_lineage_of(run.run_id, uri)}
            with _registry_uri(uri):
                mv = mlflow.register_model(
                    info.model_uri,
                    name,
                    tags={k: v[:MAX_TAG_VAL_LENGTH] for k, v in version_tags.items()},
                )
        client.update_model_version(
            name,
            mv.version,
            description=f"{task} model ({meta.get('init', '?')} init, run "
            f"{meta.get('selected_run', '?')}); inputs: reflectance of bands "
            f"{', '.join(model.bands)}",
        )
        client.set_registered_model_alias(name, CHALLENGER, mv.version)
        return Registration(task, name, str(mv.version), digest, True, run.run_id)


@contextmanager
def _registry_uri(uri: str) -> Iterator[None]:
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


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's advice that does not apply here while logging a model: type hints on
    ``predict`` (the tensor signature is explicit) and the artifact download progress bars."""
    import os
    import warnings

    old = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hints.*")
            yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = old


def _lineage_of(run_id: str, uri: str) -> dict[str, str]:
    """The git lineage tags of ``run_id`` (copied onto the model version)."""
    run = _client(uri).get_run(run_id)
    return {k: v for k, v in run.data.tags.items() if k.startswith(("git.", "input."))}


# --------------------------------------------------------------------------- promotion


@dataclass(frozen=True)
class Promotion:
    """The outcome of :func:`promote` for one registered model."""

    task: str
    model: str
    promoted: bool
    reason: str
    metric: str
    candidate_version: str | None
    candidate_value: float | None
    previous_champion_version: str | None
    champion_value: float | None
    champion_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record (``reports/promote/decisions.json``)."""
        return {
            "model": self.model,
            "promoted": self.promoted,
            "reason": self.reason,
            "metric": self.metric,
            "candidate_version": self.candidate_version,
            "candidate_value": self.candidate_value,
            "previous_champion_version": self.previous_champion_version,
            "champion_value": self.champion_value,
            "champion_version": self.champion_version,
        }


def _record(task: str, version: ModelVersion) -> ModelRecord:
    metrics: dict[str, float] = {}
    for key, value in version.tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                metrics[key[len(METRIC_TAG_PREFIX) :]] = float(value)
            except ValueError:
                continue
    test_set = version.tags.get(TAG_TEST_SET)
    return ModelRecord(
        task=task,
        version=str(version.version),
        metrics=metrics,
        test_set=None if test_set in (None, "unknown") else test_set,
        model_hash=version.tags.get(TAG_HASH),
    )


def _by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def promote(
    config: RegisterConfig,
    task: str,
    *,
    version: str | int | None = None,
    force: bool = False,
    uri: str | None = None,
) -> Promotion:
    """Promote the ``challenger`` (or ``version``) of ``task`` to ``champion`` if the policy holds.

    The decision and its reason are recorded on the candidate version as tags; a promoted
    challenger loses the ``challenger`` alias, a rejected one keeps it. With ``force`` the policy
    is skipped (a manual roll-back) and the reason says so.

    Raises:
        ValueError: no such registered model or version, or nothing to promote.
    """
    uri = tracking_uri(uri)
    name = config.model_name(task)
    client = _client(uri)
    metric = config.promote.metric or headline_metric(task)
    with _registry_lock(uri, name):
        versions = _versions(client, name)
        if not versions:
            raise ValueError(
                f"no registered model {name!r} at {safe_uri(uri)}; run `s2ssl register` "
                "(or `dvc repro register`) first"
            )
        if version is not None:
            wanted = str(version)
            found = [v for v in versions if str(v.version) == wanted]
            if not found:
                raise ValueError(
                    f"{name} has no version {wanted}; versions: "
                    f"{[str(v.version) for v in versions]}"
                )
            candidate = found[0]
        else:
            challenger = _by_alias(client, name, CHALLENGER)
            if challenger is None:
                champion = _by_alias(client, name, CHAMPION)
                return Promotion(
                    task,
                    name,
                    False,
                    "no challenger to consider (nothing newly registered)",
                    metric,
                    None,
                    None,
                    None if champion is None else str(champion.version),
                    None if champion is None else _record(task, champion).metrics.get(metric),
                    None if champion is None else str(champion.version),
                )
            candidate = challenger
        champion = _by_alias(client, name, CHAMPION)
        cand = _record(task, candidate)
        champ = None if champion is None else _record(task, champion)
        if force:
            decision = Decision(
                True,
                f"forced by the user (policy not applied) over version "
                f"{champ.version if champ else 'none'}",
            )
            if champ is not None and champ.version == cand.version:
                decision = Decision(False, f"version {cand.version} is already the champion")
        else:
            decision = should_promote(cand, champ, config.promote)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for key, value in (
            (TAG_DECISION, "promoted" if decision.promote else "rejected"),
            (TAG_REASON, decision.reason[:MAX_TAG_VAL_LENGTH]),
            (TAG_AGAINST, "none" if champ is None else champ.version),
            (TAG_DECIDED_AT, now),
        ):
            client.set_model_version_tag(name, cand.version, key, value)
        if decision.promote:
            client.set_registered_model_alias(name, CHAMPION, cand.version)
            challenger_now = _by_alias(client, name, CHALLENGER)
            if challenger_now is not None and str(challenger_now.version) == cand.version:
                client.delete_registered_model_alias(name, CHALLENGER)  # it is the champion now
        new_champion = cand.version if decision.promote else (champ.version if champ else None)
        return Promotion(
            task=task,
            model=name,
            promoted=decision.promote,
            reason=decision.reason,
            metric=metric,
            candidate_version=cand.version,
            candidate_value=cand.metrics.get(metric),
            previous_champion_version=None if champ is None else champ.version,
            champion_value=None if champ is None else champ.metrics.get(metric),
            champion_version=new_champion,
        )


# --------------------------------------------------------------------------- listing, loading


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
    client = _client(uri)
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
        for v in _versions(client, name):
            rec = _record(task, v)
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


_USERINFO: Final[re.Pattern[str]] = re.compile(r"//[^/@\s]+@")


def safe_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` removed (for messages)."""
    return _USERINFO.sub("//***@", uri)


def download_model(model_uri: str, dst: str | Path, uri: str | None = None) -> Path:
    """Download a registered (``models:/NAME@alias``, ``models:/NAME/3``) or logged (``runs:/``)
    s2ssl model and return the fine-tuned model directory inside it.

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
        with _registry_uri(resolved):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri,
                    dst_path=str(dst),
                    tracking_uri=resolved,
                    registry_uri=resolved,
                )
            )
    except MlflowException as e:
        raise ValueError(_unknown_uri_message(model_uri, resolved, e)) from None
    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        raise ValueError(f"{model_uri} is not an MLflow model (no MLmodel file)")
    config = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    artifacts = config.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
    entry = artifacts.get("model") or {}
    inner = local / str(entry.get("path", "")) if entry else None
    if inner is None or not (inner / _META).is_file():
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
        client = _client(uri)
        known = sorted(m.name for m in client.search_registered_models())
        if name in known:
            model = client.get_registered_model(name)
            aliases = sorted(model.aliases or {})
            versions = [str(v.version) for v in _versions(client, name)]
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
