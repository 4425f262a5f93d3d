"""Sentinel Hub credentials: checked before any network call, read from the environment or
.env, rejected fast, and never written to outputs, logs or errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sh_server import CLIENT_SECRET, ShImitation
from shkit import run, sh_params

from s2ssl.data import fetch as fetch_module
from s2ssl.data.sources.sentinelhub.auth import (
    Redact,
    SentinelHubAuthError,
    SentinelHubCredentialsError,
)
from s2ssl.data.sources.sentinelhub.source import SentinelHubImagery
from s2ssl.data.store import open_dataset


def test_missing_credentials_fail_before_any_network_call(sh: ShImitation, tmp_path, monkeypatch):
    monkeypatch.delenv("SH_CLIENT_SECRET")
    params = sh_params(tmp_path, ["landcover"])
    with pytest.raises(SentinelHubCredentialsError, match="SH_CLIENT_SECRET") as info:
        fetch_module.fetch(params, tmp_path / "raw", tmp_path / "reports")
    assert "SH_CLIENT_ID" not in str(info.value).split("but")[1].split("is not set")[0]
    assert sum(sh.state.counts.values()) == 0


def test_credentials_come_from_a_dotenv_file(sh: ShImitation, tmp_path, monkeypatch):
    for key in ("SH_CLIENT_ID", "SH_CLIENT_SECRET"):
        monkeypatch.delenv(key)
    (tmp_path / ".env").write_text(
        f"SH_CLIENT_ID={sh.state.client_id}\nSH_CLIENT_SECRET={CLIENT_SECRET}\n"
    )
    params = sh_params(tmp_path, ["landcover"], regions=[{"name": "s", "points": [[14.2, 46.0]]}])
    run(params, tmp_path)
    assert len(open_dataset(tmp_path / "raw" / "landcover")) == 1


def test_wrong_credentials_fail_fast_with_a_clear_message(sh: ShImitation, tmp_path, monkeypatch):
    monkeypatch.setenv("SH_CLIENT_SECRET", "wrong-" + CLIENT_SECRET)
    params = sh_params(tmp_path, ["landcover"])
    with pytest.raises(SentinelHubAuthError, match="rejected the credentials") as info:
        run(params, tmp_path)
    assert CLIENT_SECRET not in str(info.value)
    assert info.value.__suppress_context__  # no chained oauthlib error with request details
    assert sh.state.counts["token_requests"] == 1  # a 401 is never retried
    assert sh.state.counts["catalog_requests"] == sh.state.counts["process_requests"] == 0


@pytest.mark.slow
def test_the_secret_never_appears_in_output_logs_files_or_errors(
    sh: ShImitation, tmp_path: Path, monkeypatch, caplog, capfd
):
    from typer.testing import CliRunner

    from s2ssl.cli import app
    from testkit import write_params

    caplog.set_level(logging.DEBUG)
    debug_file = tmp_path / "debug.log"
    handler = logging.FileHandler(debug_file)
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        params = sh_params(tmp_path, ["unlabelled", "landcover"])
        raw = params.model_dump(mode="json", by_alias=True)
        raw["fetch"]["sentinelhub"]["retry"]["backoff_s"] = 0.0
        params_file = write_params(tmp_path / "params.yaml", raw)
        sh.state.inject("process", [429, 500])
        result = CliRunner().invoke(
            app, ["fetch", "--params", str(params_file), "--out", "raw", "--reports", "reports"]
        )
        assert result.exit_code == 0, result.output
        assert "unlabelled" in result.output
        monkeypatch.setenv("SH_CLIENT_SECRET", CLIENT_SECRET + "-wrong")
        from sentinelhub import SentinelHubDownloadClient

        SentinelHubDownloadClient.clear_cache()
        failed = CliRunner().invoke(
            app, ["fetch", "--params", str(params_file), "--out", "raw2", "--reports", "r2"]
        )
        assert failed.exit_code == 2 and "rejected the credentials" in failed.output
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    captured = capfd.readouterr()
    texts = {
        "cli output": result.output + failed.output,
        "stdout/stderr": captured.out + captured.err,
        "log records": caplog.text,
        "debug log": debug_file.read_text(),
    }
    for where, text in texts.items():
        assert CLIENT_SECRET not in text, f"secret leaked into {where}"
    assert caplog.records, "DEBUG logging was on"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert CLIENT_SECRET.encode() not in path.read_bytes(), f"secret in {path}"
    source = SentinelHubImagery(sh_params(tmp_path, ["landcover"]))
    assert CLIENT_SECRET not in repr(source.settings) + repr(vars(source))


def test_the_log_filter_scrubs_secrets_and_tokens() -> None:
    redact = Redact([CLIENT_SECRET])
    record = logging.LogRecord(
        "requests_oauthlib.oauth2_session",
        logging.DEBUG,
        __file__,
        1,
        "Request body was %s",
        (f"grant_type=client_credentials&client_id=x&client_secret={CLIENT_SECRET}",),
        None,
    )
    redact.filter(record)
    assert CLIENT_SECRET not in record.getMessage() and "client_secret=***" in record.getMessage()
    assert "abc.def" not in redact.scrub("{'access_token': 'abc.def', 'expires_in': 3600}")
    assert "Bearer ***" in redact.scrub("Authorization: Bearer abc.def-ghi")
