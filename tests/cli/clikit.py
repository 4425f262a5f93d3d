"""Helpers of the command-line tests (importable as ``clikit``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner, Result

from s2ssl.cli import app

REGIONS = ("north_west", "north_east", "south_pampa", "south_highveld")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str | Path) -> Result:
    """Run the CLI in-process; a wide terminal so rich does not wrap messages."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def flat(text: str) -> str:
    """``text`` with all whitespace runs collapsed (robust to rich line wrapping)."""
    return " ".join(text.split())


def write_yaml(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path
