"""ChunkBuffer: samples gathered into chunks of a fixed size, the rest on flush."""

from __future__ import annotations

import numpy as np
import pytest

from s2ssl.data.sources.base import ChunkBuffer


def test_chunks_of_size_then_the_rest() -> None:
    buffer = ChunkBuffer(2)
    chunks = []
    for i in range(5):
        chunk = buffer.add({"image": np.full((3,), i)}, {"sample_id": f"s{i}"})
        if chunk is not None:
            chunks.append(chunk)
    last = buffer.flush()
    assert last is not None and buffer.flush() is None
    chunks.append(last)
    assert [len(c.rows) for c in chunks] == [2, 2, 1]
    assert chunks[1].arrays["image"].shape == (2, 3) and chunks[1].arrays["image"][1, 0] == 3
    assert list(chunks[2].rows["sample_id"]) == ["s4"]
    with pytest.raises(ValueError, match="at least one sample"):
        ChunkBuffer(0)
