"""Per-test-sample results: reading and validating test_samples.npz, aligning two models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from registrykit import pixel_results, sample_ids, write_results

from s2ssl.registry.samples import TEST_SAMPLES_FILE, align_samples, read_test_samples


def test_read_test_samples_round_trip(tmp_path: Path) -> None:
    ids, confusion = pixel_results(0.4, 0, n=5)
    write_results(tmp_path, ids, confusion)
    got_ids, got = read_test_samples(tmp_path / TEST_SAMPLES_FILE)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, confusion)
    assert got.dtype == np.int64


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"ids": sample_ids(2)}, "must hold arrays 'ids' and 'confusion'"),
        ({"ids": np.arange(2), "confusion": np.ones((2, 2, 2), int)}, "str array"),
        ({"ids": sample_ids(3), "confusion": np.ones((2, 2, 2), int)}, "n = 3 ids"),
        ({"ids": sample_ids(2), "confusion": np.ones((2, 2, 3), int)}, r"\(n, K, K\)"),
        ({"ids": sample_ids(2), "confusion": np.ones((2, 2, 2))}, "integer counts"),
        ({"ids": sample_ids(2), "confusion": -np.ones((2, 2, 2), int)}, "negative"),
        ({"ids": np.array(["a", "a"]), "confusion": np.ones((2, 2, 2), int)}, "not unique"),
    ],
)
def test_read_test_samples_rejects_bad_files(tmp_path: Path, arrays, match) -> None:
    path = tmp_path / TEST_SAMPLES_FILE
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        read_test_samples(path)


def test_read_test_samples_of_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / TEST_SAMPLES_FILE
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read per-sample test results"):
        read_test_samples(path)


def test_align_samples_sorts_both_by_id() -> None:
    ids = np.array(["b", "c", "a"])
    cand = np.arange(3 * 4).reshape(3, 2, 2)
    champ = 100 + cand[[2, 0, 1]]  # champion stored in the order a, b, c
    got_ids, got_cand, got_champ = align_samples((ids, cand), (np.array(["a", "b", "c"]), champ))
    assert got_ids.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(got_cand, cand[[2, 0, 1]])
    np.testing.assert_array_equal(got_champ, champ)


def test_align_samples_says_why_not() -> None:
    cand = (np.array(["a", "b"]), np.ones((2, 2, 2), int))
    assert "other test samples (1 only the candidate's, e.g. ['b']" in str(
        align_samples(cand, (np.array(["a", "c"]), np.ones((2, 2, 2), int)))
    )
    assert "other classes (2 vs 3)" in str(
        align_samples(cand, (np.array(["a", "b"]), np.ones((2, 3, 3), int)))
    )


def test_the_registry_reads_the_file_name_the_finetune_store_writes() -> None:
    from s2ssl.finetune.store import TEST_SAMPLES_FILE as WRITTEN

    assert TEST_SAMPLES_FILE == WRITTEN
