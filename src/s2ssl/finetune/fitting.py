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

from s2ssl.config import RANDOM_INITS, Params
from s2ssl.data.temporal import temporal_sampling
from s2ssl.finetune.frozen import (
    extract_features,
    fit_linear_probe_selected,
    knn_multilabel_predict,
    knn_predict,
    select_knn_k,
)
from s2ssl.finetune.inits import initial_model
from s2ssl.finetune.plan import (
    RunSpec,
    encoder_unit,
    fraction_label,
    replicate_seed_of,
    run_seed,
)
from s2ssl.finetune.train import fit, score
from s2ssl.models.downstream import TimeSeriesSegmentationNet
from s2ssl.stats.confusion import per_sample_confusion
from s2ssl.taskspec import task_spec
from s2ssl.training.labels import boundary_mask
from s2ssl.training.metrics import ClassificationMetrics
from s2ssl.training.multilabel_metrics import MULTILABEL_THRESHOLD, MultilabelMetrics
from s2ssl.training.runtime import resolve_precision

__all__ = [
    "PREVIEW_SAMPLES",
    "FeatureCache",
    "FittedRun",
    "TrainedRun",
    "execute_run",
    "fit_run",
    "model_dates",
    "ranking_samples",
    "test_sample_confusions",
    "trainer_kwargs",
]

PREVIEW_SAMPLES: Final[int] = 8


@dataclass
class TrainedRun:
    """A run fitted and scored: its network, init, result record, test prediction preview and
    per-test-sample confusion matrices (:func:`test_sample_confusions`)."""

    spec: RunSpec
    model: Any
    info: Any
    record: dict[str, Any]
    preview: np.ndarray
    samples: dict[str, np.ndarray]


def model_dates(model: Any) -> dict[str, Any] | None:
    """How a time-series network's dates are chosen (:func:`~s2ssl.data.temporal.temporal_sampling`
    of its number of dates); ``None`` for a single-date network. Part of the run record and of
    the saved model's ``meta.json``."""
    if isinstance(model, TimeSeriesSegmentationNet):
        return temporal_sampling(model.timesteps)
    return None


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


FeatureCache = dict[tuple[str, str, int], tuple[Any, Any, dict[str, Any]]]
"""``(init, setting, replicate) -> (model, init info, features of train / val / test)`` of
frozen runs."""


