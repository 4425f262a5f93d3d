"""Hand-made label maps of the label and metric tests (importable as ``labelkit``)."""

from __future__ import annotations

import torch


def lab(rows: list[list[int]]) -> torch.Tensor:
    """One [1, H, W] label map."""
    return torch.tensor([rows], dtype=torch.long)


# class 2 in the top-left corner, a vertical boundary between columns 2 and 3
CORNER_AND_VERTICAL = [
    [2, 0, 0, 1],
    [0, 0, 0, 1],
    [0, 0, 0, 1],
    [0, 0, 0, 1],
]
# by hand, 3×3 neighbourhood inside the image:
# row 0: (0,0) sees 0s; (0,1) sees the 2; (0,2) sees the 1 at (0,3); (0,3) sees 0s  -> all True
# row 1: (1,0) sees the 2; (1,1) sees the 2 only diagonally; (1,2), (1,3) straddle the boundary
# rows 2-3: columns 0-1 see only 0s (the image edge does not count); columns 2-3 straddle
CORNER_AND_VERTICAL_BOUNDARY = [
    [True, True, True, True],
    [True, True, True, True],
    [False, False, True, True],
    [False, False, True, True],
]
