"""The search space of a sweep: Optuna suggestions from ``tune.space`` and the ``params.yaml``
overrides they stand for.

Optuna parameter names are the ``tune.space`` keys, relative to ``finetune.<task>`` (``lr``,
``linear.lr``); :func:`overrides` turns them into full dotted ``params.yaml`` keys
(``finetune.landcover.lr``), which is also how ``best_params.yaml`` names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from s2ssl.config import Params, SearchDimension, TuneConfig, TuneValue, tune_target

if TYPE_CHECKING:
    import optuna

__all__ = [
    "current_values",
    "distribution",
    "in_space",
    "overrides",
    "suggest",
]


def distribution(dim: SearchDimension) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of one ``tune.space`` entry."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if dim.type == "categorical":
        return CategoricalDistribution(list(dim.choices or []))
    if dim.low is None or dim.high is None:  # pragma: no cover - SearchDimension validates
        raise ValueError(f"{dim.type} dimension without low / high")
    if dim.type == "int":
        step = int(dim.step) if dim.step is not None else 1
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log, step=step)
    return FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)


def suggest(trial: optuna.Trial, space: Mapping[str, SearchDimension]) -> dict[str, TuneValue]:
    """Ask ``trial`` for a value of every dimension (in ``space`` order); keys as in ``space``."""
    values: dict[str, TuneValue] = {}
    for key, dim in space.items():
        if dim.type == "categorical":
            values[key] = trial.suggest_categorical(key, list(dim.choices or []))
        elif dim.type == "int":
            step = int(dim.step) if dim.step is not None else 1
            values[key] = trial.suggest_int(
                key, int(dim.low or 0), int(dim.high or 0), step=step, log=dim.log
            )
        else:
            values[key] = trial.suggest_float(
                key, float(dim.low or 0.0), float(dim.high or 0.0), step=dim.step, log=dim.log
            )
    return values


def overrides(cfg: TuneConfig, values: Mapping[str, Any], *, fixed: bool = True) -> dict[str, Any]:
    """Full dotted ``params.yaml`` keys -> values: ``cfg.fixed`` (when ``fixed``) and ``values``."""
    out = {tune_target(cfg.task, k): v for k, v in cfg.fixed.items()} if fixed else {}
    out.update({tune_target(cfg.task, k): v for k, v in values.items()})
    return out


def _get(params: Params, task: str, key: str) -> Any:
    node: Any = params.finetune.task_config(task)
    for part in key.split("."):
        node = getattr(node, part)
    return node


def current_values(params: Params) -> dict[str, Any]:
    """The values ``params`` has now for every ``tune.space`` key (the sweep's baseline)."""
    cfg = params.tune
    return {key: _get(params, cfg.task, key) for key in cfg.space}


def in_space(value: Any, dim: SearchDimension) -> bool:
    """Whether ``value`` is one the dimension can produce (the baseline must be, to be enqueued)."""
    if dim.type == "categorical":
        return any(type(value) is type(c) and value == c for c in dim.choices or [])
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if dim.type == "int" and not float(value).is_integer():
        return False
    low, high = float(dim.low or 0.0), float(dim.high or 0.0)
    if not low <= float(value) <= high:
        return False
    if dim.step is not None:
        k = (float(value) - low) / dim.step
        return abs(k - round(k)) < 1e-9
    return True
