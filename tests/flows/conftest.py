"""Flow tests: a quiet offline Prefect (temporary PREFECT_HOME, no telemetry) and one test server
per session (``prefect_test_harness``)."""

from __future__ import annotations

import os
import tempfile

# before prefect is imported anywhere: its settings are read from the environment at import
for _key, _value in {
    "PREFECT_HOME": tempfile.mkdtemp(prefix="s2ssl-prefect-home-"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_key, _value)

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server + database for the whole session (~15 s to start once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
