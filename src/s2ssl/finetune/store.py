"""The resumable store of a task's fine-tuning runs: each run's result (``runs/<key>.json``)
with the fingerprint of what it depends on, its prediction preview (``runs/<key>.npz``), the
exported weights of the candidates and the selected model."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.config import Params
from s2ssl.finetune.plan import RunSpec
from s2ssl.io import atomic_dir, atomic_path
from s2ssl.models.saved import META_FILE, WEIGHTS_FILE
from s2ssl.training.resume import fingerprint_of

__all__ = [
    "CANDIDATES_DIR",
    "MODEL_DIR",
    "RUNS_DIR",
    "STAGE_STATE_FILE",
    "encoder_sha256",
    "export_model",
    "load_result",
    "run_fingerprint",
    "save_preview",
]

RUNS_DIR: Final[str] = "runs"

MODEL_DIR: Final[str] = "model"

CANDIDATES_DIR: Final[str] = "candidates"

STAGE_STATE_FILE: Final[str] = ".stage_state"
"""Resume state of the stage in ``runs/`` (JSON, named without ``.json``: those are results)."""


def run_fingerprint(
    params: Params, spec: RunSpec, manifest: Mapping[str, Any], encoder_sha: str | None
) -> str:
    """SHA-256 of everything a run's result depends on; a stored result with another one is
    stale."""
    ft = params.finetune
    record = {
        "spec": asdict(spec),
        "seed": params.seed,
        "holdout_region": params.holdout_region,
        "task_config": ft.task_config(spec.task).model_dump(mode="json"),
        "min_train_samples": ft.min_train_samples,
        "deterministic": ft.deterministic,
        "data": manifest.get("raw_fingerprint") or manifest,
        "encoder_sha256": encoder_sha,
    }
    return fingerprint_of(record)


def encoder_sha256(models_dir: Path, init: str) -> str | None:
    """SHA-256 of the exported encoder weights of ``init`` (``None`` for random init, ``"missing"``
    when not exported): part of a run's fingerprint."""
    if init == "random":
        return None
    weights = models_dir / init / "encoder" / "weights.pt"
    if not weights.is_file():
        return "missing"
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_result(path: Path) -> dict[str, Any] | None:
    """A stored run result, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def save_preview(path: Path, spec: RunSpec, ids: tuple[str, ...], preview: np.ndarray) -> None:
    """Write the first test predictions of a run with their sample ids (``.npz``)."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, ids=np.asarray(ids[: len(preview)]), pred=preview)


def export_model(
    task: str,
    source: Path,
    key: str,
    record: Mapping[str, Any],
    target: Path,
    test_set: str,
) -> Path:
    """Copy the selected candidate to ``target`` with the selection recorded in meta.json."""
    meta = json.loads((source / META_FILE).read_text(encoding="utf-8"))
    meta.update(
        {
            "task": task,
            "selected_run": key,
            "selection": f"best validation {record['val_metric']} among in-domain runs at the "
            "largest label fraction",
            "test": {k: v for k, v in record["test"].items() if k != "confusion"},
            "test_set": test_set,
        }
    )
    with atomic_dir(target) as tmp:
        shutil.copy2(source / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(
            json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return target
