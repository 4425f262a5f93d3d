"""s2ssl.training.resume: only an interrupted run of the same configuration is continued."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from s2ssl.training.resume import fingerprint_of, mark_finished, mark_started, resume_decision


def test_fingerprint_is_the_sha256_of_the_sorted_json() -> None:
    # json.dumps({"b": 1, "a": [2, 3]}, sort_keys=True) == '{"a": [2, 3], "b": 1}'
    expected = hashlib.sha256(b'{"a": [2, 3], "b": 1}').hexdigest()
    assert fingerprint_of({"b": 1, "a": [2, 3]}) == expected
    assert fingerprint_of({"a": [2, 3], "b": 1}) == expected
    assert fingerprint_of({"a": [3, 2], "b": 1}) != expected
    # values JSON cannot hold are written as str: Path("x") is "x"
    assert fingerprint_of({"p": Path("x")}) == fingerprint_of({"p": "x"})


def test_nothing_to_resume_without_a_state(tmp_path: Path) -> None:
    decision = resume_decision(tmp_path / "state.json", "f1")
    assert not decision.resume and decision.reason == "no interrupted run"


def test_an_interrupted_run_of_the_same_configuration_resumes(tmp_path: Path) -> None:
    state = tmp_path / "work" / "state.json"
    mark_started(state, "f1")  # creates the directory
    assert json.loads(state.read_text()) == {"fingerprint": "f1", "finished": False}
    assert resume_decision(state, "f1").resume
    other = resume_decision(state, "f2")
    assert not other.resume and "another configuration" in other.reason


def test_a_finished_run_is_never_resumed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    mark_started(state, "f1")
    mark_finished(state, "f1")
    assert json.loads(state.read_text()) == {"fingerprint": "f1", "finished": True}
    decision = resume_decision(state, "f1")
    assert not decision.resume and "finished" in decision.reason


def test_an_unreadable_state_starts_over(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text('{"fingerprint": "f1", "finis')  # killed mid-write by another tool
    assert not resume_decision(state, "f1").resume
    state.write_text('["f1", false]')  # valid JSON, not a state
    assert not resume_decision(state, "f1").resume
    state.write_text('{"fingerprint": "f1"}')  # no "finished": not known to be interrupted
    assert not resume_decision(state, "f1").resume
