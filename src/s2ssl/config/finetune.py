"""The ``finetune`` section: the downstream tasks, label fractions and each task's training."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, field_validator, model_validator

from s2ssl.bands import resolve_bands
from s2ssl.config.common import (
    Fraction,
    PositiveInt,
    StrictModel,
    check_n_dates,
    section_json,
    unique_items,
)
from s2ssl.taskspec import TASK_NAMES

__all__ = [
    "BUILTIN_INITS",
    "FINETUNE_TASKS",
    "PUBLISHED_DIR",
    "PUBLISHED_FORMATS",
    "RANDOM_INITS",
    "CroptypeFinetune",
    "FinetuneConfig",
    "FinetuneTask",
    "ImageClassifierFinetune",
    "Init",
    "LandcoverFinetune",
    "LinearProbeConfig",
    "MultilabelFinetune",
    "PublishedWeights",
    "RegionTransferConfig",
    "ScanProtocol",
    "SceneFinetune",
    "SupervisedTraining",
]

FINETUNE_TASKS: tuple[str, ...] = TASK_NAMES
"""Downstream tasks: land-cover segmentation, crop-type segmentation from time series, scenes,
multi-label scenes."""

FinetuneTask = Literal["landcover", "croptype", "scene", "multilabel"]
Init = Literal["random", "random_b", "seco", "moco", "moco_tp", "dense", "cscl"]
"""``random``: random init; ``random_b``: random init with an independent seed stream (the A/A
control of the evaluation: random against random through the same machinery); else the encoder
of that pre-training method."""

RANDOM_INITS: tuple[str, ...] = ("random", "random_b")
BUILTIN_INITS: tuple[str, ...] = get_args(Init)
"""The inits every run knows; ``finetune.published`` adds named published encoders."""
PUBLISHED_DIR: str = "weights"
"""Where published weight files live (a DVC dependency of the finetune stages)."""
PUBLISHED_FORMATS: tuple[str, ...] = ("auto", "ssl4eo_moco", "seco", "torchgeo", "s2ssl")
ScanProtocol = Literal["linear", "knn", "finetune"]


class SupervisedTraining(StrictModel):
    """What every fine-tuning run shares: the step budget, the optimiser and the batch size.

    Every run takes the same ``steps`` optimiser steps whatever its label fraction (rounded up to
    a multiple of ``val_every``), so a 1 % run and a 100 % run get the same optimisation budget
    and differ only in their labels. The budget is calibrated so random init's validation curve
    at 100 % labels has plateaued well before the end (``s2ssl calibrate``). The model is
    evaluated on the validation split every ``val_every`` steps and the best state (validation
    metric) is the one scored on test.
    """

    steps: PositiveInt = Field(description="optimiser steps of every run (any label fraction)")
    val_every: PositiveInt = Field(description="validation every n steps")
    batch_size: PositiveInt
    lr: float = Field(gt=0, le=10)
    weight_decay: float = Field(ge=0, le=1)
    encoder_lr_scale: float = Field(
        gt=0, le=10, description="lr factor of pre-trained weights (1: same lr)"
    )
    flip: bool
    rot90: bool
    crop_size: int | None = Field(
        ge=4, description="random square training crop (None: whole patch)"
    )

    crop_multiple: ClassVar[tuple[int, str]] = (1, "")
    """``(multiple, network)``: ``crop_size`` must be a multiple of it (the network's stride)."""

    @field_validator("inits", check_fields=False)
    @classmethod
    def _inits(cls, v: list[str]) -> list[str]:
        return unique_items(v, "inits")

    @field_validator("crop_size")
    @classmethod
    def _crop_multiple(cls, v: int | None) -> int | None:
        multiple, network = cls.crop_multiple
        if v is not None and v % multiple:
            raise ValueError(f"must be divisible by {multiple} ({network}), got {v}")
        return v


class LandcoverFinetune(SupervisedTraining):
    """Land-cover segmentation: a ResNet U-Net, fresh 1×1 classifier (Embedding Earth transfer).

    ``random`` uses ``depth`` / ``bands`` / ``feature_dim`` below; a pre-trained init brings its own
    architecture and bands (SeCo-family: the ResNet encoder, decoder random; ``dense`` and
    ``cscl`` with ``pretrain.cscl.labels: landcover``: the whole U-Net).
    """

    inits: list[str] = Field(
        min_length=1, description="built-in inits and names of finetune.published"
    )
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    feature_dim: PositiveInt = Field(description="random-init U-Net output channels")

    crop_multiple: ClassVar[tuple[int, str]] = (32, "ResNet U-Net")


class CroptypeFinetune(SupervisedTraining):
    """Crop-type segmentation from time series: CSCL stage 2 (Tarasiou et al. 2021/22).

    The 3-D U-Net backbone is reloaded from stage 1 (similarity head dropped), a fresh 1×1
    classifier is trained with masked cross-entropy (unknown pixels ignored) and the
    learning-rate schedule starts again: Adam, × ``lr_decay`` every ``lr_decay_every`` steps (the
    paper decays per epoch, lr 1e-4, batch 32; a fixed step interval keeps the schedule the same
    at every label fraction, where an epoch of 1 % labels is a single batch).

    ``n_dates`` is the number of dates ``T`` the network takes: training draws a random subset of
    ``T`` of each series' real dates at every step, validation and test take ``T`` dates spread
    evenly (:mod:`s2ssl.data.temporal`); ``null`` takes the whole series, which every sample must
    then have in full. A CSCL init must have been pre-trained with the same ``T``.
    """

    inits: list[Literal["random", "random_b", "cscl"]] = Field(min_length=1)
    features: PositiveInt = Field(description="random-init 3-D U-Net width")
    embedding_dim: PositiveInt = Field(description="random-init output channels")
    lr_decay: float = Field(gt=0, le=1, description="lr factor every lr_decay_every steps")
    lr_decay_every: PositiveInt = Field(description="steps between lr decays (about an epoch)")
    n_dates: int | None = Field(
        ge=4, description="dates the 3-D U-Net takes (null: the dataset's series length)"
    )

    crop_multiple: ClassVar[tuple[int, str]] = (4, "3-D U-Net")

    @field_validator("n_dates")
    @classmethod
    def _n_dates(cls, v: int | None) -> int | None:
        return check_n_dates(v)


class LinearProbeConfig(StrictModel):
    """Logistic regression on frozen, standardised global-pooled features (full batch).

    One probe is fitted per ``weight_decay_choices`` entry on the run's labelled train subset;
    the one with the best val headline of the task (balanced accuracy; mAP for multi-label
    scenes) is kept (ties: the larger weight decay), see
    :func:`s2ssl.finetune.frozen.fit_linear_probe_selected`.
    """

    epochs: PositiveInt
    lr: float = Field(gt=0, le=10)
    weight_decay_choices: list[float] = Field(
        min_length=1, description="AdamW weight decays tried per run, chosen on val"
    )

    @field_validator("weight_decay_choices")
    @classmethod
    def _weight_decays(cls, v: list[float]) -> list[float]:
        if any(not 0 <= w <= 10 for w in v):
            raise ValueError(f"every weight decay must lie in [0, 10], got {v}")
        return sorted(unique_items(v, "weight_decay_choices"))


class ImageClassifierFinetune(SupervisedTraining):
    """What the image-level tasks share: a ResNet encoder evaluated frozen (``linear``,
    ``knn``, their setting chosen per run on val) and fully fine-tuned (``finetune``, at
    ``finetune_fractions`` only: it costs as much as a segmentation run)."""

    inits: list[str] = Field(
        min_length=1, description="built-in inits and names of finetune.published"
    )
    protocols: list[ScanProtocol] = Field(min_length=1)
    finetune_fractions: list[Fraction]
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    linear: LinearProbeConfig
    knn_k_choices: list[PositiveInt] = Field(
        min_length=1, description="kNN neighbour counts tried per run, chosen on val"
    )
    knn_temperature: float = Field(gt=0, le=10)

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v: list[str]) -> list[str]:
        return unique_items(v, "protocols")

    @field_validator("knn_k_choices")
    @classmethod
    def _knn_k_choices(cls, v: list[int]) -> list[int]:
        return sorted(unique_items(v, "knn_k_choices"))


