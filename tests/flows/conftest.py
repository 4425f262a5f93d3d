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

import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402


def _drop_prefect_exit_hooks_in_forked_child() -> None:
    """Workaround for a Prefect 3.8.8 bug that would fail *other* tests of the session.

    A Prefect background service (the events worker started by any flow run) registers its
    ``drain`` with ``threading._register_atexit``. A process forked later (``multiprocessing``
    with the fork start method, e.g. the registry's concurrent-promotion test) inherits that
    hook while Prefect's after-fork reset clears the service's state, so the hook fails at the
    child's exit (``AssertionError``) and the child exits with 1 although its work succeeded.
    In a forked child those hooks can never do anything useful: drop them there.
    """
    hooks = getattr(threading, "_threading_atexits", None)
    if hooks is not None:
        hooks[:] = [hook for hook in hooks if not _is_prefect_hook(hook)]


def _is_prefect_hook(hook: object) -> bool:
    """A bound method of a Prefect object (hooks are ``functools.partial`` of it)."""
    owner = getattr(getattr(hook, "func", hook), "__self__", None)
    return owner is not None and type(owner).__module__.startswith("prefect.")


os.register_at_fork(after_in_child=_drop_prefect_exit_hooks_in_forked_child)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server + database for the whole session (~15 s to start once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
