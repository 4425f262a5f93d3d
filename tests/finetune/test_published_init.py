"""A published encoder named in ``finetune.published`` initialises land cover and scenes like
ours: bands from the checkpoint (refused when the data lack them unless ``adapt_bands``), its
input standardisation, weights bit for bit, the load report in :class:`InitInfo`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from s2ssl.bands import BAND_NAMES
from s2ssl.classes import ClassSet
from s2ssl.config import Params, load_params
from s2ssl.data.stats import NormStats
from s2ssl.finetune.data import TaskData, TaskSplit
from s2ssl.finetune.fitting import execute_run
from s2ssl.finetune.inits import initial_model
from s2ssl.finetune.plan import RunSpec
from s2ssl.finetune.store import encoder_sha256, run_fingerprint
from s2ssl.models.downstream import SceneNet, SegmentationNet
from s2ssl.models.published import SECO_STANDARDISATION
from s2ssl.synthetic_vocabulary import LANDCOVER_CLASSES
from testkit import REPO_PARAMS
from weightkit import seco_checkpoint, ssl4eo_checkpoint

N = len(BAND_NAMES)


def _params(published: dict[str, Any], **extra: Any) -> Params:
    overrides = {
        "finetune.published": published,
        "finetune.landcover.inits": ["random", *published],
        "finetune.scene.inits": ["random", *published],
        **extra,
    }
    return load_params(REPO_PARAMS, overrides=overrides)


def _entry(path: str, **kw: Any) -> dict[str, Any]:
    return {"path": path, "format": "auto", "bands": None, "adapt_bands": False, **kw}


def _data() -> TaskData:
    split = TaskSplit(
        image=torch.randint(0, 3000, (4, 1, N, 32, 32)).to(torch.int16),
        doy=torch.full((4, 1), 100),
        label=torch.randint(0, len(LANDCOVER_CLASSES), (4, 32, 32)),
        ids=tuple(f"s{i}" for i in range(4)),
        strata=np.zeros(4, np.int64),
        bands=tuple(BAND_NAMES),
    )
    stats = NormStats(
        bands=tuple(BAND_NAMES),
        mean=tuple(0.1 + 0.01 * i for i in range(N)),
        std=tuple(0.05 + 0.001 * i for i in range(N)),
        quantiles=(0.02, 0.98),
        low=(0.0,) * N,
        high=(0.5,) * N,
        n_pixels=100,
    )
    classes = ClassSet.from_names(LANDCOVER_CLASSES)
    return TaskData("landcover", "in_domain", classes, split, split, split, stats, {}, Path("x"))


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


def test_seco_initialises_the_land_cover_encoder_with_its_rgb_bands(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, backbone = seco_checkpoint(18)
    torch.save(checkpoint, weights / "seco.ckpt")
    params = _params({"seco_official": _entry("weights/seco.ckpt")})
    model, info = initial_model("landcover", "seco_official", params, _data(), tmp_path)
    assert isinstance(model, SegmentationNet) and model.bands == ("B02", "B03", "B04")
    encoder = model.backbone.encoder
    assert torch.equal(encoder.layer3[1].conv2.weight, backbone["layer3.1.conv2.weight"])
    assert torch.equal(encoder.conv1.weight[:, 0], backbone["conv1.weight"][:, 2])
    expected = [SECO_STANDARDISATION[b][0] for b in model.bands]
    assert torch.allclose(model.normalize.mean, torch.tensor(expected))
    assert info.load_report["layout"] == "seco" and info.encoder == "weights/seco.ckpt"
    assert all(k.startswith("backbone.encoder.") for k in info.transferred)
    assert "finetune.published.seco_official: loaded weights/seco.ckpt as seco" in (
        capsys.readouterr().err
    )

    scene, _ = initial_model("scene", "seco_official", params, _data(), tmp_path)
    assert isinstance(scene, SceneNet) and scene.bands == ("B02", "B03", "B04")


def test_bands_the_data_lack_are_refused_by_name_unless_adapted(
    weights: Path, tmp_path: Path
) -> None:
    checkpoint, backbone = ssl4eo_checkpoint(18, 13)
    torch.save(checkpoint, weights / "ssl4eo.pth")
    params = _params({"ssl4eo": _entry("weights/ssl4eo.pth")})  # the run: bands l2a (no B10)
    with pytest.raises(ValueError, match=r"needs bands \['B10'\].*adapt_bands: true"):
        initial_model("landcover", "ssl4eo", params, _data(), tmp_path)

    params = _params({"ssl4eo": _entry("weights/ssl4eo.pth", adapt_bands=True)})
    model, info = initial_model("landcover", "ssl4eo", params, _data(), tmp_path)
    assert model.bands == params.band_names and "B10" not in model.bands
    adapted = info.load_report["adapted"]
    assert adapted["dropped"] == ["B10"] and adapted["new"] == [] and adapted["scale"] == 13 / 12
    conv = model.backbone.encoder.conv1.weight
    source = backbone["conv1.weight"]  # SSL4EO order: B8A at 8, B10 at 10
    assert torch.allclose(conv[:, model.bands.index("B8A")], source[:, 8] * 13 / 12)
    assert torch.allclose(model.normalize.std, torch.ones(12))

    l1c = _params({"ssl4eo": _entry("weights/ssl4eo.pth")}, bands="l1c")
    model, info = initial_model("scene", "ssl4eo", l1c, _data(), tmp_path)
    assert model.bands.index("B8A") == 8 and not info.load_report["adapted"]


def test_the_run_fingerprint_follows_the_published_file(weights: Path, tmp_path: Path) -> None:
    checkpoint, _ = seco_checkpoint(18)
    torch.save(checkpoint, weights / "seco.ckpt")
    params = _params({"seco_official": _entry("weights/seco.ckpt")})
    spec = RunSpec("landcover", "in_domain", "seco_official", "finetune", 1.0, 0)
    published = params.finetune.published
    before = encoder_sha256(tmp_path, spec, published)
    assert before is not None and len(before) == 64
    print_before = run_fingerprint(params, spec, {}, before)
    checkpoint["state_dict"]["encoder_q.0.weight"] += 1
    torch.save(checkpoint, weights / "seco.ckpt")
    after = encoder_sha256(tmp_path, spec, published)
    assert after != before and run_fingerprint(params, spec, {}, after) != print_before
    (weights / "seco.ckpt").unlink()
    assert encoder_sha256(tmp_path, spec, published) == "missing"


@pytest.mark.parametrize(
    ("published", "inits", "message"),
    [
        ({"x": _entry("models/x.pth")}, ["random", "x"], "under weights/"),
        ({"x": _entry("weights/../x.pth")}, ["random", "x"], "must not leave"),
        ({"seco": _entry("weights/x.pth")}, ["random"], "not one of the built-in"),
        ({}, ["random", "ssl4eo"], r"unknown init\(s\) \['ssl4eo'\]"),
        ({"x": _entry("weights/x.pth", bands=["B99"])}, ["random"], "unknown Sentinel-2 band"),
    ],
)
def test_published_config_errors(published: dict, inits: list[str], message: str) -> None:
    with pytest.raises((ValidationError, ValueError), match=message):
        load_params(
            REPO_PARAMS,
            overrides={"finetune.published": published, "finetune.landcover.inits": inits},
        )


def test_a_published_run_records_its_load_report(weights: Path, tmp_path: Path) -> None:
    checkpoint, _ = seco_checkpoint(18)
    torch.save(checkpoint, weights / "seco.ckpt")
    params = _params(
        {"seco_official": _entry("weights/seco.ckpt")},
        **{"finetune.landcover.steps": 2, "finetune.landcover.val_every": 1},
    )
    spec = RunSpec("landcover", "in_domain", "seco_official", "finetune", 1.0, 0)
    run = execute_run(params, spec, _data(), tmp_path, "f" * 64, {})
    record = run.record
    assert record["published"] is True and record["pretrain_method"] is None
    assert record["encoder_unit"] is None and record["encoder"] == "weights/seco.ckpt"
    assert record["bands"] == ["B02", "B03", "B04"]
    assert record["load_report"]["layout"] == "seco"
    assert record["encoder_sha256"] == encoder_sha256(tmp_path, spec, params.finetune.published)


def test_a_fabricated_ssl4eo_checkpoint_fine_tunes_as_an_init(
    weights: Path, tmp_path: Path
) -> None:
    checkpoint, backbone = ssl4eo_checkpoint(18, 13)
    torch.save(checkpoint, weights / "ssl4eo.pth")
    params = _params(
        {"ssl4eo": _entry("weights/ssl4eo.pth", adapt_bands=True)},
        **{"finetune.landcover.steps": 2, "finetune.landcover.val_every": 1},
    )
    spec = RunSpec("landcover", "in_domain", "ssl4eo", "finetune", 1.0, 0)
    run = execute_run(params, spec, _data(), tmp_path, "f" * 64, {})
    record = run.record
    assert record["load_report"]["layout"] == "ssl4eo_moco"
    assert record["load_report"]["adapted"]["dropped"] == ["B10"]
    assert record["bands"] == list(params.band_names)
    assert 0.0 <= record["test"]["miou"] <= 1.0
    # two optimiser steps moved the transferred encoder away from the checkpoint
    trained = run.model.backbone.encoder.layer4[1].conv2.weight.detach()
    assert not torch.equal(trained, backbone["layer4.1.conv2.weight"])
