"""The downstream tasks: one registry of what every stage decides by task name.

Each task names its kind (the shape of its output, equal to the ``kind`` a saved downstream model
records), the validated dataset and label array it reads, its classes and colours, and its
headline metric: the score that model selection, evaluation, promotion and the CLI compare.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from s2ssl.synthetic_vocabulary import (
    CROP_CLASSES,
    CROP_COLOURS,
    LANDCOVER_CLASSES,
    LANDCOVER_COLOURS,
)

__all__ = ["TASKS", "TASK_NAMES", "TaskKind", "TaskSpec", "task_spec"]


class TaskKind(enum.Enum):
    """What a task predicts; the value is the ``kind`` of its saved model architecture."""

    SEGMENTATION = "segmentation"
    """A class per pixel of a single-date image."""
    TIMESERIES = "timeseries_segmentation"
    """A class per pixel of an image time series."""
    SCENE = "scene"
    """One class per image."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything that is decided by a downstream task's name."""

    name: str
    kind: TaskKind
    dataset: str
    """The validated dataset the task trains and tests on."""
    labels: str
    """The label array of :attr:`dataset` its targets come from."""
    classes: tuple[str, ...]
    colours: tuple[str, ...]
    """A display colour per class."""
    headline: str
    """The test / validation score the task is compared on: ``miou``, or ``balanced_accuracy``
    for scenes (mean per-class recall: their classes are imbalanced, a constant classifier of
    the most frequent class already has a high top-1)."""
    headline_label: str
    """:attr:`headline` as people read it (``mIoU``, ``balanced accuracy``)."""
    class_prefix: str
    """Prefix of the per-class test scores (``iou.`` per pixel, ``acc.`` per scene)."""

    @property
    def is_scene_level(self) -> bool:
        """One label per image (scene classification), not one per pixel."""
        return self.kind is TaskKind.SCENE


def _pixel_task(
    name: str, kind: TaskKind, classes: tuple[str, ...], colours: tuple[str, ...]
) -> TaskSpec:
    return TaskSpec(name, kind, name, name, classes, colours, "miou", "mIoU", "iou.")


TASKS: Final[Mapping[str, TaskSpec]] = MappingProxyType(
    {
        "landcover": _pixel_task(
            "landcover", TaskKind.SEGMENTATION, LANDCOVER_CLASSES, LANDCOVER_COLOURS
        ),
        "croptype": _pixel_task("croptype", TaskKind.TIMESERIES, CROP_CLASSES, CROP_COLOURS),
        "scene": TaskSpec(
            "scene",
            TaskKind.SCENE,
            "landcover",
            "landcover",
            LANDCOVER_CLASSES,
            LANDCOVER_COLOURS,
            "balanced_accuracy",
            "balanced accuracy",
            "acc.",
        ),
    }
)
"""The downstream tasks by name; scene labels are the majority class of land-cover tiles."""

TASK_NAMES: Final[tuple[str, ...]] = tuple(TASKS)
"""The downstream task names, in pipeline order."""


def task_spec(name: str) -> TaskSpec:
    """The registry entry of downstream task ``name``.

    Raises:
        ValueError: ``name`` is not a downstream task.
    """
    spec = TASKS.get(name)
    if spec is None:
        raise ValueError(f"unknown task {name!r}; choose one of {list(TASK_NAMES)}")
    return spec
