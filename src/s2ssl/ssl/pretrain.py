"""The ``pretrain`` stage: train one method, keep resumable checkpoints, export the encoder.

:func:`pretrain` runs one method of ``params.pretrain`` with Lightning inside one
MLflow run (:func:`s2ssl.tracking.stage_run`, experiment ``pretrain``, run name = method):

1. seed everything (``params.seed``), load the method's data into memory
   (:class:`~s2ssl.ssl.datamodule.PretrainDataModule`) and build its task
   (:func:`~s2ssl.ssl.methods.build_task`);
2. checkpoints live in ``<out>/<method>/checkpoints`` (a DVC ``persist`` output): ``last.ckpt``
   after every epoch, ``best-<epoch>.ckpt`` for the best online kNN probe accuracy (never the
   SSL loss). ``run_state.json`` says whether they belong to an interrupted run: if so, and of
   the same configuration and data, the run resumes from ``last.ckpt``, so ``dvc repro`` after a
   kill continues and ends where an uninterrupted run would (CPU, fixed seed). Checkpoints of a
   run that finished are never reused: DVC runs the stage again only when something it depends
   on changed, so training starts over (:mod:`s2ssl.training.resume`);
3. the random-init encoder's probe accuracy is measured once before training (every gain is
   measured);
4. the encoder of the best checkpoint is exported as a plain ``state_dict``
   (``<out>/<method>/encoder/weights.pt``) with ``meta.json`` (architecture, bands,
   normalisation, probe results), written atomically and logged to MLflow;
   :func:`s2ssl.models.saved.load_encoder` rebuilds it (``torch.load(weights_only=True)``);
5. ``<reports>/<method>/metrics.json`` (flat, DVC metrics), ``history.csv`` (per epoch, DVC
   plots) and ``curves.png`` (loss and probe per epoch) are written atomically.

Under DDP every process runs this function (Lightning's launcher re-executes the command); only
global rank 0 opens the MLflow run and writes outputs.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, RichProgressBar

from s2ssl.config import PRETRAIN_METHODS, Params, PretrainConfig
from s2ssl.io import write_json_atomic, write_text_atomic
from s2ssl.models.saved import ENCODER_DIR, META_FILE, WEIGHTS_FILE, encoder_dir, write_saved
from s2ssl.ssl.curves import curves_png, loss_plateau
from s2ssl.ssl.datamodule import PretrainDataModule
from s2ssl.ssl.methods import build_task
from s2ssl.tracking import lightning_logger, log_metrics, log_state_dict, stage_run
from s2ssl.training.resume import fingerprint_of, mark_finished, mark_started, resume_decision
from s2ssl.training.runtime import global_rank, quiet_lightning, resolve_precision

__all__ = [
    "CHECKPOINT_DIR",
    "LAST_CHECKPOINT",
    "PretrainResult",
    "build_trainer",
    "export_encoder",
    "pretrain",
]

_LOG = logging.getLogger(__name__)

CHECKPOINT_DIR: Final[str] = "checkpoints"
LAST_CHECKPOINT: Final[str] = "last.ckpt"
RUN_STATE_FILE: Final[str] = "run_state.json"
HISTORY_COLUMNS: Final[tuple[str, ...]] = (
    "epoch",
    "loss",
    "knn_acc",
    "embedding_std",
    "feature_std",
    "lr",
    "samples_per_s",
)
MONITOR: Final[str] = "probe/knn_acc"


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`pretrain` produced (rank 0; other DDP ranks get empty paths and metrics)."""

    method: str
    encoder_dir: Path
    checkpoint_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    best_checkpoint: Path | None
    resumed: bool
    run_id: str | None


def _fingerprint(params: Params, method: str, manifests: Mapping[str, Mapping[str, Any]]) -> str:
    """What must not change for an interrupted run to be resumed: the method's config, the
    probe, the seed, the data (see :mod:`s2ssl.training.resume`)."""
    cfg: PretrainConfig = params.pretrain
    return fingerprint_of(
        {
            "method": method,
            "seed": params.seed,
            "config": cfg.method_config(method).model_dump(mode="json"),
            "probe": cfg.probe.model_dump(mode="json"),
            "limit_train_batches": cfg.limit_train_batches,
            "holdout_region": params.holdout_region,
            "data": {
                name: {k: m.get(k) for k in ("raw_fingerprint", "n_accepted")}
                for name, m in sorted(manifests.items())
            },
        }
    )


