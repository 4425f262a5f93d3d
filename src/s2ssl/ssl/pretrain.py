"""One pre-training run: train one method with one seed (and, for CSCL stage 1, one label
subset), keep resumable checkpoints, export the encoder of the last epoch.

:func:`train_unit` runs one :class:`~s2ssl.ssl.units.PretrainUnit` of a method with Lightning
inside one MLflow run (experiment ``pretrain``, run name ``<method>/<unit>``):

1. seed everything with the unit's seed, load the method's data into memory
   (:class:`~s2ssl.ssl.datamodule.PretrainDataModule`; CSCL stage 1: only the unit's label
   subset) and build its task (:func:`~s2ssl.ssl.methods.build_task`);
2. checkpoints live in ``<out>/<method>/checkpoints/<unit>`` (a DVC ``persist`` output):
   ``last.ckpt`` after every epoch. ``run_state.json`` says whether they belong to an interrupted
   run: if so, and of the same configuration and data, the run resumes from ``last.ckpt``, so a
   killed stage continues and ends where an uninterrupted run would (CPU, fixed seed);
3. the random-init encoder's probe accuracy is measured once before training; the online kNN
   probe runs after every epoch as a **monitor only**: it reads labelled land-cover (crop-type)
   patches, so choosing a checkpoint with it would leak labels into pre-training. The exported
   encoder is the last epoch's, a choice made without labels;
4. the encoder is exported as a plain ``state_dict`` (``<out>/<method>/encoders/<unit>/
   weights.pt``) with ``meta.json`` (architecture, bands, normalisation, probe results), and as
   ``model.safetensors`` + ``config.json`` under timm / torchvision names
   (:mod:`s2ssl.models.interchange`), written atomically and logged to MLflow;
   :func:`s2ssl.models.saved.load_encoder` rebuilds it;
5. the unit's metrics and per-epoch history go to ``<checkpoints>/<unit>/result.json``, which
   the stage (:mod:`s2ssl.ssl.stage`) aggregates into the reports.

Under DDP every process runs this function (Lightning's launcher re-executes the command); only
global rank 0 opens the MLflow run and writes outputs.
"""

from __future__ import annotations

import json
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
from lightning.pytorch.callbacks import Checkpoint, RichProgressBar

from s2ssl.config import PRETRAIN_METHODS, Params, PretrainConfig
from s2ssl.io import write_json_atomic
from s2ssl.models.interchange import SAFETENSORS_FILE
from s2ssl.models.saved import ENCODER_DIR, META_FILE, WEIGHTS_FILE, encoder_dir, write_saved
from s2ssl.ssl.curves import loss_plateau
from s2ssl.ssl.datamodule import PretrainDataModule
from s2ssl.ssl.methods import build_task
from s2ssl.ssl.units import PretrainUnit
from s2ssl.tracking import lightning_logger, log_metrics, log_state_dict, stage_run
from s2ssl.training.resume import fingerprint_of, mark_finished, mark_started, resume_decision
from s2ssl.training.runtime import global_rank, quiet_lightning, resolve_precision

__all__ = [
    "CHECKPOINT_DIR",
    "HISTORY_COLUMNS",
    "LAST_CHECKPOINT",
    "RESULT_FILE",
    "RUN_STATE_FILE",
    "PretrainResult",
    "build_trainer",
    "export_encoder",
    "train_unit",
    "unit_fingerprint",
]

_LOG = logging.getLogger(__name__)

CHECKPOINT_DIR: Final[str] = "checkpoints"
LAST_CHECKPOINT: Final[str] = "last.ckpt"
RUN_STATE_FILE: Final[str] = "run_state.json"
RESULT_FILE: Final[str] = "result.json"
HISTORY_COLUMNS: Final[tuple[str, ...]] = (
    "epoch",
    "loss",
    "knn_acc",
    "embedding_std",
    "feature_std",
    "lr",
    "samples_per_s",
)


@dataclass(frozen=True)
class PretrainResult:
    """What :func:`train_unit` produced (rank 0; other DDP ranks get empty paths and metrics)."""

    method: str
    unit: str
    encoder_dir: Path
    checkpoint_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    resumed: bool
    run_id: str | None


