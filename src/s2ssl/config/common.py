"""What every ``params.yaml`` section shares: the strict base model, the error type, common
field types and validators, and the helpers that set and describe dotted keys."""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Collection, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_jsonable_python

__all__ = [
    "ConfigError",
    "Fraction",
    "PositiveInt",
    "StrictModel",
    "check_n_dates",
    "describe_error",
    "model_at",
    "set_dotted",
    "unique_items",
    "unwrap_model",
]

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


class ConfigError(ValueError):
    """A ``params.yaml`` problem, with the dotted path of every offending key."""


class StrictModel(BaseModel):
    """Frozen, no unknown keys: the base of every params section."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_n_dates(v: int | None) -> int | None:
    """``v`` unchanged when ``None`` or a multiple of 4 (the 3-D U-Net pools time twice)."""
    if v is not None and v % 4:
        raise ValueError(
            f"must be a multiple of 4 (the 3-D U-Net halves the time axis twice) or null, got {v}"
        )
    return v


def unique_items(v: list[Any], what: str) -> list[Any]:
    """``v`` unchanged; ValueError naming the repeated items (``what`` names the list)."""
    dupes = sorted({str(x) for x in v if v.count(x) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique; repeated: {dupes}")
    return v


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw["a"]["b"][0]["c"] = value`` for ``key = "a.b.0.c"`` (lists indexed by number)."""
    parts = key.split(".")
    node: Any = raw
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def describe_error(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    """One line per pydantic error: the dotted path, then what is wrong (allowed keys, value)."""
    loc = tuple(err["loc"])
    path = ".".join(str(x) for x in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        allowed = ", ".join(parent.model_fields) if parent else "?"
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if kind == "missing":
        return f"{path}: required key is missing"
    msg = str(err["msg"])
    if not loc and msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")  # a whole-file check names its own keys
    value = err.get("input")
    if value is not None and not isinstance(value, dict | list) and repr(value) not in msg:
        shown = repr(value)
        msg += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    return f"{path}: {msg}"


def model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at ``loc`` (None if not a model)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = unwrap_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def unwrap_model(annotation: Any) -> Any:
    """``list[RegionSpec]`` / ``RegionSpec | None`` -> ``RegionSpec``."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = unwrap_model(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def section_json(model: BaseModel, exclude: Collection[str] = ()) -> dict[str, Any]:
    """``model``'s fields except ``exclude`` as JSON-compatible values, keyed by their YAML
    names. Each field is read on its own, so a stage that logs this reads exactly these keys."""
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        if name in exclude:
            continue
        value = getattr(model, name)
        out[field.alias or name] = (
            value.model_dump(mode="json", by_alias=True)
            if isinstance(value, BaseModel)
            else to_jsonable_python(value)
        )
    return out


class SplitFractions(StrictModel):
    """Fractions of locations in each split (they must sum to 1)."""

    train: Fraction
    val: Fraction
    test: Fraction

    @model_validator(mode="after")
    def _sum(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must be 1, got {total:.4f}")
        return self
