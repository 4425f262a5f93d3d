"""s2ssl.training.labels: boundary pixels and majority labels of hand-made label maps."""

from __future__ import annotations

import pytest
import torch
from labelkit import CORNER_AND_VERTICAL, CORNER_AND_VERTICAL_BOUNDARY, lab

from s2ssl.classes import LABEL_IGNORE
from s2ssl.training.labels import boundary_mask, majority_labels

IGN = LABEL_IGNORE


# ----------------------------------------------------------------------------------------------
# boundary_mask
# ----------------------------------------------------------------------------------------------


def test_boundary_mask_corner_and_vertical_boundary() -> None:
    mask = boundary_mask(lab(CORNER_AND_VERTICAL))
    assert mask.dtype == torch.bool
    assert mask.tolist() == [CORNER_AND_VERTICAL_BOUNDARY]


def test_boundary_mask_one_class_and_image_edges_are_not_boundaries() -> None:
    labels = torch.full((2, 5, 4), 3, dtype=torch.uint8)
    assert not boundary_mask(labels).any()
    assert boundary_mask(labels).shape == (2, 5, 4)


def test_boundary_mask_batch_items_are_independent() -> None:
    labels = torch.cat([lab(CORNER_AND_VERTICAL), torch.zeros(1, 4, 4, dtype=torch.long)])
    assert boundary_mask(labels).tolist() == [CORNER_AND_VERTICAL_BOUNDARY, [[False] * 4] * 4]


def test_boundary_mask_ignore_handling() -> None:
    # an ignored centre is never a boundary; an ignored neighbour does not make one
    labels = lab([[0, 0, 0], [0, IGN, 0], [0, 0, 0]])
    assert not boundary_mask(labels).any()
    # without ignore_index, 255 is a class: every pixel touches it
    assert boundary_mask(labels, ignore_index=None).all()
    # classes 0 and 1 separated by an ignored column are not boundaries of each other (k = 3),
    # but they are with a 5×5 window
    sep = lab([[0, IGN, 1], [0, IGN, 1]])
    assert not boundary_mask(sep).any()
    assert boundary_mask(sep, kernel_size=5).tolist() == [
        [[True, False, True], [True, False, True]]
    ]


def test_boundary_mask_kernel_sizes() -> None:
    assert not boundary_mask(lab(CORNER_AND_VERTICAL), kernel_size=1).any()
    # 5×5 (reach 2): columns 1-3 all reach a pixel of the other side of the vertical boundary;
    # in column 0, rows 0-2 reach the 2 at (0,0), row 3 only reaches 0s -> False
    five = boundary_mask(lab(CORNER_AND_VERTICAL), kernel_size=5)
    assert five.tolist() == [
        [
            [True, True, True, True],
            [True, True, True, True],
            [True, True, True, True],
            [False, True, True, True],
        ]
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kernel_size": 2}, ValueError),
        ({"kernel_size": 0}, ValueError),
        ({"kernel_size": 3.0}, TypeError),
        ({"ignore_index": "255"}, TypeError),
    ],
)
def test_boundary_mask_rejects_bad_arguments(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        boundary_mask(lab(CORNER_AND_VERTICAL), **kwargs)


def test_boundary_mask_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        boundary_mask(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        boundary_mask(torch.zeros(1, 4, 4))


# ----------------------------------------------------------------------------------------------
# majority_labels
# ----------------------------------------------------------------------------------------------


def test_majority_labels() -> None:
    labels = torch.tensor(
        [
            [[1, 1, 0], [IGN, 1, 2]],  # 0:1, 1:3, 2:1             -> 1
            [[2, 2, 0], [0, IGN, 1]],  # tie 0:2, 2:2              -> 0 (smaller index)
            [[IGN, IGN, IGN], [IGN, IGN, IGN]],  # nothing labelled -> ignore
            [[IGN, IGN, IGN], [IGN, 3, IGN]],  # ignored majority not counted -> 3
        ]
    )
    result = majority_labels(labels, num_classes=4)
    assert result.dtype == torch.int64
    assert result.tolist() == [1, 0, IGN, 3]


def test_majority_labels_rejects_out_of_range_labels() -> None:
    with pytest.raises(ValueError, match=r"\[7\]"):
        majority_labels(lab([[0, 7]]), num_classes=4)
    with pytest.raises(ValueError):
        majority_labels(lab([[0, 1]]), num_classes=4, ignore_index=2)