def unit_fingerprint(
    params: Params, method: str, unit: PretrainUnit, manifests: Mapping[str, Mapping[str, Any]]
) -> str:
    """What must not change for an interrupted run to be resumed: the method's config, the
    probe, the unit (seed, label subset), the data (see :mod:`s2ssl.training.resume`)."""
    cfg: PretrainConfig = params.pretrain
    return fingerprint_of(
        {
            "method": method,
            "unit": unit.as_dict(),
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


def _finished_result(
    ckpt_dir: Path, encoder: Path, fingerprint: str
) -> tuple[dict[str, float], list[dict[str, float]]] | None:
    """``(metrics, history)`` of a finished unit of ``fingerprint`` whose encoder exists in both
    formats (``weights.pt`` and ``model.safetensors``)."""
    state = ckpt_dir / RUN_STATE_FILE
    result = ckpt_dir / RESULT_FILE
    exported = all((encoder / name).is_file() for name in (WEIGHTS_FILE, SAFETENSORS_FILE))
    if not (state.is_file() and result.is_file() and exported):
        return None  # an encoder exported before model.safetensors existed is exported again
    try:
        finished = json.loads(state.read_text(encoding="utf-8"))
        record = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if finished != {"fingerprint": fingerprint, "finished": True}:
        return None
    if record.get("fingerprint") != fingerprint:
        return None
    return dict(record["metrics"]), list(record["history"])


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
    """Write ``task``'s encoder as ``<target>/weights.pt`` (plain state_dict) + ``meta.json``,
    and ``model.safetensors`` + ``config.json`` (timm / torchvision names).

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
    write_saved(target, weights, meta, interchange=True)
    return weights, meta


def _metrics(
    history: list[dict[str, float]], random_init_acc: float, fit_wall_s: float
) -> dict[str, float]:
    """A unit's metrics. ``fit_wall_s`` sums the epochs' walls (training + probe) of the whole
    history, so a run resumed after a kill reports its total training time, not only the last
    process's (which falls back to ``fit_wall_s`` for histories without ``epoch_s``)."""
    last = history[-1] if history else {}
    speeds = [row["samples_per_s"] for row in history[1:] or history if "samples_per_s" in row]
    if history and all("epoch_s" in row for row in history):
        fit_wall_s = float(sum(row["epoch_s"] for row in history))
    final_acc = float(last.get("knn_acc", math.nan))
    return {
        "final_loss": float(last.get("loss", math.nan)),
        "final_knn_acc": final_acc,
        "max_knn_acc": float(max((row["knn_acc"] for row in history), default=math.nan)),
        "random_init_knn_acc": float(random_init_acc),
        "knn_acc_gain": float(final_acc - random_init_acc),
        "embedding_std": float(last.get("embedding_std", math.nan)),
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
    """The Lightning Trainer of ``method`` and its ``last.ckpt`` callback.

    ``last.ckpt`` is written after every epoch (the exported encoder is the last epoch's; the
    probe never selects a checkpoint). Deterministic algorithms on CPU ("warn" on CUDA), no
    validation loop, our own epoch-seeded sampler (``use_distributed_sampler=False``).
    """
    ckpt_dir = Path(checkpoint_dir)
    method_cfg = config.method_config(method)
    last = _last_checkpoint_callback(ckpt_dir / LAST_CHECKPOINT)
    callbacks: list[Any] = [last]
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
    return L.Trainer(**kwargs), last


def train_unit(
    params: Params,
    method: str,
    unit: PretrainUnit,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    progress_bar: bool = False,
    tracking_uri: str | None = None,
    trainer_overrides: Mapping[str, Any] | None = None,
    reuse_finished: bool = False,
) -> PretrainResult:
    """Pre-train one unit of ``method`` (see the module docstring) and export its encoder.

    ``reuse_finished``: return the recorded result of this unit, without training, when it
    finished before with the same fingerprint and its encoder is still there (a stage that was
    interrupted after some units finished continues with the rest).

    Args:
        params: the validated ``params.yaml``.
        method: one of :data:`~s2ssl.config.PRETRAIN_METHODS`.
        unit: the run: its replicate seed and, for CSCL stage 1, its label subset.
        data_dir: the directory of the validated datasets (``data/validated``).
        out_dir: models root (``models/pretrain``): ``<out>/<method>/encoders/<unit>`` and
            ``<out>/<method>/checkpoints/<unit>``.
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
    ckpt_dir = Path(out_dir) / method / CHECKPOINT_DIR / unit.name

    with quiet_lightning():
        L.seed_everything(unit.seed, workers=True, verbose=False)
        dm = PretrainDataModule(
            method,
            cfg,
            data_dir,
            unit.seed,
            params.holdout_region,
            label_subset=unit.subset,
            bands=params.band_names,
        )
        dm.setup("fit")
        if dm.norm_stats is None or dm.probe is None:  # pragma: no cover - setup sets both
            raise RuntimeError("the datamodule did not load its data")
        task = build_task(
            method,
            cfg,
            seed=unit.seed,
            bands=dm.bands,
            norm_stats=dm.norm_stats,
            num_dates=dm.num_dates,
        )
        task.probe_data = dm.probe
        task.channels_last = cfg.channels_last
        fingerprint = unit_fingerprint(params, method, unit, dm.manifests)
        target = encoder_dir(out_dir, method, unit.name)
        done = _finished_result(ckpt_dir, target, fingerprint) if reuse_finished else None
        if done is not None:
            _LOG.info("pretrain %s %s: reusing the finished run", method, unit.name)
            metrics, history = done
            return PretrainResult(method, unit.name, target, ckpt_dir, metrics, history, True, None)
        # Lightning's launcher starts the other ranks from trainer.fit on rank 0, i.e. after rank 0
        # has settled the checkpoint directory, so every rank reaches the same decision here
        resume = _prepare_checkpoints(ckpt_dir, fingerprint, write=rank == 0)

        if rank != 0:
            trainer, _ = build_trainer(
                cfg, method, ckpt_dir, progress_bar=progress_bar, overrides=trainer_overrides
            )
            trainer.fit(task, datamodule=dm, ckpt_path=str(resume) if resume else None)
            return PretrainResult(
                method, unit.name, Path(), ckpt_dir, {}, [], resume is not None, None
            )

        inputs = {name: path for name, path in dm.dataset_paths().items()}
        run_params = {
            "method": method,
            "unit": unit.as_dict(),
            "pretrain": cfg.stage_params(method),
        }
        with stage_run(
            "pretrain",
            f"{method}/{unit.name}",
            stage=f"pretrain@{method}" if method != "cscl" else "pretrain_cscl",
            params=run_params,
            inputs=inputs,
            tags={
                "s2ssl.method": method,
                "s2ssl.unit": unit.name,
                "s2ssl.replicate": str(unit.replicate),
                "s2ssl.resumed": str(resume is not None).lower(),
            },
            uri=tracking_uri,
        ) as run:
            trainer, _ = build_trainer(
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
            random_init = task.random_init_probe
            random_acc = random_init.knn_acc if random_init is not None else math.nan
            metrics = _metrics(history, random_acc, fit_wall_s)
            meta = {
                "epochs": len(history),
                "selection": "last epoch (the probe is a monitor: it reads labels)",
                "probe": {
                    "knn_acc": metrics["final_knn_acc"],
                    "random_init_knn_acc": random_acc,
                    "random_init_knn_acc_by_bn": {
                        name: r.knn_acc for name, r in task.random_init_probes.items()
                    },
                    "gain": metrics["knn_acc_gain"],
                    "description": dm.probe.description,
                    "k": cfg.probe.k,
                    "voting": cfg.probe.voting,
                },
                "unit": unit.as_dict(),
                "label_subset_ids": list(dm.subset_ids),
                "seed": unit.seed,
                "config": method_cfg.model_dump(mode="json"),
                "mlflow_run_id": run.run_id,
                "data_fingerprint": {
                    name: m.get("raw_fingerprint") for name, m in sorted(dm.manifests.items())
                },
            }
            weights, meta = export_encoder(task, target, meta)
            log_state_dict(weights, ENCODER_DIR, WEIGHTS_FILE, extra_files={META_FILE: meta})
            log_metrics({f"final/{k}": v for k, v in metrics.items()})
            write_json_atomic(
                ckpt_dir / RESULT_FILE,
                {"fingerprint": fingerprint, "metrics": metrics, "history": history},
            )
            mark_finished(ckpt_dir / RUN_STATE_FILE, fingerprint)
            return PretrainResult(
                method=method,
                unit=unit.name,
                encoder_dir=target,
                checkpoint_dir=ckpt_dir,
                metrics=metrics,
                history=history,
                resumed=resume is not None,
                run_id=run.run_id,
            )
