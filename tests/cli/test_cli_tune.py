"""`s2ssl tune apply` (s2ssl.cli.tune): old → new per key, a dry run, a missing sweep."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from s2ssl.cli import app
from s2ssl.config import load_params
from testkit import REPO_PARAMS


def _best(path: Path, values: dict[str, Any]) -> Path:
    doc = {"study": "s-0123456789", "trial": 3, "value": 0.5, "params": values}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(REPO_PARAMS, tmp_path / "params.yaml"))


def test_cli_apply_prints_old_and_new(params_copy: Path, tmp_path: Path) -> None:
    old = load_params(params_copy).finetune.landcover.lr
    assert old != 0.002
    best = _best(tmp_path / "best.yaml", {"finetune.landcover.lr": 0.002})
    runner = CliRunner()
    dry = runner.invoke(
        app, ["tune", "apply", "--best", str(best), "--params", str(params_copy), "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    assert f"finetune.landcover.lr: {old} → 0.002" in dry.output and "would change 1" in dry.output
    assert load_params(params_copy).finetune.landcover.lr == old
    done = runner.invoke(app, ["tune", "apply", "--best", str(best), "--params", str(params_copy)])
    assert done.exit_code == 0 and "changed 1 key(s)" in done.output
    assert load_params(params_copy).finetune.landcover.lr == 0.002
    missing = runner.invoke(
        app, ["tune", "apply", "--best", str(tmp_path / "x.yaml"), "--params", str(params_copy)]
    )
    message = " ".join(missing.output.split())  # rich wraps at the terminal's width
    assert missing.exit_code == 2 and "run the sweep first" in message
