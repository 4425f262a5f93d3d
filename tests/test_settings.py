"""Tests of s2ssl.settings: environment settings and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from s2ssl.settings import Settings, get_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No s2ssl settings in the environment and no .env in the working directory."""
    for var in (
        "SH_CLIENT_ID",
        "SH_CLIENT_SECRET",
        "SH_BASE_URL",
        "SH_TOKEN_URL",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_settings_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = get_settings()
    assert s.mlflow_tracking_uri == "sqlite:///mlruns/mlflow.db"
    assert s.sh_base_url == "https://services.sentinel-hub.com"
    assert s.sh_client_id is None
    assert s.sh_client_secret is None
    assert s.sh_token_url is None


def test_settings_secret_from_env_is_hidden(clean_env: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-VALUE-123"
    clean_env.setenv("SH_CLIENT_SECRET", secret)
    clean_env.setenv("SH_CLIENT_ID", "my-client")
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://localhost:5000")
    s = get_settings()
    assert isinstance(s.sh_client_secret, SecretStr)
    assert s.sh_client_secret.get_secret_value() == secret
    assert s.sh_client_id is not None
    assert s.sh_client_id.get_secret_value() == "my-client"
    assert s.mlflow_tracking_uri == "http://localhost:5000"
    for text in (repr(s), str(s), repr(s.sh_client_secret), str(s.sh_client_secret)):
        assert secret not in text
    assert "**********" in str(s.sh_client_secret)


def test_settings_read_dotenv_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SH_CLIENT_SECRET=from-dotenv\nUNRELATED=1\n")
    s = Settings()
    assert s.sh_client_secret is not None
    assert s.sh_client_secret.get_secret_value() == "from-dotenv"
    # the environment wins over .env
    clean_env.setenv("SH_CLIENT_SECRET", "from-env")
    assert get_settings().sh_client_secret.get_secret_value() == "from-env"  # type: ignore[union-attr]
