"""The ``s2ssl`` app (s2ssl.cli): its commands, --help, --version, a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import typer.main
from clikit import invoke
from typer.core import TyperGroup

import s2ssl
from s2ssl.cli import app

COMMANDS = [
    "fetch",
    "validate",
    "pretrain",
    "finetune",
    "evaluate",
    "register",
    "promote",
    "models",
    "calibrate",
    "predict",
    "info",
    "check-params",
    "tune",
]
HEAVY = (
    "torch",
    "numpy",
    "pandas",
    "matplotlib",
    "lightning",
    "mlflow",
    "dvc",
    "prefect",
    "great_expectations",
    "optuna",
    "rasterio",
)


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


def test_the_app_has_every_command() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    assert list(group.commands) == COMMANDS
    tune = group.commands["tune"]
    assert isinstance(tune, TyperGroup)
    assert list(tune.commands) == ["apply"]


def test_help_imports_nothing_heavy() -> None:
    """`s2ssl --help` and `s2ssl <command> --help` load no heavy library (they stay fast)."""
    helps = [["--help"], *([c, "--help"] for c in COMMANDS), ["tune", "apply", "--help"]]
    code = (
        "import json, sys\n"
        "from s2ssl.cli import app\n"
        f"for args in {helps!r}:\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (args, e.code)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [], out.stderr
