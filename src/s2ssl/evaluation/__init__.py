"""Downstream evaluation: the ``evaluate`` stage's report of the fine-tuning results (tables,
figures and flat ``dvc metrics``, :mod:`s2ssl.evaluation.report`). The scores themselves are
computed by :mod:`s2ssl.training.metrics`."""
