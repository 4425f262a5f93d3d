"""Resumable stage directories: continue an interrupted run, never reuse a finished one.

The training stages keep their work in DVC ``persist`` outputs (pre-training checkpoints, the
per-run results of fine-tuning), which survive a re-run. Whether a stage runs at all is DVC's
decision alone: it re-runs a stage when code, data or params that the stage depends on changed.
This module only decides *how* it runs:

- the directory holds the work of a run that **finished**: it is stale by definition (DVC would
  not run the stage again otherwise), so the stage starts over;
- it holds the work of a run that was **interrupted** (killed, crashed) with the same
  configuration: the stage continues it, and ends where an uninterrupted run would;
- anything else (no state, an interrupted run of another configuration, an unreadable state
  file): the stage starts over.

The state is one small JSON file, written atomically: ``{"fingerprint": ..., "finished": bool}``.
The fingerprint is whatever identifies the configuration of the run (the caller hashes the
params, data and inputs it uses); it only guards the resumption of an interrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2ssl.io import write_json_atomic

__all__ = ["ResumeDecision", "fingerprint_of", "mark_finished", "mark_started", "resume_decision"]

_LOG = logging.getLogger(__name__)


def fingerprint_of(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a JSON-serialisable record (keys sorted; non-JSON values as ``str``)."""
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ResumeDecision:
    """Whether the work in a stage directory may be continued, and why."""

    resume: bool
    reason: str


def _read_state(state_file: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        _LOG.warning("unreadable resume state %s (%s): starting over", state_file, e)
        return None
    return state if isinstance(state, dict) else None


def resume_decision(state_file: str | Path, fingerprint: str) -> ResumeDecision:
    """Whether the run recorded in ``state_file`` is an interrupted run of ``fingerprint``."""
    state = _read_state(Path(state_file))
    if state is None:
        return ResumeDecision(False, "no interrupted run")
    if state.get("finished") is not False:
        return ResumeDecision(False, "the previous run finished: the stage runs again from scratch")
    if state.get("fingerprint") != fingerprint:
        return ResumeDecision(False, "the interrupted run had another configuration")
    return ResumeDecision(True, "continuing an interrupted run of the same configuration")


def mark_started(state_file: str | Path, fingerprint: str) -> None:
    """Record that a run of ``fingerprint`` is in progress in ``state_file``'s directory."""
    path = Path(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"fingerprint": fingerprint, "finished": False})


def mark_finished(state_file: str | Path, fingerprint: str) -> None:
    """Record that the run of ``fingerprint`` completed (its work will not be reused)."""
    write_json_atomic(Path(state_file), {"fingerprint": fingerprint, "finished": True})
