"""Sentinel Hub credentials: read from the settings (environment / ``.env``), checked before any
network call, and kept out of every log record of the HTTP stack."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from pydantic import SecretStr

from s2ssl.settings import Settings

_SECRET_PATTERNS: Final[tuple[re.Pattern[str], ...]] = (
    re.compile(r"(client_secret=)[^&\s'\"]+"),
    re.compile(r"(['\"]access_token['\"]\s*:\s*['\"])[^'\"]+"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"),
)
_NOISY_LOGGERS: Final[tuple[str, ...]] = (
    "requests_oauthlib.oauth2_session",
    "oauthlib.oauth2.rfc6749.clients.base",
    "oauthlib.oauth2.rfc6749.parameters",
    "urllib3.connectionpool",
    "sentinelhub.download.session",
    "sentinelhub.download.sentinelhub_client",
    "sentinelhub.download.client",
    "sentinelhub.download.handlers",
)


class SentinelHubCredentialsError(ValueError):
    """Credentials are missing (raised before any network call)."""


class SentinelHubAuthError(ValueError):
    """The service rejected the credentials or the account lacks rights (HTTP 401 / 403)."""


def credentials(settings: Settings) -> tuple[str, SecretStr]:
    """The OAuth client id and secret; :class:`SentinelHubCredentialsError` names what to set."""
    missing = [
        name
        for name, value in (
            ("SH_CLIENT_ID", settings.sh_client_id),
            ("SH_CLIENT_SECRET", settings.sh_client_secret),
        )
        if value is None or not value.get_secret_value().strip()
    ]
    if missing or settings.sh_client_id is None or settings.sh_client_secret is None:
        raise SentinelHubCredentialsError(
            f"fetch.source is sentinelhub but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: export SH_CLIENT_ID and "
            "SH_CLIENT_SECRET (an OAuth client of your Sentinel Hub / Copernicus Data Space "
            "account) or put them in a .env file in the working directory. Never put them in "
            "params.yaml."
        )
    return settings.sh_client_id.get_secret_value().strip(), settings.sh_client_secret


class Redact(logging.Filter):
    """Scrubs secrets (client secret, access tokens) from log records of the HTTP stack."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for s in self.secrets:
            text = text.replace(s, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


@contextmanager
def secrets_kept(secret: str) -> Iterator[None]:
    """While inside: the HTTP stack's loggers are scrubbed of secrets, and the OAuth ones log at
    most INFO (requests-oauthlib logs the token request body, client secret included, at DEBUG)."""
    redact = Redact([secret])
    saved: list[tuple[logging.Logger, int]] = []
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addFilter(redact)
        if "oauthlib" in name and logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)  # they log request bodies at DEBUG
    try:
        yield
    finally:
        for logger, level in saved:
            logger.removeFilter(redact)
            logger.setLevel(level)
