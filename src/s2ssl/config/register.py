"""The ``register`` section: MLflow registry names and the promotion policy."""

from __future__ import annotations

from pydantic import Field, field_validator

from s2ssl.config.common import StrictModel, unique_items
from s2ssl.config.finetune import FinetuneTask

__all__ = ["PromotionPolicy", "RegisterConfig"]


class PromotionPolicy(StrictModel):
    """When a registered ``challenger`` may replace the ``champion`` (:func:`should_promote`).

    The lower bound of the ``confidence`` interval of the difference in ``metric`` (``null``: the
    task's headline: mIoU for segmentation, balanced accuracy for scenes), from a paired
    bootstrap over the test samples with ``bootstrap_samples`` draws, must exceed
    ``min_improvement`` (absolute, metric units); both must have been scored on the same test
    set when ``require_same_test_set``; and no per-class score (``iou.<class>`` /
    ``acc.<class>``) may drop by more than ``max_class_drop`` (``null``: no such guard rail).
    """

    metric: str | None = Field(pattern=r"^[a-z0-9_.]+$")
    min_improvement: float = Field(ge=0.0, le=1.0)
    require_same_test_set: bool
    max_class_drop: float | None = Field(ge=0.0, le=1.0)
    confidence: float = Field(gt=0.0, lt=1.0, description="level of the bootstrap interval")
    bootstrap_samples: int = Field(ge=100, description="bootstrap draws of the interval")


class RegisterConfig(StrictModel):
    """``register`` / ``promote`` stages: MLflow registry names and the promotion policy."""

    model_prefix: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        description="registered models are named <model_prefix>-<task>",
    )
    tasks: list[FinetuneTask] | None = Field(
        description="tasks to register (null: every finetune.tasks)"
    )
    promote: PromotionPolicy

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else unique_items(v, "tasks")

    def model_name(self, task: str) -> str:
        """The registered model name of ``task`` (``s2ssl-landcover``)."""
        return f"{self.model_prefix}-{task}"
