"""Fine-tuning data views: scene tiles, region settings, nested training fractions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from finetunekit import N_BANDS, task_split

from s2ssl.data.validated import open_validated
from s2ssl.finetune.data import load_task_data, region_positions, scene_tiles


def test_scene_tiles_cut_patches_and_label_by_majority() -> None:
    image = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.int16).reshape(2, 1, 1, 4, 4)
    image = image.expand(2, 1, N_BANDS, 4, 4).clone()
    label = torch.tensor(
        [
            [[0, 0, 1, 1], [0, 2, 1, 255], [3, 3, 4, 4], [3, 255, 4, 5]],
            [[255, 255, 6, 6], [255, 255, 6, 1], [2, 2, 2, 2], [2, 2, 2, 2]],
        ]
    )
    tiles = scene_tiles(task_split(image, label), 2, 7)
    # patch 1's first tile has no labelled pixel and is dropped
    assert tiles.ids == ("p0#0", "p0#1", "p0#2", "p0#3", "p1#1", "p1#2", "p1#3")
    assert tiles.label.tolist() == [0, 1, 3, 4, 6, 2, 2]
    # tile p0#1 is rows 0-1, columns 2-3 of patch 0
    assert torch.equal(tiles.image[1, 0, 0], image[0, 0, 0, 0:2, 2:4])
    with pytest.raises(ValueError, match="must divide"):
        scene_tiles(task_split(image, label), 3, 7)


def test_region_settings_never_share_a_region(tiny_validated: Path) -> None:
    dataset = open_validated(tiny_validated / "landcover")
    regions = dataset.store.index["region"].to_numpy()
    for split in ("train", "val", "test"):
        inside = region_positions(dataset, split, "transfer", "north_west")
        outside = region_positions(dataset, split, "in_domain", "north_west")
        everything = region_positions(dataset, split, "in_domain", None)
        assert set(regions[inside]) <= {"north_west"} and "north_west" not in set(regions[outside])
        assert sorted([*inside, *outside]) == sorted(everything)
    with pytest.raises(ValueError, match=r"transfer setting needs params\.holdout_region"):
        load_task_data("landcover", tiny_validated, "transfer", None)
    source = load_task_data("landcover", tiny_validated, "in_domain", None)
    nested = [set(source.fraction(f, 0, 1).ids) for f in (0.2, 0.5, 1.0)]
    assert nested[0] <= nested[1] <= nested[2] == set(source.train.ids)


def test_scene_data_needs_its_tile_size(tiny_validated: Path) -> None:
    with pytest.raises(ValueError, match=r"finetune\.scene\.tile_size"):
        load_task_data("scene", tiny_validated, "in_domain", None)


def test_a_model_finds_its_bands_by_name_and_a_missing_one_is_named() -> None:
    image = (
        torch.arange(N_BANDS, dtype=torch.int16).view(1, 1, N_BANDS, 1, 1).expand(2, 1, -1, 2, 2)
    )
    split = task_split(image.clone(), torch.zeros(2, 2, 2, dtype=torch.long))
    positions = split.band_indices(("B8A", "B02"))
    assert positions == [8, 1]
    assert split.reflectance(positions)[0, 0, :, 0, 0].tolist() == pytest.approx([8e-4, 1e-4])
    l2a = split.subset([0, 1])
    l2a = type(split)(
        l2a.image[:, :, [i for i in range(N_BANDS) if i != 10]],
        l2a.doy,
        l2a.label,
        l2a.ids,
        l2a.strata,
        tuple(b for b in split.bands if b != "B10"),
    )
    with pytest.raises(ValueError, match=r"needed by the seco encoder\) lacks band\(s\) B10 "):
        l2a.band_indices(split.bands, who="the seco encoder")


def test_task_data_carries_the_datasets_classes_and_bands(tiny_validated: Path) -> None:
    data = load_task_data("landcover", tiny_validated, "in_domain", None)
    store = open_validated(tiny_validated / "landcover").store
    assert data.class_set == store.classes("landcover")
    assert data.classes == data.class_set.names
    assert data.bands == store.bands == data.test.bands
    assert data.train.image.shape[2] == len(store.bands)
