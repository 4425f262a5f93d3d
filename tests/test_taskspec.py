"""Tests of s2ssl.taskspec: the downstream task registry."""

from __future__ import annotations

import typing

import pytest

from s2ssl.config import FINETUNE_TASKS, FinetuneTask
from s2ssl.taskspec import TASK_NAMES, TASKS, TaskKind, task_spec


def test_task_names_in_pipeline_order() -> None:
    assert TASK_NAMES == ("landcover", "croptype", "scene", "multilabel")
    assert FINETUNE_TASKS == TASK_NAMES


def test_the_config_literal_names_the_same_tasks() -> None:
    assert set(typing.get_args(FinetuneTask)) == set(TASK_NAMES)


def test_landcover() -> None:
    spec = task_spec("landcover")
    assert spec.name == "landcover"
    assert spec.kind is TaskKind.SEGMENTATION
    assert (spec.dataset, spec.labels) == ("landcover", "landcover")
    assert (spec.headline, spec.headline_label, spec.class_prefix) == ("miou", "mIoU", "iou.")
    assert not spec.is_scene_level


def test_croptype() -> None:
    spec = task_spec("croptype")
    assert spec.kind is TaskKind.TIMESERIES
    assert (spec.dataset, spec.labels) == ("croptype", "croptype")
    assert (spec.headline, spec.headline_label, spec.class_prefix) == ("miou", "mIoU", "iou.")
    assert not spec.is_scene_level


def test_scene_reads_the_landcover_dataset() -> None:
    spec = task_spec("scene")
    assert spec.kind is TaskKind.SCENE
    assert (spec.dataset, spec.labels) == ("landcover", "landcover")
    assert (spec.headline, spec.headline_label, spec.class_prefix) == (
        "balanced_accuracy",
        "balanced accuracy",
        "acc.",
    )
    assert spec.is_scene_level


def test_kinds_are_the_saved_model_kinds() -> None:
    assert TaskKind("segmentation") is TaskKind.SEGMENTATION
    assert TaskKind("timeseries_segmentation") is TaskKind.TIMESERIES
    assert TaskKind("scene") is TaskKind.SCENE


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown task 'eurosat'.*landcover.*croptype.*scene"):
        task_spec("eurosat")


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        TASKS["new"] = TASKS["scene"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        task_spec("scene").headline = "miou"  # type: ignore[misc]


def test_multilabel_task() -> None:
    spec = task_spec("multilabel")
    assert spec.kind is TaskKind.MULTILABEL and spec.kind.value == "multilabel"
    assert (spec.dataset, spec.labels) == ("scene", "multilabel")
    assert (spec.headline, spec.headline_label, spec.class_prefix) == ("map_micro", "mAP", "ap.")
    assert spec.is_scene_level and spec.is_multilabel
    assert not task_spec("scene").is_multilabel
