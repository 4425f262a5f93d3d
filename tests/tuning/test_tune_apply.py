"""`s2ssl tune apply`: the best values go into params.yaml, nothing else changes."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from s2ssl.config import ConfigError, load_params
from s2ssl.tuning.apply import apply_best_params, yaml_scalar
from testkit import REPO_PARAMS


def _best(path: Path, values: dict[str, Any]) -> Path:
    doc = {"study": "s-0123456789", "trial": 3, "value": 0.5, "params": values}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(REPO_PARAMS, tmp_path / "params.yaml"))


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old line, new line) pairs of a diff that only replaces lines one for one."""
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    pairs = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            assert tag == "replace" and i2 - i1 == j2 - j1
            pairs += list(zip(a[i1:i2], b[j1:j2], strict=True))
    return pairs


BATCH_COMMENT = "on CPU a step costs about the same as batch 8"


def test_apply_changes_exactly_the_best_keys_and_keeps_comments(
    params_copy: Path, tmp_path: Path
) -> None:
    before = params_copy.read_text(encoding="utf-8")
    best = _best(
        tmp_path / "best.yaml",
        {
            "finetune.landcover.lr": 1.5e-05,  # an exponent: must stay a float for PyYAML / DVC
            "finetune.landcover.batch_size": 16,
            "finetune.landcover.weight_decay": 0.0001,  # unchanged: not reported
            "finetune.scene.linear.lr": 0.125,  # inside a flow mapping
        },
    )
    changes = apply_best_params(best, params_copy)
    assert [(c.key, c.old, c.new) for c in changes] == [
        ("finetune.landcover.lr", 0.003, 1.5e-05),
        ("finetune.landcover.batch_size", 32, 16),
        ("finetune.scene.linear.lr", 0.05, 0.125),
    ]
    after = params_copy.read_text(encoding="utf-8")
    assert _changed_lines(before, after) == [
        (
            "    batch_size: 32           # of 32 px crops: " + BATCH_COMMENT,
            "    batch_size: 16           # of 32 px crops: " + BATCH_COMMENT,
        ),
        (
            "    lr: 0.003                # AdamW, cosine decay over the steps",
            "    lr: 1.5e-05              # AdamW, cosine decay over the steps",
        ),
        (
            "    linear: {epochs: 200, lr: 0.05, weight_decay_choices: [0.0, 0.0001, 0.001, 0.01, "
            "0.1]}",
            "    linear: {epochs: 200, lr: 0.125, weight_decay_choices: [0.0, 0.0001, 0.001, 0.01, "
            "0.1]}",
        ),
    ]
    params = load_params(params_copy)
    assert params.finetune.landcover.lr == 1.5e-05 and params.finetune.landcover.batch_size == 16
    assert params.finetune.scene.linear.lr == 0.125
    assert apply_best_params(best, params_copy) == []  # idempotent
    assert params_copy.read_text(encoding="utf-8") == after


def test_apply_refuses_a_missing_key_and_invalid_values(params_copy: Path, tmp_path: Path) -> None:
    before = params_copy.read_text(encoding="utf-8")
    missing = _best(
        tmp_path / "missing.yaml",
        {"finetune.landcover.lr": 0.002, "finetune.landcover.flop": False},
    )
    with pytest.raises(ValueError, match=r"finetune\.landcover\.flop does not exist in .*params"):
        apply_best_params(missing, params_copy)
    invalid = _best(tmp_path / "invalid.yaml", {"finetune.landcover.lr": 20.0})
    with pytest.raises(ConfigError, match=r"finetune\.landcover\.lr: Input should be less"):
        apply_best_params(invalid, params_copy)
    with pytest.raises(ValueError, match=r"not found: run the sweep first"):
        apply_best_params(tmp_path / "nowhere.yaml", params_copy)
    assert params_copy.read_text(encoding="utf-8") == before  # nothing written


def test_yaml_scalars_read_back_alike() -> None:
    for value in (1e-05, 2.5e20, 0.1, 3.0, -7e-9, 8, True, None, "all", "yes", "a b"):
        token = yaml_scalar(value)
        assert yaml.safe_load(f"k: {token}") == {"k": value}, token
    assert yaml_scalar(1e-05) == "1.0e-05"


def test_apply_writes_one_line_lists_and_refuses_mappings(
    params_copy: Path, tmp_path: Path
) -> None:
    best = _best(
        tmp_path / "lists.yaml",
        {"finetune.fractions": [0.01, 0.1, 1.0], "finetune.scene.protocols": ["linear", "knn"]},
    )
    changes = apply_best_params(best, params_copy)
    text = params_copy.read_text(encoding="utf-8")
    assert "  fractions: [0.01, 0.1, 1.0]" in text
    assert [c.key for c in changes] == ["finetune.fractions"]  # protocols already equal
    assert load_params(params_copy).finetune.fractions == [0.01, 0.1, 1.0]
    mapping = _best(tmp_path / "mapping.yaml", {"finetune.region_transfer": [0.1]})
    with pytest.raises(ValueError, match=r"region_transfer in .* is a mapping"):
        apply_best_params(mapping, params_copy)


def test_apply_fills_a_null_section_with_a_one_line_mapping_only(
    params_copy: Path, tmp_path: Path
) -> None:
    section = {
        "format": "pastis",
        "path": "data/benchmarks/pastis",
        "split_dir": None,
        "splits": {"train": 0.6, "val": 0.2, "test": 0.2},
        "folds": {"train": [1, 2, 3], "val": [4], "test": [5]},
        "exclude_snow_cloud": True,
        "max_per_split": None,
    }
    best = _best(tmp_path / "bench.yaml", {"fetch.benchmark": section})
    before = params_copy.read_text(encoding="utf-8")
    changes = apply_best_params(best, params_copy)
    assert [(c.key, c.old) for c in changes] == [("fetch.benchmark", None)]
    ((old, new),) = _changed_lines(before, params_copy.read_text(encoding="utf-8"))
    assert old.startswith("  benchmark: null ") and new.startswith(
        "  benchmark: {format: pastis, path: data/benchmarks/pastis, split_dir: null, "
        "splits: {train: 0.6, val: 0.2, test: 0.2}, folds: {train: [1, 2, 3], val: [4], "
    )
    assert load_params(params_copy).fetch.benchmark.folds == section["folds"]
    # a mapping never replaces a section that is set: its keys are changed one by one
    over = _best(tmp_path / "over.yaml", {"fetch.benchmark": {**section, "format": "eurosat"}})
    with pytest.raises(ValueError, match="replaces only a section that is null"):
        apply_best_params(over, params_copy)
