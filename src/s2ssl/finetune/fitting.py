"""Fitting and scoring one fine-tuning run: the trainer settings, protocol ``finetune`` (a
trained network selected on val) and the frozen protocols ``linear`` / ``knn`` (on features
computed once per init and setting), each scored once on test."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import lightning as L
import numpy as np
import torch

from s2ssl.config import Params
from s2ssl.finetune.frozen import (
    extract_features,
    fit_linear_probe_selected,
    knn_predict,
    select_knn_k,
)
from s2ssl.finetune.inits import initial_model
from s2ssl.finetune.plan import RunSpec, fraction_label, run_seed
from s2ssl.finetune.train import fit, score
from s2ssl.taskspec import task_spec
from s2ssl.training.metrics import ClassificationMetrics
from s2ssl.training.runtime import resolve_precision

__all__ = [
    "PREVIEW_SAMPLES",
    "FeatureCache",
    "FittedRun",
    "TrainedRun",
    "execute_run",
    "fit_run",
    "trainer_kwargs",
]

PREVIEW_SAMPLES: Final[int] = 8


@dataclass
class TrainedRun:
    """A run fitted and scored: its network, init, result record and test prediction preview."""

    spec: RunSpec
    model: Any
    info: Any
    record: dict[str, Any]
    preview: np.ndarray


def trainer_kwargs(params: Params) -> dict[str, Any]:
    """Lightning ``Trainer`` settings of fine-tuning (accelerator, devices, precision, determinism)
    from the ``finetune`` section."""
    ft = params.finetune
    on_cuda = resolve_precision("auto", ft.accelerator) == "bf16-mixed"
    deterministic: bool | str = ("warn" if on_cuda else True) if ft.deterministic else False
    return {
        "accelerator": ft.accelerator,
        "devices": ft.devices,
        "precision": resolve_precision(ft.precision, ft.accelerator),
        "deterministic": deterministic,
    }


FeatureCache = dict[tuple[str, str], tuple[Any, Any, dict[str, Any]]]
"""``(init, setting) -> (model, init info, features of train / val / test)`` of frozen runs."""


def _frozen_features(
    params: Params, spec: RunSpec, data: Any, models_dir: Path, cache: FeatureCache
) -> tuple[Any, Any, dict[str, Any]]:
    """The frozen encoder of ``spec.init`` and its features of every split (computed once)."""
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

    Seeds everything from :func:`~s2ssl.finetune.plan.run_seed`, takes the run's label fraction
    of ``data.train``, builds the initial network (:func:`~s2ssl.finetune.inits.initial_model`)
    and trains it with
    :func:`~s2ssl.finetune.train.fit` and the ``finetune`` section's settings. The test split is
    not touched. Shared by the ``finetune`` stage and the Optuna objective (:mod:`s2ssl.tuning`,
    which passes its pruning callback in ``callbacks``).
    """
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


def execute_run(
    params: Params,
    spec: RunSpec,
    data: Any,
    models_dir: Path,
    fingerprint: str,
    cache: FeatureCache,
) -> TrainedRun:
    """Train (or fit the frozen protocol of) one run and score it on test."""
    ft = params.finetune
    cfg = ft.task_config(spec.task)
    seed = run_seed(params.seed, spec)
    started = time.perf_counter()
    history: list[dict[str, float]] = []
    steps = best_step = 0
    choice: dict[str, Any] | None = None
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
        val_feats, val_labels = feats["val"], data.val.label
        if spec.protocol == "linear":
            probe = fit_linear_probe_selected(
                bank, bank_labels, val_feats, val_labels, k, cfg.linear, seed
            )
            layer = probe.layer
            choice = {"linear_weight_decay": probe.weight_decay}
            model.classifier.load_state_dict(layer.state_dict())

            def classify(f: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return layer(f).argmax(1)
        else:
            knn = select_knn_k(
                bank,
                bank_labels,
                val_feats,
                val_labels,
                k,
                k_choices=cfg.knn_k_choices,
                temperature=cfg.knn_temperature,
            )
            choice = {"knn_k": knn.k}

            def classify(f: torch.Tensor) -> torch.Tensor:
                return knn_predict(
                    bank, bank_labels, f, k, k=knn.k, temperature=cfg.knn_temperature
                )

        scores: dict[str, Any] = {}
        for split, labels in (("val", data.val.label), ("test", data.test.label)):
            m = ClassificationMetrics(k, class_names=data.classes)
            pred = classify(feats[split])
            m.update(pred, labels)
            scores[split] = (m.compute(), pred)
        best_val = float(scores["val"][0][task_spec(spec.task).headline])
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
        "protocol_choice": choice,
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
    return TrainedRun(spec, model, info, record, preview)