def _frozen_features(
    params: Params, spec: RunSpec, data: Any, models_dir: Path, cache: FeatureCache
) -> tuple[Any, Any, dict[str, Any]]:
    """The frozen encoder of ``spec.init`` and its features of every split (computed once)."""
    key = (spec.init, spec.setting, spec.replicate)
    if key not in cache:
        for old in [k for k in cache if k[2] != spec.replicate]:
            del cache[old]  # one replicate's features at a time
        frozen = RunSpec(spec.task, spec.setting, spec.init, "frozen", 1.0, spec.replicate)
        torch.manual_seed(run_seed(params, frozen))
        model, info = initial_model(
            spec.task, spec.init, params, data, models_dir, encoder_unit(spec)
        )
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
    of ``data.train`` (drawn with the replicate's seed), builds the initial network
    (:func:`~s2ssl.finetune.inits.initial_model`, the encoder of the run's replicate)
    and trains it with
    :func:`~s2ssl.finetune.train.fit` and the ``finetune`` section's settings. The test split is
    not touched. Shared by the ``finetune`` stage and the Optuna objective (:mod:`s2ssl.tuning`,
    which passes its pruning callback in ``callbacks``).
    """
    if spec.protocol != "finetune":
        raise ValueError(f"fit_run trains protocol 'finetune' runs, not {spec.protocol!r}")
    ft = params.finetune
    seed = run_seed(params, spec)
    L.seed_everything(seed, workers=True, verbose=False)
    train = data.train.subset(_positions(params, spec, data))
    model, info = initial_model(spec.task, spec.init, params, data, models_dir, encoder_unit(spec))
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


def _positions(params: Params, spec: RunSpec, data: Any) -> np.ndarray:
    """The run's label subset of ``data.train``: drawn with its replicate's seed."""
    seed = replicate_seed_of(params, spec.replicate)
    return data.fraction_positions(spec.fraction, seed, params.finetune.min_train_samples)


def test_sample_confusions(
    task: str, preds: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[str, np.ndarray]:
    """Per-test-sample confusion matrices ``(n, K, K)`` (rows truth, columns prediction), the
    raw material of every bootstrap: ``all`` pixels / tiles; crop type also ``boundary`` and
    ``interior`` pixels (:func:`~s2ssl.training.labels.boundary_mask`, CSCL's evaluation)."""
    pred, target = preds.numpy(), labels.numpy()
    out = {"all": per_sample_confusion(pred, target, num_classes)}
    if task == "croptype":
        edge = boundary_mask(labels).numpy()
        out["boundary"] = per_sample_confusion(pred, target, num_classes, mask=edge)
        out["interior"] = per_sample_confusion(pred, target, num_classes, mask=~edge)
    return out


def ranking_samples(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-test-sample results of a multi-label run, ``all``: float32 ``(n, 2, K)``, each test
    image's class scores (row 0, in ``[0, 1]``) and multi-hot truth (row 1). Ranking scores (AP)
    are not sums over samples, so a resample of the test images is scored from these rows
    (:func:`s2ssl.stats.ranking.average_precision`), not from confusion matrices."""
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(
            f"scores and labels must both be [n, K], got {tuple(scores.shape)} and "
            f"{tuple(labels.shape)}"
        )
    both = torch.stack([scores.float(), labels.float()], dim=1)
    return {"all": both.numpy().astype(np.float32)}


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
    seed = run_seed(params, spec)
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
        positions = _positions(params, spec, data)
        train = data.train.subset(positions)
        model, info, feats = _frozen_features(params, spec, data, models_dir, cache)
        k = len(data.classes)
        multilabel = task_spec(spec.task).is_multilabel
        bank = feats["train"][torch.as_tensor(positions)]
        bank_labels = train.label
        val_feats, val_labels = feats["val"], data.val.label
        if spec.protocol == "linear":
            probe = fit_linear_probe_selected(
                bank, bank_labels, val_feats, val_labels, k, cfg.linear, seed, multilabel=multilabel
            )
            layer = probe.layer
            choice = {"linear_weight_decay": probe.weight_decay}
            model.classifier.load_state_dict(layer.state_dict())

            def classify(f: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    logits = layer(f)
                    return torch.sigmoid(logits) if multilabel else logits.argmax(1)
        else:
            knn = select_knn_k(
                bank,
                bank_labels,
                val_feats,
                val_labels,
                k,
                k_choices=cfg.knn_k_choices,
                temperature=cfg.knn_temperature,
                multilabel=multilabel,
            )
            choice = {"knn_k": knn.k}

            def classify(f: torch.Tensor) -> torch.Tensor:
                if multilabel:
                    return knn_multilabel_predict(
                        bank, bank_labels, f, k=knn.k, temperature=cfg.knn_temperature
                    )
                return knn_predict(
                    bank, bank_labels, f, k, k=knn.k, temperature=cfg.knn_temperature
                )

        scores: dict[str, Any] = {}
        for split, labels in (("val", data.val.label), ("test", data.test.label)):
            m: ClassificationMetrics | MultilabelMetrics
            if multilabel:
                m = MultilabelMetrics(k, class_names=data.classes)
            else:
                m = ClassificationMetrics(k, class_names=data.classes)
            pred = classify(feats[split])
            m.update(pred, labels)
            scores[split] = (m.compute(), pred)
        best_val = float(scores["val"][0][task_spec(spec.task).headline])
        test_metrics, preds = scores["test"]
    wall = time.perf_counter() - started
    published = spec.init not in RANDOM_INITS and spec.init in params.finetune.published
    own = spec.init not in RANDOM_INITS and not published
    record = {
        **asdict(spec),
        "key": spec.key,
        "arm": spec.arm,
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
        "classes": data.class_set.to_json(),
        "encoder": info.encoder,
        "encoder_sha256": info.encoder_sha256,
        "pretrain_method": spec.init if own else None,
        "encoder_unit": encoder_unit(spec) if own else None,
        "published": published,
        "load_report": info.load_report or None,
        "dates": model_dates(model),
        "history": history,
        "test": test_metrics,
        "fingerprint": fingerprint,
        "seed": seed,
    }
    if task_spec(spec.task).is_multilabel:
        # the preview holds the predicted label sets (multi-hot at the F1 threshold)
        preview = (preds[:PREVIEW_SAMPLES] >= MULTILABEL_THRESHOLD).numpy().astype(np.uint8)
        samples = ranking_samples(preds, data.test.label)
    else:
        preview = preds[:PREVIEW_SAMPLES].numpy().astype(np.uint8)
        samples = test_sample_confusions(spec.task, preds, data.test.label, len(data.classes))
    return TrainedRun(spec, model, info, record, preview, samples)
