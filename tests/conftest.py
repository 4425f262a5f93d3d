"""Shared fixtures: a tiny copy of the repo's params.yaml and one tiny fetched world per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit import (  # noqa: F401  (re-exported for fixtures below)
    REPO_PARAMS,
    REPO_ROOT,
    TINY_SIZES,
    read_repo_params,
    selection_space_problem,
    write_params,
    write_tiny_params,
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop before the first test when a selection with slow tests (the full tiny pipeline, the
    end-to-end runs) would fill the temporary directory's disk."""
    problem = selection_space_problem(session.items, session.config.option.basetemp)
    if problem is not None:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture
def repo_params_raw() -> dict[str, Any]:
    """A fresh, mutable copy of the repo's params.yaml mapping (edit it, then write_params)."""
    return read_repo_params()


@pytest.fixture
def tiny_params(tmp_path: Path) -> Path:
    """A tiny params.yaml (4 regions; 2 / 4 / 4 samples per region; shards of 3) in ``tmp_path``."""
    return write_tiny_params(tmp_path / "params.yaml")


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/raw`` holding unlabelled / landcover / croptype fetched once from tiny params.

    Shared by the whole session: treat it as read-only. Reports are in ``<tmp>/reports``.
    """
    from s2ssl.config import load_params
    from s2ssl.data.fetch import fetch

    root = tmp_path_factory.mktemp("tiny_fetch")
    params = load_params(write_tiny_params(root / "params.yaml"))
    fetch(params, root / "raw", root / "reports")
    return root / "raw"


@pytest.fixture(scope="session")
def tiny_validated(tiny_raw: Path) -> Path:
    """``<tmp>/validated`` holding the validated views of :func:`tiny_raw` (read-only).

    Reports (summary.json, quarantine.csv, Data Docs) are in ``<tmp>/validate_reports``.
    """
    from s2ssl.config import load_params
    from s2ssl.validation.validate import validate

    root = tiny_raw.parent
    params = load_params(root / "params.yaml")
    validate(params, tiny_raw, root / "validated", root / "validate_reports")
    return root / "validated"
