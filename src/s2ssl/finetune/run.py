"""The ``finetune`` stage of one task: every init × protocol × label fraction × setting.

For task ``T`` (one DVC ``foreach`` item, ``finetune@T``), :func:`plan_runs` lists the runs:

* ``landcover`` / ``croptype``: protocol ``finetune`` for each init in ``finetune.T.inits`` at
  each of ``finetune.fractions`` (setting ``in_domain``), and at
  ``finetune.region_transfer.fractions`` on the held-out region (setting ``transfer``);
* ``scene``: protocols ``linear`` and ``knn`` (frozen encoder) at every fraction in both
  settings, and ``finetune`` (whole network) at ``finetune.scene.finetune_fractions`` in domain.

Each run trains on its label fraction of the train split, selects its state on the val split
and is scored **once** on the test split. Its result (test metrics with the confusion matrix,
validation curve, budget, lineage) is written to ``<reports>/T/runs/<key>.json`` and a preview
of its first test predictions to ``<key>.npz``; a run whose result exists with the same
fingerprint (params, data, encoder weights) is not repeated, so a killed stage resumes
(``runs/`` is a DVC ``persist`` output). One MLflow parent run per stage execution with one
nested run per executed run. The in-domain run with the best validation score at the largest
fraction is exported to ``<models>/T/model`` (weights + meta.json) for registration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.config import Params
from s2ssl.io import atomic_path, write_json_atomic
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.taskspec import task_spec

__all__ = [
    "FinetuneResult",
    "FittedRun",
    "RunSpec",
    "encoder_sha256",
    "fit_run",
    "fraction_label",
    "plan_runs",
    "run_finetune",
    "run_seed",
    "trainer_kwargs",
]

_LOG = logging.getLogger(__name__)

RUNS_DIR: Final[str] = "runs"
MODEL_DIR: Final[str] = "model"
CANDIDATES_DIR: Final[str] = "candidates"
PREVIEW_SAMPLES: Final[int] = 8


def fraction_label(fraction: float) -> str:
    """``0.01 -> "1"``, ``0.1 -> "10"``, ``1.0 -> "100"`` (percent, as short as exact)."""
    return f"{fraction * 100:.6g}"


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning / evaluation run."""

    task: str
    setting: str
    init: str
    protocol: str
    fraction: float

    @property
    def key(self) -> str:
        """File-name key, e.g. ``in_domain.dense.finetune.f10``."""
        return f"{self.setting}.{self.init}.{self.protocol}.f{fraction_label(self.fraction)}"


