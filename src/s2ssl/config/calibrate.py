"""The ``calibrate`` section: random-init fine-tunes and simple baselines that calibrate the
downstream tasks without any pre-trained result (``dvc repro calibrate/dvc.yaml`` only)."""

from __future__ import annotations

from pydantic import Field, field_validator

from s2ssl.config.common import PositiveInt, StrictModel, unique_items
from s2ssl.config.finetune import FinetuneTask

__all__ = [
    "CalibrateConfig",
    "CalibrationTargets",
    "PixelClassifierConfig",
    "SceneClassifierConfig",
]


class PixelClassifierConfig(StrictModel):
    """scikit-learn ``HistGradientBoostingClassifier`` on per-pixel reflectance (no early stopping:
    ``max_iter`` boosting rounds are always run)."""

    max_train_pixels: PositiveInt = Field(
        description="labelled train pixels drawn at random to fit it"
    )
    max_iter: PositiveInt = Field(description="boosting rounds")
    learning_rate: float = Field(gt=0, le=10)
    max_leaf_nodes: int = Field(ge=2, description="leaves per tree")


class SceneClassifierConfig(StrictModel):
    """scikit-learn ``LogisticRegression`` on standardised per-tile band means and deviations."""

    max_iter: PositiveInt = Field(description="solver iterations (lbfgs)")
    C: float = Field(gt=0, description="inverse L2 regularisation strength")


class CalibrationTargets(StrictModel):
    """What a well-calibrated synthetic world and step budget should show, measured without any
    pre-trained model (each one is reported as met / NOT met; none fails the command).

    ``f100`` / ``f1`` name the largest / smallest of ``finetune.fractions`` (1 % and 100 % in
    the repository's params).
    """

    landcover_f100_min: float = Field(
        ge=0, le=1, description="random-init landcover test mIoU at the largest fraction >= this"
    )
    landcover_f1_max: float = Field(
        ge=0, le=1, description="random-init landcover test mIoU at the smallest fraction <= this"
    )
    croptype_f100_min: float = Field(
        ge=0, le=1, description="random-init croptype test mIoU at the largest fraction >= this"
    )
    spatial_margin_min: float = Field(
        ge=-1, le=1, description="landcover random-init - per-pixel mIoU (largest fraction) > this"
    )
    seasonal_gap_min: float = Field(
        ge=-1, le=1, description="crop-type mIoU of 5 dates - best single date >= this"
    )
    zero_shot_drop_min: float = Field(
        ge=-1, le=1, description="landcover in-domain - zero-shot holdout mIoU >= this"
    )


class CalibrateConfig(StrictModel):
    """``calibrate`` (run only when targeted): fine-tunes random init exactly as the ``finetune``
    stage would (``finetune.<task>`` settings, ``finetune.fractions``) and fits per-pixel /
    per-tile scikit-learn baselines, then checks ``targets``. It never loads a pre-trained
    encoder."""

    tasks: list[FinetuneTask] = Field(min_length=1)
    seasonal_dates: int = Field(
        ge=2, description="dates spread evenly over the crop-type series (seasonal baseline)"
    )
    pixel_classifier: PixelClassifierConfig
    scene_classifier: SceneClassifierConfig
    targets: CalibrationTargets

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        return unique_items(v, "tasks")
