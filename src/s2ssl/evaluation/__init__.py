"""Downstream evaluation: the ``evaluate`` stage's report of the fine-tuning results (run
records and flat ``dvc metrics``, :mod:`s2ssl.evaluation.records`; figures,
:mod:`s2ssl.evaluation.figures`; tables and claims, :mod:`s2ssl.evaluation.report`). The scores
themselves are computed by :mod:`s2ssl.training.metrics`."""
