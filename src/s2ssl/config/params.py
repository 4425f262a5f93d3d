"""The whole ``params.yaml``: the root model and the functions that load, parse and override it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from s2ssl.bands import resolve_bands
from s2ssl.config.calibrate import CalibrateConfig
from s2ssl.config.common import ConfigError, StrictModel, describe_error, set_dotted
from s2ssl.config.evaluate import EvaluateConfig
from s2ssl.config.fetch import FetchConfig
from s2ssl.config.finetune import FinetuneConfig
from s2ssl.config.pretrain import PretrainConfig
from s2ssl.config.register import RegisterConfig
from s2ssl.config.tune import TuneConfig, check_tune
from s2ssl.config.validate import ValidateConfig

__all__ = ["Params", "load_params", "override_params", "parse_params"]


class Params(StrictModel):
    """The whole ``params.yaml``."""

    seed: int = Field(ge=0, le=2**32 - 1)
    bands: str | list[str]
    """The bands every stage works on: a preset (``l2a``, ``l1c``, ``rgb``, ``pastis``) or a list
    of band names; see :data:`s2ssl.bands.BAND_PRESETS`."""
    fetch: FetchConfig
    validation: ValidateConfig = Field(alias="validate")
    """The ``validate`` section (a field called ``validate`` would shadow pydantic's method)."""
    holdout_region: str | None
    """A region never used for pre-training nor in-domain fine-tuning: the region-transfer test."""
    pretrain: PretrainConfig
    finetune: FinetuneConfig
    evaluate: EvaluateConfig
    registry: RegisterConfig = Field(alias="register")
    """The ``register`` section (a field called ``register`` would shadow ``ABC.register``)."""
    tune: TuneConfig
    """The Optuna sweep (``dvc repro tune/dvc.yaml`` only; never part of a plain ``dvc repro``)."""
    calibrate: CalibrateConfig
    """Random-init and baseline calibration of the tasks (``dvc repro calibrate/dvc.yaml`` only)."""

    @field_validator("bands")
    @classmethod
    def _known_bands(cls, v: str | list[str]) -> str | list[str]:
        resolve_bands(v)
        return v

    @property
    def band_names(self) -> tuple[str, ...]:
        """:attr:`bands` resolved to band names, in Sentinel-2 order."""
        return resolve_bands(self.bands)

    @model_validator(mode="after")
    def _register_tasks(self) -> Params:
        extra = sorted(set(self.registry.tasks or []) - set(self.finetune.tasks))
        if extra:
            raise ValueError(
                f"register.tasks {extra} are not fine-tuned (finetune.tasks: "
                f"{self.finetune.tasks}); add them there or remove them from register.tasks"
            )
        return self

    def registered_tasks(self) -> list[str]:
        """The tasks whose fine-tuned models are registered (``register.tasks`` or all)."""
        return list(self.registry.tasks or self.finetune.tasks)

    @model_validator(mode="after")
    def _tune_keys(self) -> Params:
        check_tune(self.tune, self.finetune)
        return self

    @model_validator(mode="after")
    def _holdout(self) -> Params:
        synthetic = getattr(self.fetch, "synthetic", None)
        names = [r.name for r in synthetic.regions] if synthetic is not None else []
        if self.fetch.source != "synthetic":
            names = []
        if self.holdout_region is not None and names and self.holdout_region not in names:
            raise ValueError(
                f"holdout_region {self.holdout_region!r} is not a region; regions: {names}"
            )
        if self.holdout_region is not None and names and len(names) < 2:
            raise ValueError("holdout_region needs at least two regions (one is held out)")
        return self


def load_params(
    path: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None
) -> Params:
    """Read and validate ``params.yaml``; ``overrides`` maps dotted keys to values."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"params file not found: {p} (run from the project root, or pass --params)"
        )
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not valid YAML (UTF-8 text expected): {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p} must hold a mapping of sections, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        try:
            set_dotted(raw, key, value)
        except (TypeError, IndexError, ValueError, AttributeError) as e:
            raise ConfigError(f"cannot set override {key!r} in {p}: {e}") from None
    return parse_params(raw, source=str(p))


def override_params(params: Params, overrides: Mapping[str, Any], source: str = "params") -> Params:
    """A validated copy of ``params`` with dotted ``overrides`` applied (``params`` is unchanged).

    Raises:
        ConfigError: an override names no setting or gives it an invalid value.
    """
    raw = params.model_dump(mode="python", by_alias=True)
    for key, value in overrides.items():
        try:
            set_dotted(raw, key, value)
        except (TypeError, IndexError, ValueError, AttributeError) as e:
            raise ConfigError(f"cannot set override {key!r} in {source}: {e}") from None
    return parse_params(raw, source=source)


def parse_params(raw: Mapping[str, Any], source: str = "params") -> Params:
    """Validate an already-loaded mapping; raises :class:`ConfigError` with dotted paths."""
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = [describe_error(err, Params) for err in e.errors()]
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(lines)) from None
