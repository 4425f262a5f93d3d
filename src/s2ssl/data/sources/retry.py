"""Retries with exponential back-off and jitter, for calls to a web service.

Transient failures (HTTP 429 and 5xx, connection errors, timeouts) are retried; other 4xx are
not (the same request would fail again); 401 / 403 mean bad credentials or missing rights and
abort the whole run at once. The sleep function is injectable so tests run without waiting.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from s2ssl.config import RetryConfig

T = TypeVar("T")


class TransientError(ValueError):
    """A failure worth retrying (429, 5xx, connection error); ``status`` is the HTTP status."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentError(ValueError):
    """A failure that a retry would not fix (4xx other than 429); ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetriesExhaustedError(PermanentError):
    """A transient failure that outlasted every attempt."""


@dataclass
class RetryPolicy:
    """Back-off schedule: attempt ``k`` (from 1) sleeps ``backoff_s · 2^(k-1)``, capped at
    ``max_backoff_s``, times ``uniform(1 - jitter, 1 + jitter)``; a server ``Retry-After`` wins
    when it is longer (still capped)."""

    max_attempts: int = 6
    backoff_s: float = 2.0
    max_backoff_s: float = 120.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    retries: int = 0
    """Retries made so far (all calls), for reports."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_config(
        cls, cfg: RetryConfig, sleep: Callable[[float], None] = time.sleep
    ) -> RetryPolicy:
        """The policy of a ``retry`` params section."""
        return cls(cfg.max_attempts, cfg.backoff_s, cfg.max_backoff_s, cfg.jitter, sleep)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep after failed attempt ``attempt`` (1-based)."""
        base = min(self.backoff_s * 2.0 ** (attempt - 1), self.max_backoff_s)
        if retry_after is not None:
            base = min(max(base, retry_after), self.max_backoff_s)
        return base * self.rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, retried on :class:`TransientError`; raises :class:`RetriesExhaustedError`
        (naming ``what``) when every attempt failed, and lets every other error through."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except TransientError as e:
                if attempt == self.max_attempts:
                    raise RetriesExhaustedError(
                        f"{what}: still failing after {self.max_attempts} attempts ({e})",
                        status=e.status,
                    ) from None
                with self._lock:
                    self.retries += 1
                self.sleep(self.delay(attempt, e.retry_after))
        raise RetriesExhaustedError(f"{what}: max_attempts must be >= 1")
