"""What the commands share (s2ssl.cli.common): the error helpers and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from s2ssl.cli.common import EX_TEMPFAIL, fail, load_or_exit
from testkit import REPO_PARAMS


def test_fail_prints_the_message_verbatim_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = fail("bad value [1, 2] in data[/x]", code=EX_TEMPFAIL)
    assert isinstance(exit_, typer.Exit) and exit_.exit_code == 75
    captured = capsys.readouterr()
    assert captured.out == ""
    assert " ".join(captured.err.split()) == "error: bad value [1, 2] in data[/x]"
    assert fail("x").exit_code == 2


def test_load_or_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_or_exit(REPO_PARAMS).seed == 42
    with pytest.raises(typer.Exit) as info:
        load_or_exit(tmp_path / "absent.yaml")
    assert info.value.exit_code == 2
    assert "params file not found" in " ".join(capsys.readouterr().err.split())
