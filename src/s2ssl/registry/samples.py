"""Per-test-sample results of a registered model: what the promotion's bootstrap resamples.

A fine-tuned model directory holds ``test_samples.npz``: ``ids`` (``(n,)`` str, the test sample
ids) and ``confusion`` (``(n, K, K)`` int64, per test sample, rows = truth, columns =
prediction). Registration logs it as an artifact of the ``register`` run and records its URI as
the version tag :data:`~s2ssl.registry.versions.TAG_TEST_SAMPLES`; promotion downloads it
(quietly) for the challenger and the champion and aligns the two by sample id.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from s2ssl.registry.versions import TAG_TEST_SAMPLES, download_quietly

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "TEST_SAMPLES_ARTIFACT_DIR",
    "TEST_SAMPLES_FILE",
    "TestSamples",
    "align_samples",
    "download_test_samples",
    "read_test_samples",
]

TEST_SAMPLES_ARTIFACT_DIR: Final[str] = "test_samples"
"""Where registration logs :data:`TEST_SAMPLES_FILE` among the ``register`` run's artifacts."""

TEST_SAMPLES_FILE: Final[str] = "test_samples.npz"
"""The per-test-sample confusion matrices in a fine-tuned model directory (the name
:mod:`s2ssl.finetune.store` writes; the register / promote stages do not load the fine-tuning
code, so the registry names it itself)."""

TestSamples = tuple[np.ndarray, np.ndarray]
"""``(ids (n,) str, confusion (n, K, K) int64)`` of one model's test set."""


def read_test_samples(path: str | Path) -> TestSamples:
    """The ``(ids, confusion)`` stored in ``path`` (a ``test_samples.npz``), validated.

    Raises:
        ValueError: not readable, arrays missing, wrong shapes or types, duplicate ids or
            negative counts.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, EOFError, ValueError, TypeError, AttributeError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read per-sample test results {path}: {e}") from None
    if not {"ids", "confusion"} <= set(arrays):
        raise ValueError(f"{path} must hold arrays 'ids' and 'confusion', has {sorted(arrays)}")
    ids, confusion = arrays["ids"], arrays["confusion"]
    if ids.ndim != 1 or ids.dtype.kind != "U":
        raise ValueError(f"{path}: 'ids' must be a (n,) str array, got {ids.dtype} {ids.shape}")
    if (
        confusion.ndim != 3
        or confusion.shape[0] != ids.shape[0]
        or confusion.shape[1] != confusion.shape[2]
        or confusion.shape[1] < 2
        or not np.issubdtype(confusion.dtype, np.integer)
    ):
        raise ValueError(
            f"{path}: 'confusion' must be (n, K, K) integer counts with n = {ids.shape[0]} ids, "
            f"got {confusion.dtype} {confusion.shape}"
        )
    if confusion.size and confusion.min() < 0:
        raise ValueError(f"{path}: 'confusion' holds negative counts")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{path}: the test sample ids are not unique")
    return ids, confusion.astype(np.int64, copy=False)


def download_test_samples(version: ModelVersion, uri: str) -> TestSamples | None:
    """The per-sample test results registered with ``version``; ``None`` when it has none.

    Raises:
        ValueError: the tagged artifact cannot be downloaded or read.
    """
    from mlflow.exceptions import MlflowException

    artifact = version.tags.get(TAG_TEST_SAMPLES)
    if not artifact:
        return None
    with tempfile.TemporaryDirectory(prefix="s2ssl-samples-") as tmp:
        try:
            local = download_quietly(artifact, tmp, uri)
        except MlflowException as e:
            raise ValueError(
                f"cannot download the per-sample test results of version {version.version} "
                f"({artifact}): {e}"
            ) from None
        return read_test_samples(local)


def align_samples(
    candidate: TestSamples, champion: TestSamples
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """Both models' confusion matrices in one order (sorted by sample id, so a decision does not
    depend on the order the results were stored in), or why they cannot be compared (other
    sample ids, other classes).

    Returns:
        ``(ids, candidate confusion, champion confusion)``, or a reason (str).
    """
    cand_ids, cand = candidate
    champ_ids, champ = champion
    if set(cand_ids.tolist()) != set(champ_ids.tolist()):
        only_cand = sorted(set(cand_ids.tolist()) - set(champ_ids.tolist()))
        only_champ = sorted(set(champ_ids.tolist()) - set(cand_ids.tolist()))
        return (
            f"the per-sample test results cover other test samples ({len(only_cand)} only the "
            f"candidate's, e.g. {only_cand[:2]}; {len(only_champ)} only the champion's, e.g. "
            f"{only_champ[:2]})"
        )
    if cand.shape[1:] != champ.shape[1:]:
        return (
            f"the per-sample confusion matrices have other classes ({cand.shape[1]} vs "
            f"{champ.shape[1]})"
        )
    cand_order, champ_order = np.argsort(cand_ids), np.argsort(champ_ids)
    return cand_ids[cand_order], cand[cand_order], champ[champ_order]