def _prepare_checkpoints(ckpt_dir: Path, fingerprint: str, *, write: bool) -> Path | None:
    """``last.ckpt`` of an interrupted run of this configuration to resume from, or None (then
    the checkpoints left in ``ckpt_dir`` are removed and training starts over)."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state_file = ckpt_dir / RUN_STATE_FILE
    last = ckpt_dir / LAST_CHECKPOINT
    decision = resume_decision(state_file, fingerprint)
    resume = last if decision.resume and last.is_file() and _loadable(last) else None
    if resume is None and write:
        stale = sorted(ckpt_dir.glob("*.ckpt"))
        if stale:
            _LOG.info(
                "removing %d checkpoint(s) in %s (%s); pre-training starts over",
                len(stale),
                ckpt_dir,
                decision.reason,
            )
        for path in stale:
            path.unlink()
    if write:
        mark_started(state_file, fingerprint)
    return resume


def _loadable(path: Path) -> bool:
    """Whether a checkpoint file reads back (a kill during a write leaves a truncated file)."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # any failure means "cannot resume from it"
        _LOG.warning("checkpoint %s is unreadable (%s); not resuming from it", path, e)
        return False
    return True


def export_encoder(
    task: Any, target: str | Path, extra_meta: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write ``task``'s encoder as ``<target>/weights.pt`` (plain state_dict) + ``meta.json``.

    ``meta.json`` holds the method, the architecture (what
    :func:`~s2ssl.models.factory.build_encoder` needs), the
    input bands and normalisation, the training set's normalisation statistics and
    ``extra_meta``. The directory is written atomically. Returns ``(state_dict, meta)``.
    """
    encoder = task.encoder_module()
    weights = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    meta = {
        "method": task.method,
        "architecture": task.architecture(),
        "bands": list(task.bands),
        "normalization": task.normalization(),
        "norm_stats": task.norm_stats_json,
        "format": "torch state_dict; load with s2ssl.models.saved.load_encoder "
        "(torch.load(weights_only=True))",
        **dict(extra_meta or {}),
    }
    write_saved(target, weights, meta)
    return weights, meta


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(HISTORY_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, math.nan) for k in HISTORY_COLUMNS})
    write_text_atomic(path, buffer.getvalue())


def _metrics(
    history: list[dict[str, float]],
    best_acc: float,
    best_epoch: int,
    random_init_acc: float,
    fit_wall_s: float,
) -> dict[str, float]:
    """The stage's ``metrics.json``. ``fit_wall_s`` sums the epochs' walls (training + probe) of
    the whole history, so a run resumed after a kill reports its total training time, not only
    the last process's (which falls back to ``fit_wall_s`` for histories without ``epoch_s``)."""
    last = history[-1] if history else {}
    speeds = [row["samples_per_s"] for row in history[1:] or history if "samples_per_s" in row]
    if history and all("epoch_s" in row for row in history):
        fit_wall_s = float(sum(row["epoch_s"] for row in history))
    return {
        "final_loss": float(last.get("loss", math.nan)),
        "best_knn_acc": float(best_acc),
        "final_knn_acc": float(last.get("knn_acc", math.nan)),
        "random_init_knn_acc": float(random_init_acc),
        "knn_acc_gain": float(best_acc - random_init_acc),
        "embedding_std": float(last.get("embedding_std", math.nan)),
        "best_epoch": int(best_epoch),
        "epochs": len(history),
        "samples_per_s": float(statistics.median(speeds)) if speeds else math.nan,
        "fit_wall_s": float(fit_wall_s),
        "loss_drop_last_third": float(loss_plateau(history)),
    }


def _last_checkpoint_callback(path: Path) -> Any:
    """A callback saving ``path`` (``last.ckpt``) atomically at the end of every epoch.

    Lightning's ``ModelCheckpoint(save_last=True)`` only writes ``last.ckpt`` when the monitored
    metric improved; resuming needs it after every epoch. As a ``Checkpoint`` subclass it runs
    after the module's ``on_train_epoch_end`` (where the probe is logged) and after the best-model
    checkpoint, so the saved state holds this epoch's history and the best-model bookkeeping.
    The file is written under a temporary name and renamed, so a kill never leaves it truncated.
    """

    class LastCheckpoint(Checkpoint):
        def __init__(self, target: Path) -> None:
            self.target = target

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            tmp = self.target.with_name(f".{self.target.name}.tmp")
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                os.replace(tmp, self.target)
            trainer.strategy.barrier("s2ssl_last_checkpoint")

    return LastCheckpoint(path)


def build_trainer(
    config: PretrainConfig,
    method: str,
    checkpoint_dir: str | Path,
    *,
    logger: Any = False,
    progress_bar: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Any, Any]:
    """The Lightning Trainer of ``method`` and its best-model ``ModelCheckpoint``.

    Checkpoints: ``<checkpoint_dir>/best-<epoch>.ckpt`` (highest ``probe/knn_acc``, never the
    SSL loss) and ``last.ckpt`` after every epoch. Deterministic algorithms on CPU ("warn" on
    CUDA), no validation loop, our own epoch-seeded sampler (``use_distributed_sampler=False``).
    """
    ckpt_dir = Path(checkpoint_dir)
    method_cfg = config.method_config(method)
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best-{epoch:03d}",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        save_last=False,
        auto_insert_metric_name=False,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )
    callbacks: list[Any] = [best, _last_checkpoint_callback(ckpt_dir / LAST_CHECKPOINT)]
    if progress_bar:
        callbacks.append(RichProgressBar(leave=True))
    on_cuda = resolve_precision("auto", config.accelerator) == "bf16-mixed"
    kwargs: dict[str, Any] = {
        "accelerator": config.accelerator,
        "devices": config.devices,
        "strategy": config.strategy,
        "num_nodes": config.num_nodes,
        "precision": resolve_precision(config.precision, config.accelerator),
        "max_epochs": method_cfg.max_epochs,
        "limit_train_batches": config.limit_train_batches,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "deterministic": ("warn" if on_cuda else True) if config.deterministic else False,
        "benchmark": False,
        "callbacks": callbacks,
        "enable_progress_bar": progress_bar,
        "enable_model_summary": False,
        "log_every_n_steps": config.log_every_n_steps,
        "use_distributed_sampler": False,
        "default_root_dir": str(ckpt_dir),
        "logger": logger,
    }
    kwargs.update(overrides or {})
    return L.Trainer(**kwargs), best


