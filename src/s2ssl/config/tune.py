"""The ``tune`` section: the Optuna sweep over ``finetune.<task>`` settings, and its checks."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from s2ssl.config.common import PositiveInt, StrictModel, set_dotted, unique_items, unwrap_model
from s2ssl.config.finetune import FinetuneConfig, FinetuneTask, Init

__all__ = [
    "SearchDimension",
    "TuneConfig",
    "TunePrunerConfig",
    "TuneValue",
    "check_tune",
    "tune_target",
]


TuneValue = bool | int | float | str
"""A value a tuned setting may take (the scalars of ``params.yaml``)."""


class SearchDimension(StrictModel):
    """One searched setting of a sweep (an Optuna distribution).

    ``float`` / ``int``: a value in [``low``, ``high``], log-uniform with ``log: true``, on a grid
    of ``step`` otherwise if given; ``categorical``: one of ``choices``.
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[TuneValue] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SearchDimension:
        if self.type == "categorical":
            if self.choices is None or len(self.choices) < 2:
                raise ValueError("type categorical needs choices: [a, b, ...] (at least two)")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("type categorical takes choices only (no low, high, log, step)")
            unique_items([repr(c) for c in self.choices], "choices")
            return self
        if self.choices is not None:
            raise ValueError(
                f"type {self.type} takes low and high, not choices (use type: categorical)"
            )
        if self.low is None or self.high is None:
            raise ValueError(f"type {self.type} needs low and high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna refuses it)")
        if self.type == "int":
            bounds = [self.low, self.high] + ([self.step] if self.step is not None else [])
            if any(not float(v).is_integer() for v in bounds):
                raise ValueError(f"type int needs whole-number low / high / step, got {bounds}")
        return self

    def values_to_check(self) -> list[TuneValue]:
        """The values whose validity stands for the whole dimension: both ends, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]  # type: ignore[arg-type]


class TunePrunerConfig(StrictModel):
    """Optuna's median pruner: stop a trial whose validation score at a step is below the median
    of earlier trials' scores at that step."""

    enabled: bool
    n_startup_trials: int = Field(ge=0, description="finished trials before any trial is pruned")
    n_warmup_steps: int = Field(
        ge=0, description="optimiser steps of a trial before it may be pruned"
    )
    interval_steps: PositiveInt = Field(description="pruning checks every n steps")


class TuneConfig(StrictModel):
    """``tune`` stage (Optuna sweep, run only when targeted): a short fine-tune of ``task`` from
    ``init`` on a ``fraction`` of the train split per trial, scored on the validation split.

    ``space`` and ``fixed`` name settings under ``finetune.<task>`` by dotted key (``lr``,
    ``linear.lr``); ``fixed`` values apply to every trial (e.g. a finer ``val_every`` for the
    pruner). The study resumes from its sqlite storage (``n_trials`` counts finished trials);
    ``s2ssl tune apply`` writes the best values into ``params.yaml``.
    """

    study_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    task: FinetuneTask
    init: Init
    fraction: float = Field(gt=0, le=1, description="label fraction of train")
    n_trials: PositiveInt = Field(description="finished trials the study should hold")
    timeout_s: float | None = Field(
        gt=0, description="no new trial after this many seconds (per execution)"
    )
    seed: int | None = Field(
        ge=0, le=2**32 - 1, description="sampler seed (None: the top-level seed)"
    )
    n_startup_trials: int = Field(
        ge=0, description="TPE: randomly sampled trials before the model takes over"
    )
    include_current: bool = Field(
        description="trial 0 = the current values of params.yaml (the baseline)"
    )
    pruner: TunePrunerConfig
    fixed: dict[str, TuneValue | None]
    space: dict[str, SearchDimension] = Field(
        min_length=1,
    )


