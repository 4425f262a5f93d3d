"""Registration of a fine-tuned model as a ``python_function`` version of ``<prefix>-<task>``,
with its lineage (git, ``dvc.lock``, test metrics); idempotent on the model's hash."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

import s2ssl
from s2ssl.models.downstream import TimeSeriesSegmentationNet, load_model
from s2ssl.registry.pyfunc import MODEL_ARTIFACT
from s2ssl.registry.samples import (
    TEST_SAMPLES_ARTIFACT_DIR,
    TEST_SAMPLES_FILE,
    read_test_samples,
)
from s2ssl.registry.versions import (
    CHALLENGER,
    METRIC_TAG_PREFIX,
    TAG_HASH,
    TAG_INIT,
    TAG_TASK,
    TAG_TEST_SAMPLES,
    TAG_TEST_SET,
    model_versions,
    quiet_mlflow,
    registry_client,
    registry_lock,
    registry_uri,
)
from s2ssl.taskspec import TaskKind
from s2ssl.tracking.backend import tracking_uri
from s2ssl.tracking.flatten import MAX_TAG_VAL_LENGTH, sanitize_key
from s2ssl.tracking.runs import stage_run

if TYPE_CHECKING:
    from s2ssl.config import RegisterConfig

_LOG = logging.getLogger(__name__)

EXPERIMENT: Final[str] = "register"

PIP_PACKAGES: Final[tuple[str, ...]] = ("torch", "numpy", "pydantic", "pyyaml")
"""What loading a registered model imports besides mlflow (checked by a fresh-process test)."""

WEIGHTS_FILE: Final[str] = "weights.pt"
META_FILE: Final[str] = "meta.json"


def model_hash(model_dir: str | Path) -> str:
    """SHA-256 of a fine-tuned model: its weights file and its architecture record."""
    path = Path(model_dir)
    weights, meta = path / WEIGHTS_FILE, path / META_FILE
    if not weights.is_file() or not meta.is_file():
        raise ValueError(
            f"{path} is not a fine-tuned model directory ({WEIGHTS_FILE} + {META_FILE}); run "
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
                tags[sanitize_key(f"dvc.{kind[:-1]}.{item['path']}")] = str(digest)
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


def _example(model: Any, meta: Mapping[str, Any]) -> Any:
    """A small plausible input: the model's band means (its standardisation) plus a ramp."""
    import numpy as np

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
    size = 32 if TaskKind(meta["architecture"]["kind"]) is TaskKind.SCENE else 64
    ramp = np.linspace(0.9, 1.1, size * size, dtype=np.float32).reshape(size, size)
    return (mean[None, :, None, None] * ramp[None, None]).astype(np.float32)


def _signature(model: Any, meta: Mapping[str, Any]) -> Any:
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

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
    scene = TaskKind(meta["architecture"]["kind"]) is TaskKind.SCENE
    outputs = Schema([TensorSpec(f32, (-1, classes) if scene else (-1, classes, -1, -1))])
    params = ParamSchema([ParamSpec("output", "string", "probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _code_copy(tmp: Path) -> Path:
    """A copy of the installed ``s2ssl`` package without caches (shipped as the model's code)."""

    source = Path(s2ssl.__file__).parent
    target = tmp / "s2ssl"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def _metric_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    return {
        f"{METRIC_TAG_PREFIX}{sanitize_key(k)}": f"{float(v):.6g}"
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
    The model's per-test-sample results (``test_samples.npz``, :mod:`s2ssl.registry.samples`)
    are logged with it; a model without them is registered, but can never be promoted over a
    champion (a comparison without uncertainty is not a finding).

    Raises:
        ValueError: ``model_dir`` is not a fine-tuned model, is a model of another task, or
            holds an unreadable ``test_samples.npz``.
    """
    import mlflow

    uri = tracking_uri(uri)
    name = config.model_name(task)
    digest = model_hash(model_dir)
    model, meta = load_model(model_dir)
    if meta.get("task") not in (None, task):
        raise ValueError(f"{model_dir} holds a {meta.get('task')!r} model, not {task!r}")
    samples_file = Path(model_dir) / TEST_SAMPLES_FILE
    if samples_file.is_file():
        read_test_samples(samples_file)  # fail before registering anything
    else:
        _LOG.warning(
            "%s has no %s: the version cannot be promoted over a champion (no per-sample test "
            "results to compare with)",
            model_dir,
            TEST_SAMPLES_FILE,
        )
    client = registry_client(uri)
    with registry_lock(uri, name):
        for version in model_versions(client, name):
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
            mlflow.log_metrics({f"test.{k}": v for k, v in metrics.items() if math.isfinite(v)})
            with quiet_mlflow():
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
            if samples_file.is_file():
                with quiet_mlflow():
                    mlflow.log_artifact(str(samples_file), artifact_path=TEST_SAMPLES_ARTIFACT_DIR)
                version_tags[TAG_TEST_SAMPLES] = (
                    f"runs:/{run.run_id}/{TEST_SAMPLES_ARTIFACT_DIR}/{TEST_SAMPLES_FILE}"
                )
            with registry_uri(uri):
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


def _lineage_of(run_id: str, uri: str) -> dict[str, str]:
    """The git lineage tags of ``run_id`` (copied onto the model version)."""
    run = registry_client(uri).get_run(run_id)
    return {k: v for k, v in run.data.tags.items() if k.startswith(("git.", "input."))}
