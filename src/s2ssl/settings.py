"""Environment-only settings: credentials and endpoints.

Read from the process environment or a ``.env`` file in the working directory, never from
``params.yaml``. Secret values are :class:`pydantic.SecretStr`, so they print as ``**********``
in reprs, logs and error messages.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Credentials and service endpoints."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    sh_client_id: SecretStr | None = Field(default=None, alias="SH_CLIENT_ID")
    sh_client_secret: SecretStr | None = Field(default=None, alias="SH_CLIENT_SECRET")
    sh_base_url: str = Field(default="https://services.sentinel-hub.com", alias="SH_BASE_URL")
    sh_token_url: str | None = Field(default=None, alias="SH_TOKEN_URL")
    mlflow_tracking_uri: str = Field(
        default="sqlite:///mlruns/mlflow.db", alias="MLFLOW_TRACKING_URI"
    )


def get_settings() -> Settings:
    """Fresh settings from the current environment (cheap; not cached, so tests can patch env)."""
    return Settings()