def pretrain(
    params: Params,
    method: str,
    data_dir: str | Path,
    out_dir: str | Path,
    reports_dir: str | Path,
    *,
    progress_bar: bool = False,
    tracking_uri: str | None = None,
    trainer_overrides: Mapping[str, Any] | None = None,
) -> PretrainResult:
    """Pre-train ``method`` (see the module docstring) and export its encoder.

    Args:
        params: the validated ``params.yaml``.
        method: one of :data:`~s2ssl.config.PRETRAIN_METHODS`.
        data_dir: the directory of the validated datasets (``data/validated``).
        out_dir: models root (``models/pretrain``): ``<out>/<method>/{encoder,checkpoints}``.
        reports_dir: reports root (``reports/pretrain``): ``<reports>/<method>/{metrics.json,
            history.csv}``.
        progress_bar: show Lightning's (rich) progress bar.
        tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI`` / the project's).
        trainer_overrides: extra ``lightning.Trainer`` keyword arguments (tests, benchmarks).

    Raises:
        ValueError: unknown method, missing / unusable data, inconsistent configuration.
    """
    if method not in PRETRAIN_METHODS:
        raise ValueError(
            f"unknown pre-training method {method!r}; choose one of {list(PRETRAIN_METHODS)}"
        )
    cfg = params.pretrain
    method_cfg = cfg.method_config(method)
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)
    rank = global_rank()
    out = Path(out_dir) / method
    ckpt_dir = out / CHECKPOINT_DIR
    reports = Path(reports_dir) / method

    with quiet_lightning():
        L.seed_everything(params.seed, workers=True, verbose=False)
        dm = PretrainDataModule(method, cfg, data_dir, params.seed, params.holdout_region)
        dm.setup("fit")
        if dm.norm_stats is None or dm.probe is None:  # pragma: no cover - setup sets both
            raise RuntimeError("the datamodule did not load its data")
        task = build_task(
            method,
            cfg,
            seed=params.seed,
            bands=dm.bands,
            norm_stats=dm.norm_stats,
            num_dates=dm.num_dates,
        )
        task.probe_data = dm.probe
        task.channels_last = cfg.channels_last
        fingerprint = _fingerprint(params, method, dm.manifests)
        # Lightning's launcher starts the other ranks from trainer.fit on rank 0, i.e. after rank 0
        # has settled the checkpoint directory, so every rank reaches the same decision here
        resume = _prepare_checkpoints(ckpt_dir, fingerprint, write=rank == 0)

        if rank != 0:
            trainer, _ = build_trainer(
                cfg, method, ckpt_dir, progress_bar=progress_bar, overrides=trainer_overrides
            )
            trainer.fit(task, datamodule=dm, ckpt_path=str(resume) if resume else None)
            return PretrainResult(method, Path(), ckpt_dir, {}, [], None, resume is not None, None)

        inputs = {name: path for name, path in dm.dataset_paths().items()}
        run_params = {
            "seed": params.seed,
            "method": method,
            "pretrain": cfg.stage_params(method),
        }
        with stage_run(
            "pretrain",
            method,
            stage=f"pretrain@{method}",
            params=run_params,
            inputs=inputs,
            tags={"s2ssl.method": method, "s2ssl.resumed": str(resume is not None).lower()},
            uri=tracking_uri,
        ) as run:
            trainer, checkpoint = build_trainer(
                cfg,
                method,
                ckpt_dir,
                logger=lightning_logger(run),
                progress_bar=progress_bar,
                overrides=trainer_overrides,
            )
            started = time.perf_counter()
            trainer.fit(task, datamodule=dm, ckpt_path=str(resume) if resume else None)
            fit_wall_s = time.perf_counter() - started

            history = list(task.history)
            if not history:
                raise ValueError(
                    f"pre-training {method} ran no epoch (max_epochs={method_cfg.max_epochs}); "
                    "nothing to export"
                )
            best_path = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
            if best_path is None or not best_path.is_file():
                best_path = ckpt_dir / LAST_CHECKPOINT
            state = torch.load(best_path, map_location="cpu", weights_only=True)
            task.load_state_dict(state["state_dict"])
            best_epoch = int(state.get("epoch", len(history) - 1))
            best_acc = max(row["knn_acc"] for row in history)
            score = checkpoint.best_model_score
            if score is not None:
                best_acc = float(score)
            random_init = task.random_init_probe
            random_acc = random_init.knn_acc if random_init is not None else math.nan
            metrics = _metrics(history, best_acc, best_epoch, random_acc, fit_wall_s)

            meta = {
                "best_epoch": best_epoch,
                "epochs": len(history),
                "probe": {
                    "knn_acc": best_acc,
                    "random_init_knn_acc": random_acc,
                    "random_init_knn_acc_by_bn": {
                        name: r.knn_acc for name, r in task.random_init_probes.items()
                    },
                    "gain": metrics["knn_acc_gain"],
                    "description": dm.probe.description,
                    "k": cfg.probe.k,
                    "voting": cfg.probe.voting,
                },
                "seed": params.seed,
                "config": method_cfg.model_dump(mode="json"),
                "mlflow_run_id": run.run_id,
            }
            target = encoder_dir(out_dir, method)
            weights, meta = export_encoder(task, target, meta)
            log_state_dict(weights, ENCODER_DIR, WEIGHTS_FILE, extra_files={META_FILE: meta})
            log_metrics({f"final/{k}": v for k, v in metrics.items()})
            reports.mkdir(parents=True, exist_ok=True)
            write_json_atomic(reports / "metrics.json", metrics)
            _write_history(reports / "history.csv", history)
            curves_png(method, history, reports / "curves.png")
            mark_finished(ckpt_dir / RUN_STATE_FILE, fingerprint)
            return PretrainResult(
                method=method,
                encoder_dir=target,
                checkpoint_dir=ckpt_dir,
                metrics=metrics,
                history=history,
                best_checkpoint=best_path,
                resumed=resume is not None,
                run_id=run.run_id,
            )
