"""Tests of atomic file output (s2ssl.io)."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import pytest

from s2ssl.io import (
    atomic_dir,
    atomic_path,
    current_umask,
    new_sibling,
    recover_dir,
    write_json_atomic,
    write_text_atomic,
)


def test_atomic_path_success_replaces_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp != target
        assert tmp.parent == target.parent  # same file system: rename is atomic
        assert tmp.exists()
        tmp.write_text("new")
        assert target.read_text() == "old"  # not replaced before the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_creates_missing_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_atomic_path_exception_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        seen.append(tmp)
        tmp.write_text("half-written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert not seen[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_exception_without_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "fresh.json"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("{")
        raise KeyboardInterrupt  # BaseException too: no stray temp file
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic(tmp_path: Path) -> None:
    target = tmp_path / "t.txt"
    assert write_text_atomic(target, "héllo\n") == target
    assert target.read_bytes() == "héllo\n".encode()


def test_atomic_writes_get_the_permissions_of_an_ordinary_new_file(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        atomic = write_text_atomic(tmp_path / "atomic.txt", "x")
        assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o640
        os.umask(0o022)
        assert stat.S_IMODE(write_json_atomic(tmp_path / "a.json", {}).stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_write_json_atomic_sorted_keys(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    data = {"b": 1, "a": {"z": 2, "y": [3, 1]}, "c.n_samples": 16}
    assert write_json_atomic(target, data) == target
    text = target.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == data
    top_keys = [line.strip().split(":")[0] for line in text.splitlines() if line.startswith('  "')]
    assert top_keys == ['"a"', '"b"', '"c.n_samples"']
    assert text.index('"y"') < text.index('"z"')  # nested keys are sorted too
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_write_json_atomic_unserialisable_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_json_atomic(target, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_atomic_dir_replaces_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "1"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no hidden leftovers


def test_atomic_dir_failure_keeps_previous_version(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "good.txt").write_text("good")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["good.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_recover_dir_after_crash_between_renames(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "v1").write_text("1")
    old = new_sibling(target, "old")
    target.rename(old)  # crash after "path -> old", before "tmp -> path"
    recover_dir(target)
    assert (target / "v1").read_text() == "1"


def test_file_lock_is_exclusive_across_processes_and_freed_on_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    from s2ssl.io import file_lock

    lock = tmp_path / "sub" / "x.lock"
    probe = (
        "import sys\nfrom s2ssl.io import file_lock\n"
        "try:\n    with file_lock(sys.argv[1], wait=False):\n        print('free')\n"
        "except BlockingIOError:\n    print('held')\n"
    )

    def other() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(lock)], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    with file_lock(lock) as held:
        assert held == lock and lock.is_file()
        assert other() == "held"
    assert other() == "free"


def test_file_lock_serialises_threads(tmp_path: Path) -> None:
    import threading
    import time

    from s2ssl.io import file_lock

    lock = tmp_path / "t.lock"
    inside: list[int] = []
    overlaps: list[int] = []
    spans: list[tuple[float, float]] = []

    def work(i: int) -> None:
        with file_lock(lock):
            inside.append(i)
            if len(inside) > 1:
                overlaps.append(i)
            start = time.monotonic()
            time.sleep(0.05)
            spans.append((start, time.monotonic()))
            inside.remove(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps and len(spans) == 4
    spans.sort()
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_file_lock_timeout_and_no_wait_raise_a_clear_error(tmp_path: Path) -> None:
    import threading
    import time

    from s2ssl.io import file_lock

    lock = tmp_path / "held.lock"
    with file_lock(lock):
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with file_lock(lock, timeout=0.2):
                    pass
            except BlockingIOError as e:
                errors.append(e)

        start = time.monotonic()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert time.monotonic() - start >= 0.2
        assert len(errors) == 1 and str(lock) in str(errors[0]) and "0.2 s" in str(errors[0])
        with pytest.raises(BlockingIOError, match="not free at once"), file_lock(lock, wait=False):
            pass
    with file_lock(lock, timeout=0.2) as again:  # free again once released
        assert again == lock
    with pytest.raises(ValueError, match="timeout must be"), file_lock(lock, timeout=-1):
        pass
