"""Run params and keys as MLflow accepts them: its length and batch limits, key sanitising,
secret filtering and the flattening of nested params to dotted keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Final

MAX_PARAM_VAL_LENGTH: Final[int] = 6000
"""MLflow 3's limit on a param value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``)."""

MAX_TAG_VAL_LENGTH: Final[int] = 8000
"""MLflow 3's limit on a run tag value (``mlflow.utils.validation.MAX_TAG_VAL_LENGTH``)."""

MAX_KEY_LENGTH: Final[int] = 250
"""MLflow 3's limit on a param / metric / tag key (``MAX_ENTITY_KEY_LENGTH``)."""

PARAMS_PER_BATCH: Final[int] = 100
"""MLflow's limit on params per ``log_params`` / ``log_batch`` call."""

METRICS_PER_BATCH: Final[int] = 1000
"""MLflow's limit on metrics per ``log_metrics`` / ``log_batch`` call."""

SECRET_MARKERS: Final[tuple[str, ...]] = ("secret", "password", "token", "client_id")
"""A param or tag whose key contains one of these (case-insensitive) is never logged."""

_BAD_KEY_CHARS: Final[re.Pattern[str]] = re.compile(r"[^A-Za-z0-9_\-. /]")


def sanitize_key(key: str) -> str:
    """An MLflow-valid key: characters outside ``[A-Za-z0-9_-. /]`` become ``_``, empty / ``.`` /
    ``..`` path segments are dropped or replaced (MLflow refuses keys that are not normal paths).
    """
    cleaned = _BAD_KEY_CHARS.sub("_", key)
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    return "/".join("__" if p == ".." else p for p in parts)


def is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _flatten_into(out: dict[str, str], origin: dict[str, str], value: Any, key: str) -> None:
    if key and is_secret(key):
        return
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        return
    if hasattr(value, "model_dump") and callable(value.model_dump):  # a pydantic model
        value = value.model_dump()
    if isinstance(value, Mapping):
        if not value and key:
            _put(out, origin, key, "{}")
        for k, v in value.items():
            _flatten_into(out, origin, v, f"{key}.{k}" if key else str(k))
        return
    if isinstance(value, list | tuple):
        if not value:
            _put(out, origin, key, "[]")
        for i, v in enumerate(value):
            _flatten_into(out, origin, v, f"{key}.{i}")
        return
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = value.as_posix()
    _put(out, origin, key, truncate(str(value), MAX_PARAM_VAL_LENGTH))


def _put(out: dict[str, str], origin: dict[str, str], key: str, value: str) -> None:
    clean = sanitize_key(key)
    if not clean:
        raise ValueError(f"param key {key!r} is empty after removing invalid characters")
    if len(clean) > MAX_KEY_LENGTH:
        raise ValueError(
            f"param key {clean[:60]!r}... is {len(clean)} characters; MLflow allows "
            f"{MAX_KEY_LENGTH}: shorten the config keys or log that section as an artifact"
        )
    if clean in out:
        raise ValueError(
            f"params {origin[clean]!r} and {key!r} both flatten to the MLflow key {clean!r}; "
            "rename one of them"
        )
    out[clean] = value
    origin[clean] = key


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested params to dotted MLflow param keys with string values.

    ``{"pretrain": {"seco": {"lr": 0.03}}}`` → ``{"pretrain.seco.lr": "0.03"}``; list items get
    their index (``"milestones.0"``); empty containers stay as ``"{}"`` / ``"[]"``; pydantic
    models are dumped first. Values longer than MLflow's limit (6000 characters) are truncated
    with ``...``. Keys containing ``secret``, ``password``, ``token`` or ``client_id``
    (case-insensitive, anywhere in the dotted key) and pydantic secret values are dropped.
    Characters MLflow refuses in keys become ``_``.
    """
    if not isinstance(params, Mapping):
        hint = " (call .model_dump() on a pydantic model)" if hasattr(params, "model_dump") else ""
        raise TypeError(f"params must be a mapping, got {type(params).__name__}{hint}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    out: dict[str, str] = {}
    _flatten_into(out, {}, params, prefix.strip("."))
    return out
