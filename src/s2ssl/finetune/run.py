"""The ``finetune`` stage of one task: every init × protocol × label fraction × setting.

For task ``T`` (one DVC ``foreach`` item, ``finetune@T``), :func:`~s2ssl.finetune.plan.plan_runs`
lists the runs:

* ``landcover`` / ``croptype``: protocol ``finetune`` for each init in ``finetune.T.inits`` at
  each of ``finetune.fractions`` (setting ``in_domain``), and at
  ``finetune.region_transfer.fractions`` on the held-out region (setting ``transfer``);
* ``scene`` / ``multilabel``: protocols ``linear`` and ``knn`` (frozen encoder) at every
  fraction in both settings, and ``finetune`` (whole network) at ``finetune.T.finetune_fractions``
  in domain.

Each run trains on its label fraction of the train split, selects its state on the val split
and is scored **once** on the test split. Its result (test metrics with the confusion matrix,
validation curve, budget, lineage) is written to ``<reports>/T/runs/<key>.json`` and a preview
of its first test predictions to ``<key>.npz``. ``runs/`` is a DVC ``persist`` output: when
the stage was interrupted, the next execution reuses the results of the same configuration
(params, data, encoder weights) and runs the rest; results of a stage execution that finished
are never reused, since DVC runs the stage again only when something it depends on changed
(:mod:`s2ssl.training.resume`). One MLflow parent run per stage execution with one
nested run per executed run. The in-domain run with the best validation score at the largest
fraction is exported to ``<models>/T/model`` (weights + meta.json) for registration.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from s2ssl.config import Params
from s2ssl.finetune.data import load_task_data
from s2ssl.finetune.fitting import FeatureCache, execute_run
from s2ssl.finetune.plan import RunSpec, fraction_label, is_candidate, plan_runs
from s2ssl.finetune.store import (
    CANDIDATES_DIR,
    MODEL_DIR,
    RUNS_DIR,
    STAGE_STATE_FILE,
    TEST_SAMPLES_FILE,
    encoder_sha256,
    export_model,
    load_result,
    run_files,
    run_fingerprint,
    save_preview,
    save_samples,
)
from s2ssl.io import write_json_atomic
from s2ssl.models.downstream import save_model
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.taskspec import task_spec
from s2ssl.tracking import log_metrics, log_state_dict, stage_run
from s2ssl.training.resume import fingerprint_of, mark_finished, mark_started, resume_decision
from s2ssl.training.runtime import quiet_lightning

__all__ = ["FinetuneResult", "run_finetune"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`run_finetune` did."""

    task: str
    results: dict[str, dict[str, Any]]
    executed: list[str]
    reused: list[str]
    model_dir: Path | None
    selected: str | None


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
        with stage_run(
            "finetune",
            f"{self.task}/{spec.key}",
            stage=f"finetune@{self.task}",
            params={
                "task": spec.task,
                "setting": spec.setting,
                "replicate": spec.replicate,
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
        task: ``landcover``, ``croptype``, ``scene`` or ``multilabel``.
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
    spec_of_task = task_spec(task)
    ft = params.finetune
    if ft.torch_threads is not None:
        torch.set_num_threads(ft.torch_threads)
    runs = plan_runs(params, task)
    models_dir = Path(pretrain_dir)
    runs_dir = Path(reports_dir) / task / RUNS_DIR
    cand_dir = Path(out_dir) / task / CANDIDATES_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    settings = dict.fromkeys(r.setting for r in runs)
    tile = ft.scene.tile_size if spec_of_task.is_scene_level else None
    data = {
        s: load_task_data(task, data_dir, s, params.holdout_region, scene_tile=tile)
        for s in settings
    }

    fingerprints = {
        spec.key: run_fingerprint(
            params,
            spec,
            data[spec.setting].manifest,
            encoder_sha256(models_dir, spec, params.finetune.published),
        )
        for spec in runs
    }
    state_file = runs_dir / STAGE_STATE_FILE
    stage_fp = fingerprint_of(fingerprints)
    decision = resume_decision(state_file, stage_fp)
    # results of another run of the stage are never reused: only an interrupted run's are
    keep = {r.key for r in runs} if decision.resume else set()
    kept_files = {name for key in keep for name in run_files(key)}
    for path in [*runs_dir.glob("*.json"), *runs_dir.glob("*.npz")]:
        if path.name not in kept_files:
            path.unlink()
    if cand_dir.exists():
        for path in cand_dir.iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
    _LOG.info("finetune %s: %s", task, decision.reason)
    mark_started(state_file, stage_fp)

    results: dict[str, dict[str, Any]] = {}
    executed: list[str] = []
    reused: list[str] = []
    todo: list[tuple[RunSpec, str]] = []
    for spec in runs:
        fp = fingerprints[spec.key]
        old = load_result(runs_dir / f"{spec.key}.json")
        fresh = old is not None and old.get("fingerprint") == fp
        fresh = fresh and (runs_dir / f"{spec.key}.samples.npz").is_file()
        if fresh and is_candidate(params, spec) and not (cand_dir / spec.key).is_dir():
            fresh = False  # its exported weights are gone: train it again
        if fresh and old is not None:
            results[spec.key] = old
            reused.append(spec.key)
        else:
            todo.append((spec, fp))

    with ExitStack() as stack:
        tracker = _Tracker(task, track)
        if track:
            inputs = {d.dataset_path.name: d.dataset_path for d in data.values()}
            stack.enter_context(
                stage_run(
                    "finetune",
                    task,
                    stage=f"finetune@{task}",
                    params={
                        "replicates": params.evaluate.replicates,
                        "replicate_seed": params.evaluate.replicate_seed,
                        "holdout_region": params.holdout_region,
                        "finetune": ft.stage_params(task),
                    },
                    inputs=inputs,
                    tags={"s2ssl.task": task},
                    uri=tracking_uri,
                )
            )
        stack.enter_context(quiet_lightning())
        cache: FeatureCache = {}
        with progress(f"finetune {task}", len(runs)) as advance:
            advance(len(reused))
            for spec, fp in todo:
                trained = execute_run(params, spec, data[spec.setting], models_dir, fp, cache)
                if is_candidate(params, spec):
                    save_model(
                        trained.model,
                        cand_dir / spec.key,
                        {
                            "init": spec.init,
                            "fraction": spec.fraction,
                            "protocol": spec.protocol,
                            "encoder_sha256": trained.info.encoder_sha256,
                            "val_score": trained.record["val_score"],
                            "dates": trained.record["dates"],
                        },
                    )
                test_ids = data[spec.setting].test.ids
                if is_candidate(params, spec):
                    # multi-label: per-image scores and truth, (n, 2, K), not confusion matrices
                    part = "ranking" if spec_of_task.is_multilabel else "confusion"
                    save_samples(
                        cand_dir / spec.key / TEST_SAMPLES_FILE,
                        test_ids,
                        {part: trained.samples["all"]},
                    )
                save_preview(runs_dir / f"{spec.key}.npz", spec, test_ids, trained.preview)
                save_samples(runs_dir / f"{spec.key}.samples.npz", test_ids, trained.samples)
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

        candidates = [(results[r.key]["val_score"], r.key) for r in runs if is_candidate(params, r)]
        model_dir: Path | None = None
        selected: str | None = None
        if candidates:
            _, selected = max(candidates)
            model_dir = export_model(
                task,
                cand_dir / selected,
                selected,
                results[selected],
                Path(out_dir) / task / MODEL_DIR,
                data["in_domain"].test_set_fingerprint(),
            )
            if track:
                state = torch.load(model_dir / "weights.pt", map_location="cpu", weights_only=True)
                meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
                log_state_dict(state, "model", extra_files={"meta.json": meta})
                log_metrics(_child_metrics(results[selected]))
    mark_finished(state_file, stage_fp)
    return FinetuneResult(task, results, executed, reused, model_dir, selected)


def _headline(task: str, record: Mapping[str, Any]) -> str:
    spec = task_spec(task)
    return f"{spec.headline_label} {record['test'][spec.headline]:.3f}"
