"""The downstream tasks: one registry of what every stage decides by task name.

Each task names its kind (the shape of its output, equal to the ``kind`` a saved downstream model
records), the validated dataset and label array it reads (the classes are the dataset's own), and
its headline metric: the score that model selection, evaluation, promotion and the CLI compare.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["TASKS", "TASK_NAMES", "TaskKind", "TaskSpec", "task_spec"]


class TaskKind(enum.Enum):
    """What a task predicts; the value is the ``kind`` of its saved model architecture."""

    SEGMENTATION = "segmentation"
    """A class per pixel of a single-date image."""
    TIMESERIES = "timeseries_segmentation"
    """A class per pixel of an image time series."""
    SCENE = "scene"
    """One class per image."""
    MULTILABEL = "multilabel"
    """A set of classes per image (several, one or none; BigEarthNet-style)."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything that is decided by a downstream task's name."""

    name: str
    kind: TaskKind
    dataset: str
    """The validated dataset the task trains and tests on."""
    labels: str
    """The label array of :attr:`dataset` its targets come from (its classes are the dataset's
    own: :meth:`s2ssl.data.store.ShardedDataset.classes`)."""
    headline: str
    """The test / validation score the task is compared on: ``miou``, ``balanced_accuracy``
    for scenes (mean per-class recall: their classes are imbalanced, a constant classifier of
    the most frequent class already has a high top-1), ``map_micro`` for multi-label scenes."""
    headline_label: str
    """:attr:`headline` as people read it (``mIoU``, ``balanced accuracy``, ``mAP``)."""
    class_prefix: str
    """Prefix of the per-class test scores (``iou.`` per pixel, ``acc.`` per scene, ``ap.``
    per class of a multi-label scene)."""

    @property
    def is_scene_level(self) -> bool:
        """One target per image (a class, or a set of classes), not one per pixel."""
        return self.kind in (TaskKind.SCENE, TaskKind.MULTILABEL)

    @property
    def is_multilabel(self) -> bool:
        """The target of an image is a set of classes (a multi-hot vector), scored by ranking."""
        return self.kind is TaskKind.MULTILABEL


def _pixel_task(name: str, kind: TaskKind) -> TaskSpec:
    return TaskSpec(name, kind, name, name, "miou", "mIoU", "iou.")


TASKS: Final[Mapping[str, TaskSpec]] = MappingProxyType(
    {
        "landcover": _pixel_task("landcover", TaskKind.SEGMENTATION),
        "croptype": _pixel_task("croptype", TaskKind.TIMESERIES),
        "scene": TaskSpec(
            "scene",
            TaskKind.SCENE,
            "landcover",
            "landcover",
            "balanced_accuracy",
            "balanced accuracy",
            "acc.",
        ),
        "multilabel": TaskSpec(
            "multilabel",
            TaskKind.MULTILABEL,
            "scene",
            "multilabel",
            "map_micro",
            "mAP",
            "ap.",
        ),
    }
)
"""The downstream tasks by name; scene labels are the majority class of land-cover tiles.

``multilabel`` reads the multi-hot ``multilabel`` array of the ``scene`` dataset (BigEarthNet
style). Its headline is the **micro**-averaged average precision: every (image, class) pair is
one ranked item. SeCo reports BigEarthNet as mAP computed this way (scikit-learn's
``average_precision_score(average="micro")`` on the sigmoid scores, ServiceNow/seasonal-contrast
``SSLFineTuner``), so the numbers compare with the paper's; it is also defined whenever the test
set holds a single positive, where the macro average leaves out every class without a positive
and so changes its class set between test sets. The macro mAP is reported next to it."""

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
