"""Labels and pixel picks of the online probe (s2ssl.ssl.probe) on hand-made label maps."""

from __future__ import annotations

import torch

from s2ssl.ssl.probe import gather_pixels, sample_pixels, scene_labels


def test_scene_labels_majority_ignores_unknown() -> None:
    maps = torch.tensor(
        [
            [[1, 1], [2, 255]],
            [[255, 255], [255, 3]],
            [[255, 255], [255, 255]],
            [[0, 2], [2, 0]],  # tie: lowest class
        ]
    )
    assert scene_labels(maps, num_classes=4).tolist() == [1, 3, -1, 0]


def test_sample_pixels_and_gather() -> None:
    labels = torch.tensor([[[0, 1], [255, 2]], [[255, 255], [255, 1]]])
    pixels, picked, valid = sample_pixels(
        labels, 3, torch.Generator().manual_seed(0), num_classes=3, exclude=(0, 255)
    )
    assert valid.tolist() == [[True, True, False], [True, False, False]]
    flat = labels.reshape(2, -1)
    assert torch.equal(torch.gather(flat, 1, pixels)[valid], picked[valid])
    assert set(picked[valid].tolist()) <= {1, 2}
    features = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 2)
    got = gather_pixels(features, torch.tensor([[3, 0], [1, 1]]))
    assert got.shape == (2, 2, 3)
    assert torch.equal(got[0, 0], features[0, :, 1, 1])
    assert torch.equal(got[1, 1], features[1, :, 0, 1])
