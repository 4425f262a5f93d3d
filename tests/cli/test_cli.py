"""The ``s2ssl`` app (s2ssl.cli): its commands, --help, --version, a light import."""

from __future__ import annotations

import subprocess
import sys

from clikit import invoke

import s2ssl


def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for command in ("fetch", "info", "check-params"):
        assert command in result.stdout
    assert "--version" in result.stdout


def test_no_args_shows_help() -> None:
    result = invoke()
    assert "check-params" in result.output
    assert "Usage" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"s2ssl {s2ssl.__version__}"


def test_cli_import_is_light() -> None:
    """`import s2ssl.cli` must not pull in heavy libraries (keeps `s2ssl --help` fast)."""
    code = (
        "import sys, s2ssl.cli; "
        "print(sorted(m for m in ('torch','numpy','matplotlib','pandas','lightning','mlflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
