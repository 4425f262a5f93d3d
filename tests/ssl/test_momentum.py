"""The MoCo machinery of s2ssl.ssl.momentum: the key queue ring buffer and the EMA update."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from s2ssl.ssl.momentum import KeyQueue, momentum_update


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# KeyQueue
# ----------------------------------------------------------------------------------------------


def test_key_queue_init_normalised_buffers_in_state_dict() -> None:
    queue = KeyQueue(num_heads=3, dim=4, size=6, generator=torch.Generator().manual_seed(0))
    assert queue.keys.shape == (3, 6, 4)
    assert queue.ptr.dtype == torch.long
    assert queue.ptr.tolist() == [0, 0, 0]
    torch.testing.assert_close(queue.keys.norm(dim=-1), torch.ones(3, 6))
    state = queue.state_dict()
    assert set(state) == {"keys", "ptr"}
    again = KeyQueue(num_heads=3, dim=4, size=6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.keys, queue.keys)


def test_key_queue_ring_buffer_wraps_around() -> None:
    queue = KeyQueue(num_heads=2, dim=2, size=5)
    untouched = queue.get(1)
    k = [t([[float(i), -float(i)]]) for i in range(1, 7)]  # k1..k6, deliberately not unit norm
    queue.enqueue(0, torch.cat(k[0:3]))  # k1 k2 k3 -> rows 0 1 2
    assert queue.ptr.tolist() == [3, 0]
    queue.enqueue(0, torch.cat(k[3:6]))  # k4 -> row 3, k5 -> row 4, k6 wraps to row 0
    expected = t([[6, -6], [2, -2], [3, -3], [4, -4], [5, -5]])
    torch.testing.assert_close(queue.get(0), expected)  # stored as given, not renormalised
    assert queue.ptr.tolist() == [1, 0]
    torch.testing.assert_close(queue.get(1), untouched)


def test_key_queue_more_keys_than_size_keeps_last() -> None:
    queue = KeyQueue(num_heads=1, dim=1, size=5)
    queue.enqueue(0, t([[10.0]]))  # ptr -> 1
    queue.enqueue(0, t([[float(i)] for i in range(7)]))  # 0..6 written at 1,2,3,4,0,1,2
    # one-by-one ring writes: 0->1 1->2 2->3 3->4 4->0 5->1 6->2, so the last five survive
    assert queue.get(0).flatten().tolist() == [4.0, 5.0, 6.0, 2.0, 3.0]
    assert queue.ptr.tolist() == [(1 + 7) % 5]


def test_key_queue_get_is_a_detached_copy_and_state_roundtrips() -> None:
    queue = KeyQueue(num_heads=1, dim=2, size=3)
    queue.enqueue(0, t([[1.0, 0.0]]))
    copy = queue.get(0)
    copy.zero_()
    assert queue.keys[0, 0].tolist() == [1.0, 0.0]
    other = KeyQueue(num_heads=1, dim=2, size=3)
    other.load_state_dict(queue.state_dict())
    assert other.ptr.tolist() == [1]
    torch.testing.assert_close(other.keys, queue.keys)


def test_key_queue_errors() -> None:
    queue = KeyQueue(num_heads=2, dim=3, size=4)
    with pytest.raises(ValueError, match="head"):
        queue.enqueue(2, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="head"):
        queue.get(-1)
    with pytest.raises(ValueError, match="3"):
        queue.enqueue(0, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="dimensions"):
        queue.enqueue(0, torch.zeros(3))
    with pytest.raises(ValueError, match="size"):
        KeyQueue(num_heads=1, dim=3, size=0)
    with pytest.raises(TypeError):
        KeyQueue(num_heads=1.5, dim=3, size=2)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# momentum_update
# ----------------------------------------------------------------------------------------------


def _linear(value: float) -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(value)
    return layer


def test_momentum_update_ema_and_copy() -> None:
    online, target = _linear(0.0), _linear(1.0)
    momentum_update(online, target, 0.9)
    for p in target.parameters():
        assert torch.equal(p, torch.full_like(p, 0.9))
    momentum_update(_linear(0.25), target, 0.0)  # m = 0 copies the online weights
    for p in target.parameters():
        assert torch.equal(p, torch.full_like(p, 0.25))
    momentum_update(_linear(-3.0), target, 1.0)  # m = 1 keeps the target
    for p in target.parameters():
        assert torch.equal(p, torch.full_like(p, 0.25))


def test_momentum_update_leaves_buffers_alone() -> None:
    online, target = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    online.running_mean.fill_(5.0)
    momentum_update(online, target, 0.5)
    assert target.running_mean.tolist() == [0.0, 0.0]


def test_momentum_update_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        momentum_update(nn.Linear(2, 2), nn.Linear(2, 3), 0.9)
    with pytest.raises(ValueError, match="names"):
        momentum_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)), 0.9)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        momentum_update(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
