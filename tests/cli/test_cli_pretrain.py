"""`s2ssl pretrain` (s2ssl.cli.pretrain)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from s2ssl.cli import app
from testkit import REPO_PARAMS


def test_cli_pretrain_bad_method_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["pretrain", "--method", "simclr", "--params", str(REPO_PARAMS), "--data", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "unknown pre-training method" in result.output
