"""Helpers of the configuration tests (importable as ``configkit``)."""

from __future__ import annotations

from typing import Any

import pytest

from s2ssl.config import ConfigError, load_params
from testkit import REPO_PARAMS


def config_error(overrides: dict[str, Any]) -> str:
    """The ConfigError message for the repo params.yaml with ``overrides`` applied."""
    with pytest.raises(ConfigError) as info:
        load_params(REPO_PARAMS, overrides=overrides)
    return str(info.value)


def line_for(message: str, path: str) -> str:
    """The single message line describing ``path`` (``"<path>: ..."``)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip().startswith(f"{path}:")]
    assert len(lines) == 1, f"expected one line for {path!r} in:\n{message}"
    return lines[0]
