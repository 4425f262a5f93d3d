"""Fixtures of the data tests: the Sentinel Hub imitation (:mod:`sh_server`) wired into the
environment, shared by the fetch and the area-acquisition tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sh_server import ShImitation


@pytest.fixture
def sh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ShImitation]:
    """A fresh imitation, the environment pointing at it, no token cached, no .env around."""
    from sentinelhub import SentinelHubDownloadClient

    monkeypatch.chdir(tmp_path)
    SentinelHubDownloadClient.clear_cache()
    with ShImitation() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        yield server
    SentinelHubDownloadClient.clear_cache()
