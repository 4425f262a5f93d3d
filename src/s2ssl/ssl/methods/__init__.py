"""The pre-training methods as Lightning modules, and :func:`build_task`, the registry by
method name.

* :mod:`~s2ssl.ssl.methods.base` — :class:`~s2ssl.ssl.methods.base.PretrainTask`, common to all:
  seeded views per batch, the online kNN probe, the collapse monitor, resumable history;
* :mod:`~s2ssl.ssl.methods.seco` — ``seco``, ``moco``, ``moco_tp``
  (:class:`~s2ssl.ssl.methods.seco.MocoTask`);
* :mod:`~s2ssl.ssl.methods.dense` — ``dense`` (:class:`~s2ssl.ssl.methods.dense.DenseTask`);
* :mod:`~s2ssl.ssl.methods.cscl` — ``cscl`` stage 1 (:class:`~s2ssl.ssl.methods.cscl.CSCLTask`).
"""

from __future__ import annotations

from typing import Final

from s2ssl.config import PretrainConfig
from s2ssl.data.stats import NormStats
from s2ssl.ssl.methods.base import PretrainTask
from s2ssl.ssl.methods.cscl import CSCLTask
from s2ssl.ssl.methods.dense import DenseTask
from s2ssl.ssl.methods.seco import MocoTask

__all__ = ["build_task"]


_TASKS: Final[dict[str, type[PretrainTask]]] = {
    "seco": MocoTask,
    "moco": MocoTask,
    "moco_tp": MocoTask,
    "dense": DenseTask,
    "cscl": CSCLTask,
}


def build_task(
    method: str,
    config: PretrainConfig,
    *,
    seed: int,
    bands: tuple[str, ...],
    norm_stats: NormStats,
    num_dates: int,
) -> PretrainTask:
    """The Lightning module of ``method`` (weights initialised from torch's global RNG)."""
    if method not in _TASKS:
        raise ValueError(f"unknown pre-training method {method!r}; choose one of {list(_TASKS)}")
    stats = norm_stats.select(bands)
    return _TASKS[method](
        method,
        config.method_config(method).model_dump(mode="json"),
        config.probe.model_dump(mode="json"),
        seed=seed,
        bands=list(bands),
        norm_mean=list(stats.mean),
        norm_std=list(stats.std),
        num_dates=num_dates,
        norm_stats=stats.to_json(),
    )
