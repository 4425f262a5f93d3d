"""BigEarthNet v1 with its published split lists: the real BigEarthNet-19 lists and example
patches of the ``bigearthnet-common`` wheel, the list variants (BigEarthNet-MM pairs, the
lists SeCo uses) and what a wrong or missing list says; then the import into the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchkit import benchmark_params, extract_v1_examples, extract_v1_lists
from s2ssl.config import load_params
from s2ssl.data.fetch import fetch
from s2ssl.data.sources.benchmark import list_bigearthnet_v1, split_bigearthnet_v1
from s2ssl.data.sources.benchmark.bigearthnet import BIGEARTHNET_CLASSES
from s2ssl.data.sources.benchmark.bigearthnet_v1 import read_patch_names
from s2ssl.data.store import open_dataset
from s2ssl.validation.validate import validate

FOREST = "S2B_MSIL2A_20170924T93020_69_24"  # train in the BigEarthNet-19 lists
ARABLE = "S2A_MSIL2A_20170613T101031_87_48"  # test
SNOWY = "S2B_MSIL2A_20180204T94161_57_38"  # in patches_with_seasonal_snow.csv, in no split
TRAIN = (
    "S2A_MSIL2A_20170617T113321_36_85",
    "S2A_MSIL2A_20170617T113321_4_55",
    "S2A_MSIL2A_20171221T112501_56_35",
    FOREST,
)
LISTED = 269_695 + 123_723 + 125_866  # lines of train.csv, val.csv, test.csv


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The six real v1 example patches (``<root>/BigEarthNet-S2-Example/<patch>/``)."""
    return extract_v1_examples(tmp_path_factory.mktemp("ben_v1"))


def _write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x}{end}" for x in lines), encoding="utf-8")
    return path


def _lists(folder: Path, train: list[str], val: list[str], test: list[str], fmt: str) -> Path:
    for split, names in (("train", train), ("val", val), ("test", test)):
        _write(folder / fmt.format(split=split), names)
    return folder


def test_the_published_lists_give_the_real_examples_their_splits(
    examples: Path, tmp_path: Path
) -> None:
    lists = extract_v1_lists(tmp_path / "lists")
    assert (lists / "train.csv").read_bytes()[:34] == b"S2A_MSIL2A_20170717T113321_28_87\r\n"
    assert len(read_patch_names(lists / "train.csv")) == 269_695
    inv = split_bigearthnet_v1(
        list_bigearthnet_v1(examples), lists, exclude_snow_cloud=True, root=examples
    )
    splits = {p.patch_id: p.split for p in inv.samples}
    assert splits == {**dict.fromkeys(TRAIN, "train"), ARABLE: "test"}  # SNOWY: in no list
    assert [p.patch_id for p in inv.samples] == sorted(splits)  # the inventory's order
    # a partial download: every listed patch it lacks is named with its split
    assert len(inv.incomplete) == LISTED - 5
    first = inv.incomplete[0]
    assert first.missing == (f"{first.sample_id}/ (patch folder, listed in train)",)


def test_pairs_headers_and_the_lists_seco_uses_are_read(examples: Path, tmp_path: Path) -> None:
    s1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
    mm = tmp_path / "mm"  # BigEarthNet-MM rows pair the Sentinel-2 name with a Sentinel-1 name
    _write(mm / "bigearthnet-train.csv", [f"{n},S1B_IW_x_{k}" for k, n in enumerate(TRAIN)])
    _write(mm / "bigearthnet-val.csv", ["s2_name,s1_name", f"{SNOWY},S1A_IW_y"], end="\r\n")
    _write(mm / "bigearthnet-test.csv", [f"{ARABLE},{s1}", ""])
    inv = split_bigearthnet_v1(list_bigearthnet_v1(examples), mm, exclude_snow_cloud=False)
    assert {p.patch_id: p.split for p in inv.samples} == {
        **dict.fromkeys(TRAIN, "train"),
        SNOWY: "val",
        ARABLE: "test",
    }
    assert inv.complete
    # Neumann et al.'s lists (SeCo's) include snowy patches: exclude_snow_cloud drops them
    seco = _lists(tmp_path / "seco", list(TRAIN), [SNOWY], [ARABLE], "{split}.txt")
    extract_v1_lists(seco, ["patches_with_seasonal_snow.csv", "patches_with_cloud_and_shadow.csv"])
    kept = split_bigearthnet_v1(list_bigearthnet_v1(examples), seco, exclude_snow_cloud=True)
    assert SNOWY not in {p.patch_id for p in kept.samples} and len(kept) == 5


