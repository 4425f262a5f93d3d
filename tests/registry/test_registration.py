"""Registration: model hash, dvc.lock lineage, idempotency, task checks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from registrykit import CONFIG, segmentation_model

from s2ssl.registry.registration import dvc_lineage, model_hash, register_model
from s2ssl.registry.samples import TEST_SAMPLES_FILE, download_test_samples, read_test_samples
from s2ssl.registry.versions import CHALLENGER


def test_model_hash_depends_on_weights_and_architecture(
    models: dict[str, Path], tmp_path: Path
) -> None:
    assert model_hash(models["a"]) == model_hash(models["a"])
    assert model_hash(models["a"]) != model_hash(models["better"])
    with pytest.raises(ValueError, match="not a fine-tuned model directory"):
        model_hash(tmp_path)


def test_dvc_lineage_reads_the_stage(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        textwrap.dedent(
            """\
            schema: '2.0'
            stages:
              finetune@landcover:
                cmd: s2ssl finetune --task landcover
                deps:
                - path: data/validated/landcover
                  hash: md5
                  md5: abc.dir
                params:
                  params.yaml:
                    seed: 0
                outs:
                - path: models/finetune/landcover/model
                  hash: md5
                  md5: def.dir
            """
        )
    )
    tags = dvc_lineage(lock, "finetune@landcover")
    assert tags["dvc.dep.data/validated/landcover"] == "abc.dir"
    assert tags["dvc.out.models/finetune/landcover/model"] == "def.dir"
    assert len(tags["dvc.params"]) == 64
    assert dvc_lineage(lock, "finetune@scene") == {"dvc.lock": "no entry for stage finetune@scene"}
    assert "dvc.lock" in dvc_lineage(tmp_path / "missing.lock", "x")


@pytest.mark.slow
def test_register_is_idempotent_and_tags_lineage(
    uri: str, models: dict[str, Path], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    first = register_model(CONFIG, "landcover", models["a"], lock_file=tmp_path / "none", uri=uri)
    again = register_model(CONFIG, "landcover", models["a"], lock_file=tmp_path / "none", uri=uri)
    assert first.created and not again.created
    assert (first.name, first.version) == ("s2ssl-landcover", "1")
    assert again.version == first.version
    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions("name = 's2ssl-landcover'")
    assert len(versions) == 1
    tags = versions[0].tags
    assert tags["s2ssl.model_hash"] == model_hash(models["a"])
    assert tags["s2ssl.init"] == "dense"
    assert tags["s2ssl.test_set"] == "T1"
    assert float(tags["metric.miou"]) == pytest.approx(0.40)
    samples = tags["s2ssl.test_samples"]
    assert samples == f"runs:/{first.run_id}/test_samples/test_samples.npz"
    ids, confusion = download_test_samples(versions[0], uri)  # what promotion compares
    expected_ids, expected = read_test_samples(models["a"] / TEST_SAMPLES_FILE)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(confusion, expected)
    assert "git.commit" in tags
    alias = client.get_model_version_by_alias("s2ssl-landcover", CHALLENGER)
    assert str(alias.version) == "1"
    run = client.get_run(first.run_id)
    assert run.data.tags["dvc.stage"] == "register"
    assert run.data.metrics["test.miou"] == pytest.approx(0.40)


def test_register_refuses_unreadable_per_sample_results(uri: str, tmp_path: Path) -> None:
    path = segmentation_model(tmp_path, "m", 0, 0.4)
    np.savez(path / TEST_SAMPLES_FILE, ids=np.array(["a", "a"]), confusion=np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"test_samples\.npz: 'confusion' must be"):
        register_model(CONFIG, "landcover", path, uri=uri)
    from mlflow import MlflowClient

    assert MlflowClient(tracking_uri=uri).search_registered_models() == []


def test_register_refuses_a_model_of_another_task(uri: str, tmp_path: Path) -> None:
    path = segmentation_model(tmp_path, "m", 0, 0.4)
    with pytest.raises(ValueError, match="holds a 'landcover' model, not 'scene'"):
        register_model(CONFIG, "scene", path, uri=uri)
