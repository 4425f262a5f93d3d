"""The fetch stage as a library call: outputs, summary, and a failure that loses nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from s2ssl.config import load_params
from s2ssl.data import fetch as fetch_module
from s2ssl.data.quicklooks import crop_ndvi_table
from s2ssl.data.store import open_dataset
from s2ssl.synthetic_vocabulary import CROP_CLASSES
from testkit import write_tiny_params


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_summary_matches_the_stores(tiny_raw: Path) -> None:
    import json

    summary = json.loads((tiny_raw.parent / "reports" / "summary.json").read_text())
    for name in ("unlabelled", "landcover", "croptype"):
        ds = open_dataset(tiny_raw / name)
        assert summary[f"{name}.n_samples"] == len(ds)
        assert sum(summary.get(f"{name}.n_{s}", 0) for s in ("train", "val", "test")) == len(ds)
    fractions = [summary[f"croptype.croptype_fraction.{c}"] for c in CROP_CLASSES]
    assert sum(fractions) == pytest.approx(1.0, abs=1e-3)
    lc = open_dataset(tiny_raw / "landcover")
    counts = np.bincount(lc.read_many("landcover", range(len(lc))).ravel(), minlength=7)
    assert summary["landcover.landcover_fraction.water"] == pytest.approx(
        counts[0] / counts.sum(), abs=1e-5
    )


def test_ndvi_table_has_one_curve_per_crop(tiny_raw: Path) -> None:
    ds = open_dataset(tiny_raw / "croptype")
    table = crop_ndvi_table(ds)
    n, t = len(ds), ds.specs["image"].shape[0]
    assert table["doy"].shape == (n, t)
    assert table["ndvi"].shape == (n, t, len(ds.classes("croptype"))) == (n, t, len(CROP_CLASSES))
    assert np.isfinite(table["ndvi"][:, :, 0]).any()  # every class of the dataset has a curve
    finite = table["ndvi"][np.isfinite(table["ndvi"])]
    assert finite.size > 0 and (finite > -1).all() and (finite < 1).all()


@pytest.mark.slow
def test_a_failing_fetch_leaves_the_previous_dataset_intact(tmp_path: Path, monkeypatch) -> None:
    params = load_params(write_tiny_params(tmp_path / "params.yaml"))
    out, reports = tmp_path / "raw", tmp_path / "reports"
    fetch_module.fetch(params, out, reports)
    before = {name: tree_digest(out / name) for name in ("unlabelled", "landcover", "croptype")}
    summary_before = (reports / "summary.json").read_bytes()

    real_generate = fetch_module.synthetic_source.generate

    def dies_midway(*args, **kwargs):
        for i, chunk in enumerate(real_generate(*args, **kwargs)):
            if i == 1:
                raise OSError("disk full (simulated)")
            yield chunk

    monkeypatch.setattr(fetch_module.synthetic_source, "generate", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        fetch_module.fetch(params.model_copy(update={"seed": 7}), out, reports)

    for name, digest in before.items():
        assert tree_digest(out / name) == digest, f"{name} changed after a failed fetch"
    assert (reports / "summary.json").read_bytes() == summary_before
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
