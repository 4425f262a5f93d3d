"""The resumable store of a task's fine-tuning runs: each run's result (``runs/<key>.json``)
with the fingerprint of what it depends on, its prediction preview (``runs/<key>.npz``), its
per-test-sample confusion matrices (``runs/<key>.samples.npz``, what the evaluation bootstraps),
the exported weights of the candidates and the selected model (with its per-sample results,
``test_samples.npz``, what guarded promotion compares)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.config import RANDOM_INITS, Params
from s2ssl.finetune.plan import RunSpec, encoder_unit, replicate_seed_of
from s2ssl.io import atomic_dir, atomic_path
from s2ssl.models.saved import META_FILE, WEIGHTS_FILE, encoder_dir
from s2ssl.training.resume import fingerprint_of

__all__ = [
    "CANDIDATES_DIR",
    "MODEL_DIR",
    "RUNS_DIR",
    "STAGE_STATE_FILE",
    "TEST_SAMPLES_FILE",
    "encoder_sha256",
    "export_model",
    "load_result",
    "load_samples",
    "run_files",
    "run_fingerprint",
    "save_preview",
    "save_samples",
]

TEST_SAMPLES_FILE: Final[str] = "test_samples.npz"
"""Per-test-sample confusion matrices of an exported model (``ids``, ``confusion``)."""

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
        "replicate_seed": replicate_seed_of(params, spec.replicate),
        "holdout_region": params.holdout_region,
        "task_config": ft.task_config(spec.task).model_dump(mode="json"),
        "min_train_samples": ft.min_train_samples,
        "deterministic": ft.deterministic,
        "data": manifest.get("raw_fingerprint") or manifest,
        "encoder_sha256": encoder_sha,
        "bands": list(params.band_names),
    }
    if spec.init not in RANDOM_INITS and spec.init in ft.published:
        record["published"] = ft.published[spec.init].model_dump(mode="json")
    return fingerprint_of(record)


def encoder_sha256(
    models_dir: Path, spec: RunSpec, published: Mapping[str, Any] | None = None
) -> str | None:
    """SHA-256 of the weights that initialise ``spec`` (``None`` for random init,
    ``"missing"`` when not there): the exported encoder, or for a name of ``published``
    (``finetune.published``) its file (a directory: its files in name order). Part of a run's
    fingerprint."""
    if spec.init in RANDOM_INITS:
        return None
    if published and spec.init in published:
        source = Path(published[spec.init].path)
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        if not files or not all(f.is_file() for f in files):
            return "missing"
    else:
        files = [encoder_dir(models_dir, spec.init, encoder_unit(spec)) / WEIGHTS_FILE]
        if not files[0].is_file():
            return "missing"
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as f:
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


def run_files(key: str) -> tuple[str, ...]:
    """The file names of run ``key`` in ``runs/``."""
    return (f"{key}.json", f"{key}.npz", f"{key}.samples.npz")


def save_samples(path: Path, ids: tuple[str, ...], samples: Mapping[str, np.ndarray]) -> None:
    """Write per-test-sample confusion matrices (``ids`` and one ``(n, K, K)`` array per part)."""
    for name, array in samples.items():
        if array.shape[0] != len(ids):
            raise ValueError(f"{name}: {array.shape[0]} confusion matrices for {len(ids)} ids")
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, ids=np.asarray(ids, dtype=str), **dict(samples))


def load_samples(path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """``(ids, {part: (n, K, K) confusion})`` written by :func:`save_samples`.

    Raises:
        ValueError: a missing or unreadable file, with the stage that writes it.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = tuple(str(i) for i in data["ids"].tolist())
            parts = {k: np.asarray(data[k]) for k in data.files if k != "ids"}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"cannot read the per-sample results {path} ({e}); run the finetune stage again"
        ) from None
    return ids, parts


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
        if (source / TEST_SAMPLES_FILE).is_file():
            shutil.copy2(source / TEST_SAMPLES_FILE, tmp / TEST_SAMPLES_FILE)
        (tmp / META_FILE).write_text(
            json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return target