def _leaf_types(annotation: Any) -> set[Any]:
    """``int | None`` -> ``{int, NoneType}``; ``Literal[18, 50]`` -> ``{int}``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_leaf_types(a) for a in typing.get_args(annotation)))
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    return {annotation}


def tune_target(task: str, key: str) -> str:
    """The full dotted ``params.yaml`` key of a ``tune.space`` / ``tune.fixed`` key."""
    return f"finetune.{task}.{key}"


def _check_tune_key(tune: TuneConfig, finetune: FinetuneConfig, section: str, key: str) -> Any:
    """The field annotation of ``finetune.<task>.<key>``; ValueError naming ``tune.<section>``."""
    where = f"tune.{section}.{key}"
    target = tune_target(tune.task, key)
    if key.startswith("finetune."):
        raise ValueError(
            f"{where}: keys are relative to finetune.{tune.task}; write "
            f"{key.split('.', 2)[-1]!r}, not {key!r}"
        )
    model: Any = type(finetune.task_config(tune.task))
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = model.model_fields if isinstance(model, type) else {}
        if part not in fields:
            parent = ".".join(["finetune", tune.task, *parts[:i]])
            raise ValueError(
                f"{where}: {target} is not a setting; keys of {parent}: {', '.join(fields)}"
            )
        annotation = fields[part].annotation
        if i < len(parts) - 1:
            model = unwrap_model(annotation)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise ValueError(f"{where}: {'.'.join(parts[: i + 1])} is not a section")
    if isinstance(unwrap_model(annotation), type) and issubclass(
        unwrap_model(annotation), BaseModel
    ):
        raise ValueError(f"{where}: {target} is a section; name one of its settings")
    if typing.get_origin(annotation) in (list, dict, tuple):
        raise ValueError(f"{where}: {target} is a list / mapping; only single values are tuned")
    return annotation


def _check_tune_value(
    tune: TuneConfig, finetune: FinetuneConfig, where: str, key: str, value: Any
) -> None:
    raw = finetune.model_dump(mode="python")
    set_dotted(raw[tune.task], key, value)
    try:
        FinetuneConfig.model_validate(raw)
    except ValidationError as e:
        reasons = "; ".join(str(err["msg"]) for err in e.errors())
        raise ValueError(
            f"{where}: {value!r} is not a valid {tune_target(tune.task, key)} ({reasons})"
        ) from None


def check_tune(tune: TuneConfig, finetune: FinetuneConfig) -> None:
    """Every ``tune.space`` / ``tune.fixed`` key names a scalar setting of ``finetune.<task>``
    and every searched or fixed value is valid there; ``init`` is an init of ``task``."""
    cfg = finetune.task_config(tune.task)
    try:
        type(cfg).model_validate({**cfg.model_dump(), "inits": [tune.init]})
    except ValidationError:
        allowed = typing.get_args(unwrap_model(type(cfg).model_fields["inits"].annotation))
        names = [a for arg in allowed for a in (typing.get_args(arg) or [arg])]
        raise ValueError(
            f"tune.init: {tune.init!r} cannot initialise task {tune.task!r}; choose one of {names}"
        ) from None
    both = sorted(set(tune.space) & set(tune.fixed))
    if both:
        raise ValueError(f"tune.fixed: {both} are also in tune.space; keep each key in one")
    for key, dim in tune.space.items():
        where = f"tune.space.{key}"
        annotation = _check_tune_key(tune, finetune, "space", key)
        kinds = _leaf_types(annotation)
        if dim.type == "float" and float not in kinds and int in kinds:
            raise ValueError(
                f"{where}: {tune_target(tune.task, key)} is a whole number; use type: int"
            )
        if key == "encoder_lr_scale" and tune.init == "random":
            raise ValueError(
                f"{where}: encoder_lr_scale only scales pre-trained weights; with init random it "
                "has no effect (tune a pre-trained init or drop the key)"
            )
        for value in dim.values_to_check():
            _check_tune_value(tune, finetune, where, key, value)
    for key, value in tune.fixed.items():
        _check_tune_key(tune, finetune, "fixed", key)
        _check_tune_value(tune, finetune, f"tune.fixed.{key}", key, value)