def plan_runs(params: Params, task: str) -> list[RunSpec]:
    """Every run of ``task`` in execution order (see the module docstring)."""
    ft = params.finetune
    cfg = ft.task_config(task)
    transfer = ft.region_transfer.enabled and params.holdout_region is not None
    runs: list[RunSpec] = []
    protocols = getattr(cfg, "protocols", ["finetune"])
    for protocol in protocols:
        if task_spec(task).is_scene_level and protocol == "finetune":
            in_domain = list(getattr(cfg, "finetune_fractions", []))
            across: list[float] = []
        else:
            in_domain = list(ft.fractions)
            across = list(ft.region_transfer.fractions) if transfer else []
        for init in cfg.inits:
            runs += [RunSpec(task, "in_domain", init, protocol, f) for f in sorted(in_domain)]
            runs += [RunSpec(task, "transfer", init, protocol, f) for f in sorted(across)]
    return runs


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`run_finetune` did."""

    task: str
    results: dict[str, dict[str, Any]]
    executed: list[str]
    reused: list[str]
    model_dir: Path | None
    selected: str | None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint(
    params: Params, spec: RunSpec, manifest: Mapping[str, Any], encoder_sha: str | None
) -> str:
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
    return _sha256(json.dumps(record, sort_keys=True, default=str))


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


def run_seed(seed: int, spec: RunSpec) -> int:
    """The seed of one run: derived from the top-level seed and the run's key only, so a run's
    randomness does not depend on which other runs (or trials) came before it."""
    from s2ssl.ssl.datamodule import derive_seed

    digest = int(_sha256(spec.key)[:8], 16)
    return derive_seed(seed, digest) & 0xFFFF_FFFF  # numpy / Lightning take 32-bit seeds


def _load_result(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class _Trained:
    spec: RunSpec
    model: Any
    info: Any
    record: dict[str, Any]
    preview: np.ndarray


def trainer_kwargs(params: Params) -> dict[str, Any]:
    """Lightning ``Trainer`` settings of fine-tuning (accelerator, devices, precision, determinism)
    from the ``finetune`` section."""
    from s2ssl.ssl.pretrain import resolve_precision

    ft = params.finetune
    on_cuda = resolve_precision("auto", ft.accelerator) == "bf16-mixed"
    deterministic: bool | str = ("warn" if on_cuda else True) if ft.deterministic else False
    return {
        "accelerator": ft.accelerator,
        "devices": ft.devices,
        "precision": resolve_precision(ft.precision, ft.accelerator),
        "deterministic": deterministic,
    }


_FeatureCache = dict[tuple[str, str], tuple[Any, Any, dict[str, Any]]]
"""``(init, setting) -> (model, init info, features of train / val / test)`` of frozen runs."""


def _frozen_features(
    params: Params, spec: RunSpec, data: Any, models_dir: Path, cache: _FeatureCache
) -> tuple[Any, Any, dict[str, Any]]:
    """The frozen encoder of ``spec.init`` and its features of every split (computed once)."""
    import torch

    from s2ssl.finetune.frozen import extract_features
    from s2ssl.finetune.inits import initial_model

    key = (spec.init, spec.setting)
    if key not in cache:
        torch.manual_seed(
            run_seed(params.seed, RunSpec(spec.task, spec.setting, spec.init, "frozen", 1.0))
        )
        model, info = initial_model(spec.task, spec.init, params, data, models_dir)
        size = params.finetune.eval_batch_size
        feats = {
            name: extract_features(model, split, batch_size=size)
            for name, split in (("train", data.train), ("val", data.val), ("test", data.test))
        }
        cache[key] = (model, info, feats)
    return cache[key]


@dataclass
class FittedRun:
    """A fine-tuned network of one run (protocol ``finetune``), best validation state loaded."""

    spec: RunSpec
    model: Any
    info: Any
    train: Any
    """The label-fraction subset of the train split it was trained on (a ``TaskSplit``)."""
    fit: Any
    """The :class:`~s2ssl.finetune.train.FitResult` (steps, best step / score, history)."""
    seed: int


def fit_run(
    params: Params,
    spec: RunSpec,
    data: Any,
    models_dir: str | Path,
    *,
    callbacks: Sequence[Any] = (),
) -> FittedRun:
    """Fine-tune one run (protocol ``finetune``) on its label fraction, selecting on val.

    Seeds everything from :func:`run_seed`, takes the run's label fraction of ``data.train``,
    builds the initial network (:func:`~s2ssl.finetune.inits.initial_model`) and trains it with
    :func:`~s2ssl.finetune.train.fit` and the ``finetune`` section's settings. The test split is
    not touched. Shared by the ``finetune`` stage and the Optuna objective (:mod:`s2ssl.tuning`,
    which passes its pruning callback in ``callbacks``).
    """
    import lightning as L

    from s2ssl.finetune.inits import initial_model
    from s2ssl.finetune.train import fit

    if spec.protocol != "finetune":
        raise ValueError(f"fit_run trains protocol 'finetune' runs, not {spec.protocol!r}")
    ft = params.finetune
    seed = run_seed(params.seed, spec)
    L.seed_everything(seed, workers=True, verbose=False)
    train = data.train.subset(
        data.fraction_positions(spec.fraction, params.seed, ft.min_train_samples)
    )
    model, info = initial_model(spec.task, spec.init, params, data, models_dir)
    result = fit(
        model,
        train,
        data.val,
        ft.task_config(spec.task),
        seed=seed,
        pretrained=info.transferred,
        trainer_kwargs=trainer_kwargs(params),
        eval_batch_size=ft.eval_batch_size,
        callbacks=callbacks,
    )
    return FittedRun(spec, model, info, train, result, seed)


def _execute(
    params: Params,
    spec: RunSpec,
    data: Any,
    models_dir: Path,
    fingerprint: str,
    cache: _FeatureCache,
) -> _Trained:
    """Train (or fit the frozen protocol of) one run and score it on test."""
    import lightning as L
    import torch

    from s2ssl.evaluation.metrics import ClassificationMetrics
    from s2ssl.finetune.frozen import fit_linear_probe, knn_predict
    from s2ssl.finetune.train import score

    ft = params.finetune
    cfg = ft.task_config(spec.task)
    seed = run_seed(params.seed, spec)
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    steps = best_step = 0
    if spec.protocol == "finetune":
        fitted = fit_run(params, spec, data, models_dir)
        model, info, train = fitted.model, fitted.info, fitted.train
        steps, best_step, best_val, history = (
            fitted.fit.steps,
            fitted.fit.best_step,
            fitted.fit.best_val,
            fitted.fit.history,
        )
        test_metrics, preds = score(model, data.test, batch_size=ft.eval_batch_size)
    else:
        L.seed_everything(seed, workers=True, verbose=False)
        positions = data.fraction_positions(spec.fraction, params.seed, ft.min_train_samples)
        train = data.train.subset(positions)
        model, info, feats = _frozen_features(params, spec, data, models_dir, cache)
        k = len(data.classes)
        bank = feats["train"][torch.as_tensor(positions)]
        bank_labels = train.label
        if spec.protocol == "linear":
            layer = fit_linear_probe(bank, bank_labels, k, cfg.linear, seed)
            model.classifier.load_state_dict(layer.state_dict())

            def classify(f: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return layer(f).argmax(1)
        else:

            def classify(f: torch.Tensor) -> torch.Tensor:
                return knn_predict(
                    bank, bank_labels, f, k, k=cfg.knn_k, temperature=cfg.knn_temperature
                )

        scores: dict[str, Any] = {}
        for split, labels in (("val", data.val.label), ("test", data.test.label)):
            m = ClassificationMetrics(k, class_names=data.classes)
            pred = classify(feats[split])
            m.update(pred, labels)
            scores[split] = (m.compute(), pred)
        best_val = float(scores["val"][0]["top1"])
        test_metrics, preds = scores["test"]
    wall = time.perf_counter() - started
    record = {
        **asdict(spec),
        "key": spec.key,
        "fraction_label": fraction_label(spec.fraction),
        "n_train": len(train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "steps": steps,
        "best_step": best_step,
        "val_score": best_val,
        "val_metric": task_spec(spec.task).headline,
        "wall_s": wall,
        "bands": list(info.bands),
        "encoder": info.encoder,
        "encoder_sha256": info.encoder_sha256,
        "pretrain_method": None if spec.init == "random" else spec.init,
        "history": history,
        "test": test_metrics,
        "fingerprint": fingerprint,
        "seed": seed,
    }
    preview = preds[:PREVIEW_SAMPLES].numpy().astype(np.uint8)
    return _Trained(spec, model, info, record, preview)


def _child_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    out = {"val_score": float(record["val_score"]), "wall_s": float(record["wall_s"])}
    for key, value in record["test"].items():
        if isinstance(value, int | float) and math.isfinite(value):
            out[f"test.{key}"] = float(value)
    return out


@dataclass
class _Tracker:
    """MLflow bookkeeping of one stage execution (a parent run, nested run per executed run)."""

    task: str
    enabled: bool

    def child(self, spec: RunSpec, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from s2ssl.tracking import log_metrics, stage_run

        with stage_run(
            "finetune",
            f"{self.task}/{spec.key}",
            stage=f"finetune@{self.task}",
            params={
                "task": spec.task,
                "setting": spec.setting,
                "init": spec.init,
                "protocol": spec.protocol,
                "fraction": spec.fraction,
                "n_train": record["n_train"],
                "steps": record["steps"],
                "bands": ",".join(record["bands"]),
            },
            tags={
                "s2ssl.task": spec.task,
                "s2ssl.init": spec.init,
                "s2ssl.protocol": spec.protocol,
                "s2ssl.setting": spec.setting,
                "s2ssl.fraction": fraction_label(spec.fraction),
                **(
                    {"s2ssl.encoder_sha256": str(record["encoder_sha256"])}
                    if record.get("encoder_sha256")
                    else {}
                ),
            },
            nested=True,
        ):
            log_metrics(_child_metrics(record))
            for row in record.get("history", []):
                log_metrics(
                    {k: v for k, v in row.items() if k != "step"}, step=int(row.get("step", 0))
                )


def _candidate_protocols(params: Params, task: str) -> tuple[str, ...]:
    if not task_spec(task).is_scene_level:
        return ("finetune",)
    protocols = params.finetune.scene.protocols
    if "finetune" in protocols:
        return ("finetune",)
    return ("linear",) if "linear" in protocols else ()


def _is_candidate(params: Params, spec: RunSpec) -> bool:
    if spec.setting != "in_domain" or spec.protocol not in _candidate_protocols(params, spec.task):
        return False
    fractions = [
        r.fraction
        for r in plan_runs(params, spec.task)
        if r.setting == "in_domain" and r.protocol == spec.protocol
    ]
    return bool(fractions) and spec.fraction == max(fractions)


def _save_preview(path: Path, spec: RunSpec, ids: tuple[str, ...], preview: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, ids=np.asarray(ids[: len(preview)]), pred=preview)


def _export(
    task: str,
    source: Path,
    key: str,
    record: Mapping[str, Any],
    target: Path,
    test_set: str,
) -> Path:
    """Copy the selected candidate to ``target`` with the selection recorded in meta.json."""
    from s2ssl.finetune.models import META_FILE, WEIGHTS_FILE
    from s2ssl.io import atomic_dir

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


def run_finetune(
    params: Params,
    task: str,
    data_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    reports_dir: str | Path,
    *,
    progress: ProgressFactory = no_progress,
    track: bool = True,
    tracking_uri: str | None = None,
) -> FinetuneResult:
    """Run every planned run of ``task`` that has no up-to-date result, then export its model.

    Args:
        params: the validated params.
        task: ``landcover``, ``croptype`` or ``scene``.
        data_dir: validated datasets (``data/validated``).
        pretrain_dir: exported encoders (``models/pretrain``).
        out_dir: models root (``models/finetune``): ``<out>/<task>/{model,candidates}``.
        reports_dir: reports root (``reports/finetune``): ``<reports>/<task>/runs/*.json``.
        progress: progress factory (one step per run).
        track: log to MLflow (parent run per call, nested run per executed run).
        tracking_uri: MLflow URI (default: ``MLFLOW_TRACKING_URI`` / the project's).

    Raises:
        ValueError: unknown task, missing data or encoders, unusable settings.
    """
    import torch

    from s2ssl.finetune.data import load_task_data
    from s2ssl.finetune.models import save_model
    from s2ssl.ssl.pretrain import _quiet_lightning

    if task not in params.finetune.tasks:
        raise ValueError(
            f"task {task!r} is not in finetune.tasks {params.finetune.tasks}; add it there first"
        )
    ft = params.finetune
    if ft.torch_threads is not None:
        torch.set_num_threads(ft.torch_threads)
    runs = plan_runs(params, task)
    models_dir = Path(pretrain_dir)
    runs_dir = Path(reports_dir) / task / RUNS_DIR
    cand_dir = Path(out_dir) / task / CANDIDATES_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    settings = dict.fromkeys(r.setting for r in runs)
    tile = params.finetune.scene.tile_size
    data = {
        s: load_task_data(task, data_dir, s, params.holdout_region, scene_tile=tile)
        for s in settings
    }

    # drop results of runs that are no longer planned (e.g. an init removed from params)
    planned = {r.key for r in runs}
    for path in runs_dir.glob("*.json"):
        if path.stem not in planned:
            path.unlink()
            path.with_suffix(".npz").unlink(missing_ok=True)
    if cand_dir.exists():
        for path in cand_dir.iterdir():
            if path.name not in planned:
                shutil.rmtree(path, ignore_errors=True)

    results: dict[str, dict[str, Any]] = {}
    executed: list[str] = []
    reused: list[str] = []
    todo: list[tuple[RunSpec, str]] = []
    for spec in runs:
        fp = _fingerprint(
            params, spec, data[spec.setting].manifest, encoder_sha256(models_dir, spec.init)
        )
        old = _load_result(runs_dir / f"{spec.key}.json")
        fresh = old is not None and old.get("fingerprint") == fp
        if fresh and _is_candidate(params, spec) and not (cand_dir / spec.key).is_dir():
            fresh = False  # its exported weights are gone: train it again
        if fresh and old is not None:
            results[spec.key] = old
            reused.append(spec.key)
        else:
            todo.append((spec, fp))

    from contextlib import ExitStack

    with ExitStack() as stack:
        tracker = _Tracker(task, track)
        if track:
            from s2ssl.tracking import stage_run

            inputs = {d.dataset_path.name: d.dataset_path for d in data.values()}
            stack.enter_context(
                stage_run(
                    "finetune",
                    task,
                    stage=f"finetune@{task}",
                    params={
                        "seed": params.seed,
                        "holdout_region": params.holdout_region,
                        "finetune": ft.model_dump(mode="json"),
                    },
                    inputs=inputs,
                    tags={"s2ssl.task": task},
                    uri=tracking_uri,
                )
            )
        stack.enter_context(_quiet_lightning())
        cache: _FeatureCache = {}
        with progress(f"finetune {task}", len(runs)) as advance:
            advance(len(reused))
            for spec, fp in todo:
                trained = _execute(params, spec, data[spec.setting], models_dir, fp, cache)
                if _is_candidate(params, spec):
                    save_model(
                        trained.model,
                        cand_dir / spec.key,
                        {
                            "init": spec.init,
                            "fraction": spec.fraction,
                            "protocol": spec.protocol,
                            "encoder_sha256": trained.info.encoder_sha256,
                            "val_score": trained.record["val_score"],
                        },
                    )
                _save_preview(
                    runs_dir / f"{spec.key}.npz", spec, data[spec.setting].test.ids, trained.preview
                )
                write_json_atomic(runs_dir / f"{spec.key}.json", trained.record)
                tracker.child(spec, trained.record)
                results[spec.key] = trained.record
                executed.append(spec.key)
                _LOG.info(
                    "%s %s: val %.3f, test %s in %.1f s",
                    task,
                    spec.key,
                    trained.record["val_score"],
                    _headline(task, trained.record),
                    trained.record["wall_s"],
                )
                advance(1)

        candidates = [
            (results[r.key]["val_score"], r.key) for r in runs if _is_candidate(params, r)
        ]
        model_dir: Path | None = None
        selected: str | None = None
        if candidates:
            _, selected = max(candidates)
            model_dir = _export(
                task,
                cand_dir / selected,
                selected,
                results[selected],
                Path(out_dir) / task / MODEL_DIR,
                data["in_domain"].test_set_fingerprint(),
            )
            if track:
                from s2ssl.tracking import log_metrics, log_state_dict

                state = torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True)
                meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
                log_state_dict(state, "model", extra_files={"meta.json": meta})
                log_metrics(_child_metrics(results[selected]))
    return FinetuneResult(task, results, executed, reused, model_dir, selected)


def _headline(task: str, record: Mapping[str, Any]) -> str:
    spec = task_spec(task)
    return f"{spec.headline_label} {record['test'][spec.headline]:.3f}"