def test_list_problems_name_the_file_and_what_to_do(examples: Path, tmp_path: Path) -> None:
    inv = list_bigearthnet_v1(examples)
    with pytest.raises(ValueError, match=r"no val list; expected one of val\.csv, bigearthnet-"):
        split_bigearthnet_v1(inv, _write(tmp_path / "a" / "train.csv", [FOREST]).parent,
                             exclude_snow_cloud=False)  # fmt: skip
    both = _lists(tmp_path / "b", [FOREST], [SNOWY], [ARABLE], "{split}.csv")
    _write(both / "val.txt", [SNOWY])
    with pytest.raises(ValueError, match=r"val\.csv and val\.txt both list the val split"):
        split_bigearthnet_v1(inv, both, exclude_snow_cloud=False)
    twice = _lists(tmp_path / "c", [FOREST], [FOREST], [ARABLE], "{split}.csv")
    with pytest.raises(ValueError, match=f"val.csv: patch {FOREST} is also in the train list"):
        split_bigearthnet_v1(inv, twice, exclude_snow_cloud=False)
    bad = _lists(tmp_path / "d", [FOREST, "S2A_MSIL2A_2017", ARABLE], [SNOWY], [], "{split}.csv")
    with pytest.raises(ValueError, match=r"train\.csv line 2: 'S2A_MSIL2A_2017' holds 0 "):
        split_bigearthnet_v1(inv, bad, exclude_snow_cloud=False)
    plain = _lists(tmp_path / "e", [FOREST], [SNOWY], [ARABLE], "{split}.csv")
    with pytest.raises(ValueError, match=r"test\.csv: the file is empty"):
        split_bigearthnet_v1(inv, _lists(tmp_path / "f", [FOREST], [SNOWY], [], "{split}.csv"),
                             exclude_snow_cloud=False)  # fmt: skip
    with pytest.raises(ValueError) as info:
        split_bigearthnet_v1(inv, plain, exclude_snow_cloud=True, root=examples)
    assert str(info.value) == (
        f"exclude_snow_cloud needs patches_with_seasonal_snow.csv (from the BigEarthNet download "
        f"page) in {plain} or {examples}; put it there, or set "
        "fetch.benchmark.exclude_snow_cloud: false (the BigEarthNet-19 lists already leave those "
        "patches out)"
    )


def test_v1_imports_as_the_multilabel_scene_dataset_with_its_splits(
    examples: Path, tmp_path: Path
) -> None:
    root = tmp_path / "v1"
    shutil.copytree(examples / "BigEarthNet-S2-Example", root)
    _lists(root, list(TRAIN[:3]), [FOREST], [ARABLE], "{split}.csv")  # lists beside the patches
    extract_v1_lists(root, ["patches_with_seasonal_snow.csv", "patches_with_cloud_and_shadow.csv"])
    params = load_params(
        benchmark_params(tmp_path / "p.yaml", "bigearthnet_v1", {"path": str(root)})
    )
    result = fetch(params, tmp_path / "raw", tmp_path / "reports")
    ds = open_dataset(result.datasets["scene"])
    ids = ds.index["sample_id"].tolist()
    assert ids == sorted(f"bigearthnet-{n}" for n in (*TRAIN, ARABLE))
    split = dict(zip(ids, ds.index["split"], strict=True))
    assert split[f"bigearthnet-{FOREST}"] == "val" and split[f"bigearthnet-{ARABLE}"] == "test"
    assert set(ds.index["region"]) == {"bigearthnet"}
    pos = ids.index(f"bigearthnet-{FOREST}")
    labels = ds.read_many("multilabel", np.array([pos]))[0]
    assert np.flatnonzero(labels).tolist() == [9, 10, 13, 15, 17]  # its 5 classes of the 19
    assert [BIGEARTHNET_CLASSES.names[i] for i in (9, 17)] == [
        "Coniferous forest",
        "Inland waters",
    ]
    assert list(ds.index["dates"].iloc[pos]) == ["2017-09-24"]
    assert ds.specs["image"].shape == (1, 12, 120, 120)
    out = validate(params, tmp_path / "raw", tmp_path / "validated", tmp_path / "vreports")
    assert out.summary["scene.n_accepted"] == 5, out.summary


def test_a_partial_download_counts_the_listed_patches_it_lacks_in_an_id_file(
    examples: Path, tmp_path: Path
) -> None:
    root = tmp_path / "v1"
    shutil.copytree(examples / "BigEarthNet-S2-Example", root)
    extract_v1_lists(root)  # the full published lists: 519,284 patches, five of them here
    (root / FOREST / f"{FOREST}_B11.tif").unlink()  # one of the five lacks a band file
    params = load_params(
        benchmark_params(tmp_path / "p.yaml", "bigearthnet_v1", {"path": str(root)})
    )
    reports = tmp_path / "reports"
    result = fetch(params, tmp_path / "raw", reports)
    assert len(open_dataset(result.datasets["scene"])) == 4
    ids = (reports / "not_downloaded_scene.txt").read_text().splitlines()
    assert len(ids) == LISTED - 5 and ids == sorted(ids)
    assert not {FOREST, ARABLE, *TRAIN} & set(ids)  # on disk: imported or listed as incomplete
    assert result.summary["scene.n_not_downloaded"] == LISTED - 5
    acquisition = json.loads((reports / "acquisition.json").read_text())
    assert acquisition["datasets"]["scene"]["not_downloaded"] == LISTED - 5
    # what a present patch lacks is still listed item by item, with the file
    assert [(s["item"], s["reason"]) for s in acquisition["skipped"]] == [
        (FOREST, "incomplete download")
    ]
    assert f"{FOREST}/{FOREST}_B11.tif" in acquisition["skipped"][0]["detail"]
    assert (reports / "acquisition.json").stat().st_size < 10_000
    # a later complete import into the same folder leaves no stale id file
    for split in ("train", "val", "test"):
        (root / f"{split}.csv").unlink()
    _lists(root, list(TRAIN[:3]), [ARABLE], [FOREST], "{split}.csv")  # all on disk
    again = fetch(params, tmp_path / "raw2", reports)
    assert again.not_downloaded == {} and "scene.n_not_downloaded" not in again.summary
    assert not (reports / "not_downloaded_scene.txt").exists()
