"""Supervised fine-tuning of one downstream network (Lightning) and its scoring.

:class:`FinetuneTask` trains with masked cross-entropy (pixels / scenes labelled 255 are ignored),
random flips and 90° rotations applied jointly to images and label maps, AdamW (pre-trained
weights may get a scaled learning rate) and either a cosine schedule over the step budget or,
for CSCL stage 2, the paper's exponential decay per epoch started afresh (Tarasiou et al.
2021/22). A multi-label scene network (:class:`~s2ssl.models.downstream.MultilabelSceneNet`)
trains with binary cross-entropy on its logits, one sigmoid per class. It is validated every
``val_every`` steps; the state with the best validation score (the task's headline: mIoU for
segmentation, balanced accuracy for scenes, micro mAP for multi-label scenes) is kept in memory
and is what :func:`fit` returns.
:func:`predict` and :func:`score` apply a network to a split in evaluation mode.

A time-series network takes a fixed number of dates: training feeds it a random subset of each
series' real dates, drawn per sample at every step from a generator seeded with the run's seed
and the step; validation and :func:`predict` the evenly spread dates
(:func:`~s2ssl.data.temporal.select_dates`). Series of exactly that length pass unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import CroptypeFinetune
from s2ssl.config import SupervisedTraining as TrainingConfig
from s2ssl.data.temporal import select_dates
from s2ssl.data.tensors import EpochBatchSampler, TensorDictDataset
from s2ssl.finetune.data import TaskSplit
from s2ssl.models.downstream import (
    DownstreamNet,
    MultilabelSceneNet,
    SceneNet,
    TimeSeriesSegmentationNet,
)
from s2ssl.seeding import derive_seed
from s2ssl.taskspec import task_spec
from s2ssl.training.metrics import ClassificationMetrics, MetricValue, SegmentationMetrics
from s2ssl.training.multilabel_metrics import MultilabelMetrics

__all__ = [
    "FinetuneTask",
    "FitResult",
    "NonFiniteLossError",
    "fit",
    "flip_rot90",
    "predict",
    "score",
    "step_budget",
    "val_metric",
]


class NonFiniteLossError(ValueError):
    """The training loss became NaN / inf (typically a learning rate that is too high)."""


def step_budget(cfg: TrainingConfig) -> int:
    """Optimiser steps of a run: ``cfg.steps`` rounded up to a multiple of ``val_every`` (so the
    last step is validated), the same at every label fraction."""
    return math.ceil(cfg.steps / cfg.val_every) * cfg.val_every


def flip_rot90(
    image: Tensor, label: Tensor | None, generator: torch.Generator, *, flip: bool, rot90: bool
) -> tuple[Tensor, Tensor | None]:
    """The same random horizontal flip and k·90° rotation for each image and its label map.

    ``image``: ``[B, ..., H, W]``; ``label``: ``[B, H, W]`` (transformed alike) or ``[B]`` /
    ``None`` (left alone). Square images only when ``rot90``.
    """
    b = image.shape[0]
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    turns = (
        torch.randint(0, 4, (b,), generator=generator)
        if rot90
        else torch.zeros(b, dtype=torch.long)
    )
    spatial_label = label is not None and label.ndim == 3
    images, labels = [], []
    for i in range(b):
        x = image[i]
        y = label[i] if spatial_label and label is not None else None
        if bool(flips[i]):
            x = x.flip(-1)
            y = y.flip(-1) if y is not None else None
        k = int(turns[i])
        if k:
            x = torch.rot90(x, k, dims=(-2, -1))
            y = torch.rot90(y, k, dims=(-2, -1)) if y is not None else None
        images.append(x)
        if y is not None:
            labels.append(y)
    out_label = torch.stack(labels) if spatial_label else label
    return torch.stack(images), out_label


def _crop(
    image: Tensor, label: Tensor, size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    h, w = label.shape[-2:]
    if size >= min(h, w):
        return image, label
    top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
    return (
        image[..., top : top + size, left : left + size],
        label[..., top : top + size, left : left + size],
    )


def _forward(model: DownstreamNet, x: Tensor, doy: Tensor) -> Tensor:
    """Logits of ``model`` for reflectance ``x`` ``[B, T, C, H, W]``."""
    if isinstance(model, TimeSeriesSegmentationNet):
        return model(x, doy)
    return model(x[:, 0])


class FinetuneTask(L.LightningModule):
    """Fine-tune ``model`` (see the module docstring).

    Args:
        model: the network (its ``bands`` are selected by name from the bands in memory).
        cfg: the task's training settings.
        steps: optimiser steps of the run (the cosine schedule's length).
        seed: seeds augmentation draws (with the global step).
        pretrained: state-dict keys holding pre-trained weights (lr × ``encoder_lr_scale``).
        num_classes: number of classes (labels 255 are ignored).
    """

    def __init__(
        self,
        model: DownstreamNet,
        cfg: TrainingConfig,
        *,
        steps: int,
        seed: int,
        pretrained: Sequence[str] = (),
        band_indices: Sequence[int],
    ) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.steps = int(steps)
        self.seed = int(seed)
        self.pretrained = frozenset(pretrained)
        self.band_indices = list(band_indices)
        self.segmentation = not isinstance(model, SceneNet)
        self.best_score = -math.inf
        self.best_step = -1
        self.best_state: dict[str, Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self._metrics = _metrics_for(model)
        self._train_loss: list[float] = []

    def _inputs(
        self, batch: dict[str, Tensor], dates: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Reflectance of the model's bands and the day of year; a time-series model's dates
        are selected first (``dates``: the training draw; ``None``: the even spread)."""
        image, doy = batch["image"], batch["doy"]
        if isinstance(self.model, TimeSeriesSegmentationNet):
            image, doy = select_dates(image, doy, batch.get("n_dates"), self.model.timesteps, dates)
        x = image[:, :, self.band_indices].float() * 1e-4
        return x, doy

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.global_step, 0xF17E))
        dates = torch.Generator().manual_seed(derive_seed(self.seed, self.global_step, 0xDA7E))
        x, doy = self._inputs(batch, dates)
        label = batch["label"]
        crop = self.cfg.crop_size
        if crop is not None and label.ndim == 3:
            x, label = _crop(x, label, crop, g)
        x, out = flip_rot90(x, label, g, flip=self.cfg.flip, rot90=self.cfg.rot90)
        label = out if out is not None else label
        logits = _forward(self.model, x, doy)
        if isinstance(self.model, MultilabelSceneNet):
            loss = F.binary_cross_entropy_with_logits(logits, label.float())
        else:
            loss = F.cross_entropy(logits, label, ignore_index=LABEL_IGNORE)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite fine-tuning loss at step {self.global_step}; lower the lr "
                f"(now {self.cfg.lr}) or check the input data"
            )
        self._train_loss.append(float(loss.detach()))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        x, doy = self._inputs(batch)
        self._metrics.update(_decide(self.model, _forward(self.model, x, doy)), batch["label"])

    def on_validation_epoch_start(self) -> None:
        self._metrics.reset()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        values = self._metrics.compute()
        key = val_metric(self.model)
        value = float(values[key])  # type: ignore[arg-type]
        loss = sum(self._train_loss) / len(self._train_loss) if self._train_loss else math.nan
        self._train_loss.clear()
        self.history.append(
            {"step": float(self.global_step), "train_loss": loss, f"val_{key}": value}
        )
        self.log(f"val/{key}", value, prog_bar=True)
        if value > self.best_score:
            self.best_score = value
            self.best_step = int(self.global_step)
            self.best_state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            )

    def configure_optimizers(self) -> Any:
        scaled, plain = [], []
        for name, p in self.named_parameters():
            (scaled if name.removeprefix("model.") in self.pretrained else plain).append(p)
        groups = [{"params": plain, "lr": self.cfg.lr}]
        if scaled:
            groups.append({"params": scaled, "lr": self.cfg.lr * self.cfg.encoder_lr_scale})
        optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if isinstance(self.cfg, CroptypeFinetune):
            decay, every = self.cfg.lr_decay, self.cfg.lr_decay_every

            def factor(step: int) -> float:
                return decay ** (step // every)
        else:
            total = self.steps

            def factor(step: int) -> float:
                return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def val_metric(model: DownstreamNet) -> str:
    """The validation score that selects a fine-tuned state: the task's headline, ``miou``
    (segmentation), ``balanced_accuracy`` (scenes) or ``map_micro`` (multi-label scenes);
    :class:`FinetuneTask` logs it as ``val/<name>``."""
    if isinstance(model, MultilabelSceneNet):
        return task_spec("multilabel").headline
    return task_spec("scene").headline if isinstance(model, SceneNet) else "miou"


def _decide(model: DownstreamNet, logits: Tensor) -> Tensor:
    """What the metrics score: class probabilities ``[N, K]`` (multi-label) or the arg-max."""
    if isinstance(model, MultilabelSceneNet):
        return torch.sigmoid(logits.float())
    return logits.argmax(1)


def _metrics_for(
    model: DownstreamNet,
) -> SegmentationMetrics | ClassificationMetrics | MultilabelMetrics:
    k = len(model.classes)
    if isinstance(model, MultilabelSceneNet):
        return MultilabelMetrics(k, class_names=model.classes)
    if isinstance(model, SceneNet):
        return ClassificationMetrics(k, class_names=model.classes)
    return SegmentationMetrics(
        k, class_names=model.classes, boundary=isinstance(model, TimeSeriesSegmentationNet)
    )


def _split_tensors(split: TaskSplit) -> dict[str, Tensor]:
    tensors = {"image": split.image, "doy": split.doy, "label": split.label}
    if split.n_dates is not None:
        tensors["n_dates"] = split.n_dates
    return tensors


@dataclass(frozen=True)
class FitResult:
    """The outcome of :func:`fit`: the best state is loaded into ``model``."""

    steps: int
    best_step: int
    best_val: float
    history: list[dict[str, float]]


def fit(
    model: DownstreamNet,
    train: TaskSplit,
    val: TaskSplit,
    cfg: TrainingConfig,
    *,
    seed: int,
    pretrained: Sequence[str] = (),
    trainer_kwargs: dict[str, Any] | None = None,
    eval_batch_size: int = 64,
    callbacks: Sequence[L.Callback] = (),
) -> FitResult:
    """Fine-tune ``model`` on ``train`` with validation on ``val``; load the best state into it.

    ``callbacks`` are extra Lightning callbacks (e.g. the Optuna pruning callback of
    :mod:`s2ssl.tuning`); the validation score is logged as ``val/miou`` (segmentation) or
    ``val/balanced_accuracy`` (scenes) every ``cfg.val_every`` steps.
    """
    if len(train) == 0:
        raise ValueError("the training subset is empty; raise finetune.min_train_samples")
    band_indices = train.band_indices(model.bands)
    if val.bands != train.bands:
        raise ValueError(f"train and val hold different bands ({train.bands} vs {val.bands})")
    steps = step_budget(cfg)
    task = FinetuneTask(
        model,
        cfg,
        steps=steps,
        seed=seed,
        pretrained=pretrained,
        band_indices=band_indices,
    )
    sampler = EpochBatchSampler(len(train), cfg.batch_size, seed, drop_last=True)
    train_loader = DataLoader(
        TensorDictDataset(_split_tensors(train)), sampler=sampler, batch_size=None
    )
    val_loader = DataLoader(
        TensorDictDataset(_split_tensors(val)),
        sampler=EpochBatchSampler(len(val), eval_batch_size, seed, shuffle=False, drop_last=False),
        batch_size=None,
    )
    kwargs: dict[str, Any] = {
        "max_steps": steps,
        "max_epochs": -1,
        "val_check_interval": cfg.val_every,
        "check_val_every_n_epoch": None,
        "num_sanity_val_steps": 0,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "logger": False,
        "enable_progress_bar": False,
        "use_distributed_sampler": False,
        "log_every_n_steps": max(1, min(10, steps)),
        "callbacks": list(callbacks),
    }
    kwargs.update(trainer_kwargs or {})
    trainer = L.Trainer(**kwargs)
    trainer.fit(task, train_dataloaders=train_loader, val_dataloaders=val_loader)
    if task.best_state is None:
        raise ValueError(
            f"fine-tuning ran {trainer.global_step} steps without a validation pass "
            f"(val_every={cfg.val_every}); lower finetune val_every"
        )
    model.load_state_dict(task.best_state)
    model.eval()
    return FitResult(steps, task.best_step, task.best_score, list(task.history))


def _batches(n: int, size: int) -> Iterator[slice]:
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


@torch.no_grad()
def predict(
    model: DownstreamNet,
    split: TaskSplit,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Predicted labels of every sample (``[n, H, W]`` or ``[n]``), in evaluation mode; for a
    multi-label network the class probabilities ``[n, K]`` (float); a time-series model sees
    each series' evenly spread dates (:func:`~s2ssl.data.temporal.select_dates`)."""
    band_indices = split.band_indices(model.bands)
    was_training = model.training
    model.eval().to(device)
    out = []
    for sl in _batches(len(split), batch_size):
        image, doy = split.image[sl], split.doy[sl]
        if isinstance(model, TimeSeriesSegmentationNet):
            lengths = None if split.n_dates is None else split.n_dates[sl]
            image, doy = select_dates(image, doy, lengths, model.timesteps)
        x = image[:, :, band_indices].float().to(device) * 1e-4
        out.append(_decide(model, _forward(model, x, doy.to(device))).cpu())
    model.train(was_training)
    if out:
        return torch.cat(out)
    if isinstance(model, MultilabelSceneNet):
        return torch.zeros((0, len(model.classes)))
    return torch.zeros((0,), dtype=torch.long)


def score(
    model: DownstreamNet, split: TaskSplit, *, batch_size: int = 64
) -> tuple[dict[str, MetricValue], Tensor]:
    """``(metrics, predictions)`` of ``model`` on ``split`` (:mod:`s2ssl.training.metrics`)."""
    preds = predict(model, split, batch_size=batch_size)
    metrics = _metrics_for(model)
    metrics.update(preds, split.label)
    return metrics.compute(), preds
