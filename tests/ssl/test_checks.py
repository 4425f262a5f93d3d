"""Argument checks of the view augmentations: accepted values and actionable errors."""

from __future__ import annotations

import pytest
import torch

from s2ssl.ssl.checks import (
    check_image,
    check_points,
    check_probability,
    check_range,
    check_size,
)


def test_check_size():
    assert check_size([4, 5], "size") == (4, 5)
    for bad in ((4,), (4, 0), (True, 3), (2.5, 3), "ab"):
        with pytest.raises(ValueError, match="size"):
            check_size(bad, "size")


def test_check_image_and_points():
    check_image(torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        check_image(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="floating"):
        check_image(torch.zeros(1, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty"):
        check_image(torch.zeros(0, 2, 3, 3), "features")
    check_points(torch.zeros(2, 5, 2), 2, "points")
    with pytest.raises(ValueError, match=r"\[N, P, 2\]"):
        check_points(torch.zeros(2, 5, 3), 2, "points")
    with pytest.raises(ValueError, match="samples"):
        check_points(torch.zeros(3, 5, 2), 2, "points")


def test_check_probability_and_range():
    assert check_probability(1, "p") == 1.0
    with pytest.raises(ValueError, match="probability"):
        check_probability(1.5, "p")
    assert check_range((0.2, 1), "scale", low=0.0, high=1.0) == (0.2, 1.0)
    with pytest.raises(ValueError, match="swap"):
        check_range((0.8, 0.2), "scale", low=0.0, high=1.0)
    with pytest.raises(ValueError, match="pair"):
        check_range((0.1,), "scale", low=0.0)
