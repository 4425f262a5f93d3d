"""Uncertainty of model comparisons: per-sample confusion matrices, bootstrap contrasts, verdicts.

A bottom-layer package (numpy / scipy only):

- :mod:`.confusion`: per-test-sample confusion matrices (:func:`per_sample_confusion`) and the
  project's scores computed from (stacks of) confusion matrices (:func:`score_from_confusion`,
  :func:`per_class_scores`), equal to :mod:`s2ssl.training.metrics` on a summed matrix;
- :mod:`.bootstrap`: confidence intervals of contrasts between training arms over replicates and
  test samples (:func:`contrast_bootstrap`), of the difference between two fixed models
  (:func:`paired_difference`), and the :func:`minimum_detectable_effect`; for multi-label
  arms, whose per-sample results are class scores and truth, :func:`ranking_contrast_bootstrap`;
- :mod:`.ranking`: average precision under sample weights (:func:`average_precision`);
- :mod:`.verdicts`: a claim's verdict from an interval (:func:`verdict_from_interval`), Holm's
  step-down correction over several contrasts (:func:`holm`) and :func:`combine`.
"""

from s2ssl.stats.bootstrap import (
    Estimate,
    contrast_bootstrap,
    minimum_detectable_effect,
    paired_difference,
    ranking_contrast_bootstrap,
)
from s2ssl.stats.confusion import (
    METRICS,
    PER_CLASS_KINDS,
    per_class_scores,
    per_sample_confusion,
    score_from_confusion,
)
from s2ssl.stats.ranking import RANKING_METRICS, average_precision, per_class_average_precision
from s2ssl.stats.verdicts import HolmResult, Verdict, combine, holm, verdict_from_interval

__all__ = [
    "METRICS",
    "PER_CLASS_KINDS",
    "RANKING_METRICS",
    "Estimate",
    "HolmResult",
    "Verdict",
    "average_precision",
    "combine",
    "contrast_bootstrap",
    "holm",
    "minimum_detectable_effect",
    "paired_difference",
    "per_class_average_precision",
    "per_class_scores",
    "per_sample_confusion",
    "ranking_contrast_bootstrap",
    "score_from_confusion",
    "verdict_from_interval",
]