class SceneFinetune(ImageClassifierFinetune):
    """Scene classification (EuroSAT-like): ``tile_size`` tiles of the land-cover patches, each
    labelled with its majority land-cover class (whole 64 px patches are nearly all "cropland").

    Each encoder is evaluated frozen (``linear``: logistic regression; ``knn``: cosine kNN with
    the probe's voting, its ``k`` chosen per run on val among ``knn_k_choices`` that do not
    exceed the labelled bank, ties to the smaller ``k``) and fully fine-tuned (``finetune``:
    encoder + fresh linear layer). The full fine-tune runs at ``finetune_fractions`` only (it
    costs as much as a segmentation run).
    """

    tile_size: int = Field(ge=8, description="scene tile edge (divides the patch)")


class MultilabelFinetune(ImageClassifierFinetune):
    """Multi-label scene classification (BigEarthNet-style): every image of the ``scene``
    dataset carries a set of classes (its multi-hot ``multilabel`` array), scored by mAP.

    The protocols are the scene task's with a sigmoid per class: ``linear`` fits one logistic
    regression per class on the frozen, standardised features; ``knn`` scores a class by the
    similarity-weighted share of the ``k`` nearest labelled images that carry it; ``finetune``
    trains encoder + fresh linear layer with binary cross-entropy. Whole images are used (no
    tiles, no crop: a label set belongs to the whole image).
    """


