"""The suite's own guard: a disk too full for the temporary files is refused before any test."""

from __future__ import annotations

import shutil
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest

from testkit import SUITE_TEMP_BYTES, selection_space_problem, temp_space_problem

Usage = namedtuple("Usage", "total used free")
GIB = 2**30


class Item:
    """A collected test item, as far as the guard looks at it."""

    def __init__(self, slow: bool) -> None:
        self.slow = slow

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "slow" and self.slow else None


def _free(monkeypatch: pytest.MonkeyPatch, free: int) -> list[Path]:
    asked: list[Path] = []

    def usage(path: Path) -> Usage:
        asked.append(Path(path))
        return Usage(100 * GIB, 0, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    return asked


def test_enough_free_space_passes_and_too_little_names_the_need(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _free(monkeypatch, SUITE_TEMP_BYTES)
    assert temp_space_problem(tmp_path) is None
    _free(monkeypatch, GIB // 2)
    problem = temp_space_problem(tmp_path)
    assert problem is not None
    assert f"up to 7 GiB of temporary files under {tmp_path}, which has 0.5 GiB free" in problem
    assert f"rm -rf {tmp_path}/pytest-of-*" in problem


def test_only_a_selection_with_slow_tests_is_checked_where_its_files_go(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked = _free(monkeypatch, GIB)
    assert selection_space_problem([Item(False), Item(False)], None) is None
    assert asked == []  # fast tests only: not even looked at
    problem = selection_space_problem([Item(False), Item(True)], None)
    assert problem is not None and asked == [Path(tempfile.gettempdir())]
    assert selection_space_problem([Item(True)], str(tmp_path / "bt")) is not None
    assert asked[-1] == tmp_path  # --basetemp's parent
