"""Downstream evaluation: torchmetrics-based scores with flat keys for
``dvc metrics``, including CSCL's boundary / interior split."""

from __future__ import annotations

from s2ssl.evaluation.metrics import (
    ClassificationMetrics,
    MetricValue,
    SegmentationMetrics,
    boundary_mask,
    majority_labels,
)

__all__ = [
    "ClassificationMetrics",
    "MetricValue",
    "SegmentationMetrics",
    "boundary_mask",
    "majority_labels",
]