class RegionTransferConfig(StrictModel):
    """Fine-tune and test on ``holdout_region`` (never seen in pre-training) at these fractions,
    for the inits of ``inits`` that a task lists (``None``: every init of the task)."""

    enabled: bool
    fractions: list[Fraction]
    inits: list[str] | None

    @field_validator("inits")
    @classmethod
    def _inits(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else unique_items(v, "inits")


class PublishedWeights(StrictModel):
    """A published (or earlier s2ssl) encoder used as a fine-tuning init by its name.

    ``path`` lies under ``weights/`` (a dependency of the finetune stages, so a changed file
    re-runs them). The encoder's bands are the checkpoint's (``bands`` names them in its channel
    order where the file does not); the data must hold them unless ``adapt_bands``, which
    rebuilds the first convolution for the run's bands (:mod:`s2ssl.models.published`).
    """

    path: str = Field(description="file or export directory under weights/")
    format: Literal["auto", "ssl4eo_moco", "seco", "torchgeo", "s2ssl"]
    bands: list[str] | None = Field(description="the checkpoint's bands in channel order")
    adapt_bands: bool = Field(description="adapt the first convolution to the run's bands")

    @field_validator("path")
    @classmethod
    def _under_weights(cls, v: str) -> str:
        parts = PurePosixPath(v).parts
        if PurePosixPath(v).is_absolute() or len(parts) < 2 or parts[0] != PUBLISHED_DIR:
            raise ValueError(
                f"must be a relative path under {PUBLISHED_DIR}/ (a DVC dependency of the "
                f"finetune stages), got {v!r}; copy the file to {PUBLISHED_DIR}/"
            )
        if ".." in parts:
            raise ValueError(f"must not leave {PUBLISHED_DIR}/ ('..' in {v!r})")
        return v

    @field_validator("bands")
    @classmethod
    def _known_bands(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            resolve_bands(v)
        return v


class FinetuneConfig(StrictModel):
    """``finetune`` stage: one DVC ``foreach`` item per task; inside, every init × fraction.

    ``fractions`` of the labelled train split are sampled deterministically and nested
    (1 % ⊂ 10 % ⊂ 100 %, :func:`s2ssl.data.subsets.label_fraction_subset`), stratified by the
    majority class so every class keeps a sample; at least ``min_train_samples`` are kept.
    """

    tasks: list[FinetuneTask] = Field(min_length=1)
    fractions: list[Fraction] = Field(min_length=1)
    min_train_samples: PositiveInt
    region_transfer: RegionTransferConfig
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int | Literal["auto"]
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"]
    deterministic: bool
    torch_threads: PositiveInt | None
    eval_batch_size: PositiveInt
    published: dict[str, PublishedWeights]
    landcover: LandcoverFinetune
    croptype: CroptypeFinetune
    scene: SceneFinetune
    multilabel: MultilabelFinetune

    @model_validator(mode="after")
    def _scene_crop(self) -> FinetuneConfig:
        if self.scene.crop_size is not None:
            raise ValueError(
                "scene.crop_size must be null: a scene label belongs to the whole patch"
            )
        if self.multilabel.crop_size is not None:
            raise ValueError(
                "multilabel.crop_size must be null: a label set belongs to the whole image"
            )
        return self

    @model_validator(mode="after")
    def _known_inits(self) -> FinetuneConfig:
        for name in self.published:
            if name in BUILTIN_INITS or not name.isidentifier():
                raise ValueError(
                    f"finetune.published name {name!r} must be a Python identifier and not "
                    f"one of the built-in inits {list(BUILTIN_INITS)}"
                )
        known = (*BUILTIN_INITS, *self.published)
        where = {
            "landcover.inits": self.landcover.inits,
            "scene.inits": self.scene.inits,
            "multilabel.inits": self.multilabel.inits,
            "region_transfer.inits": self.region_transfer.inits or [],
        }
        for key, inits in where.items():
            unknown = [i for i in inits if i not in known]
            if unknown:
                raise ValueError(
                    f"finetune.{key} has unknown init(s) {unknown}: use {list(BUILTIN_INITS)} "
                    "or a name defined under finetune.published"
                )
        return self

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        return unique_items(v, "tasks")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(f <= 0 for f in v):
            raise ValueError(f"label fractions must be in (0, 1], got {v}")
        return sorted(unique_items(v, "fractions"))

    def task_config(
        self, task: str
    ) -> LandcoverFinetune | CroptypeFinetune | SceneFinetune | MultilabelFinetune:
        """The settings of downstream ``task`` (one of :data:`FINETUNE_TASKS`)."""
        if task not in FINETUNE_TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {list(FINETUNE_TASKS)}")
        cfg: LandcoverFinetune | CroptypeFinetune | SceneFinetune | MultilabelFinetune
        cfg = getattr(self, task)
        return cfg

    def stage_params(self, task: str) -> dict[str, Any]:
        """What ``finetune@<task>`` depends on, as JSON: the keys every task reads and the task's
        own section (never the other tasks' sections)."""
        shared = section_json(self, exclude={"tasks", *FINETUNE_TASKS})
        return {**shared, task: self.task_config(task).model_dump(mode="json")}
