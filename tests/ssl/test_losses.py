"""Losses of s2ssl.ssl.losses against hand-computed references."""

from __future__ import annotations

import math

import pytest
import torch

from s2ssl.ssl.losses import (
    CSCLHead,
    SecoLossOutput,
    cscl_loss,
    cscl_targets,
    dense_info_nce,
    neighbour_offsets,
    seco_loss,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def ce0(logits: list[float]) -> float:
    """-log softmax(logits)[0], by hand with math."""
    return -math.log(math.exp(logits[0]) / sum(math.exp(v) for v in logits))


def ce(logits: list[float], target: int) -> float:
    return -math.log(math.exp(logits[target]) / sum(math.exp(v) for v in logits))


# ----------------------------------------------------------------------------------------------
# seco_loss
# ----------------------------------------------------------------------------------------------

E1, E2, E3 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
A, B, C = [0.6, 0.8, 0.0], [0.0, 0.6, 0.8], [0.8, 0.0, 0.6]


def _hand_seco_inputs() -> tuple[list[torch.Tensor], list[list[torch.Tensor]], list[torch.Tensor]]:
    queries = [t([E1, E2]), t([E2, E3]), t([E3, E1])]
    keys = [
        [t([A, C]), t([E1, E1]), t([E2, E2])],  # head 0: only keys[0][0] is used
        [t([B, E1]), t([A, C]), t([C, E2])],  # head 1: positive keys[1][1]
        [t([A, E3]), t([E1, C]), t([B, C])],  # head 2: positive keys[2][2]
    ]
    queues = [t([E1, E2]), t([E2, E3]), t([E3, E1])]
    return queries, keys, queues


def test_seco_loss_hand_logits_and_column_order() -> None:
    queries, keys, queues = _hand_seco_inputs()
    out = seco_loss(queries, keys, queues, temperature=0.5)  # logits = 2 × dot product
    assert isinstance(out, SecoLossOutput)
    # head 0: [q·k0, q·queue0 (E1, E2)]
    #   row 0 q=E1: E1·A = .6 -> 1.2 | E1·E1 = 1 -> 2, E1·E2 = 0
    #   row 1 q=E2: E2·C = 0         | 0, 1 -> 2
    expected0 = t([[1.2, 2.0, 0.0], [0.0, 0.0, 2.0]])
    # head 1: [q·k1, q·queue1 (E2, E3), q·keys[1][0] (B, E1), q·keys[1][2] (C, E2)]
    #   row 0 q=E2: E2·A=.8 | 1, 0 | E2·B=.6, 0 | 0, 1
    #   row 1 q=E3: E3·C=.6 | 0, 1 | E3·B=.8, 0 | E3·C=.6, 0
    expected1 = t([[1.6, 2.0, 0.0, 1.2, 0.0, 0.0, 2.0], [1.2, 0.0, 2.0, 1.6, 0.0, 1.2, 0.0]])
    # head 2: [q·k2, q·queue2 (E3, E1), q·keys[2][0] (A, E3), q·keys[2][1] (E1, C)]
    #   row 0 q=E3: E3·B=.8 | 1, 0 | 0, 1 | 0, E3·C=.6
    #   row 1 q=E1: E1·C=.8 | 0, 1 | E1·A=.6, 0 | 1, E1·C=.8
    expected2 = t([[1.6, 2.0, 0.0, 0.0, 2.0, 0.0, 1.2], [1.6, 0.0, 2.0, 1.2, 0.0, 2.0, 1.6]])
    assert out.logits[0].shape == (2, 1 + 2)
    assert out.logits[1].shape == (2, 1 + 2 + 2 * 2)
    assert out.logits[2].shape == (2, 1 + 2 + 2 * 2)
    for got, want in zip(out.logits, (expected0, expected1, expected2), strict=True):
        torch.testing.assert_close(got, want)
    for got, want in zip(out.head_losses, (expected0, expected1, expected2), strict=True):
        by_hand = sum(ce0(row) for row in want.tolist()) / 2
        assert got.item() == pytest.approx(by_hand, rel=1e-5)
    assert out.loss.item() == pytest.approx(sum(h.item() for h in out.head_losses), rel=1e-6)
    # accuracy: positive is the max in no row of head 0 (2 > 1.2, 2 > 0), and in none of heads
    # 1 (1.6 < 2, 1.2 < 2) and 2 (1.6 < 2 both rows)
    assert [a.item() for a in out.accuracy] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("tau", "dtype"), [(0.5, torch.float32), (0.07, torch.float64)])
def test_seco_loss_closed_form_when_negatives_orthogonal(tau: float, dtype: torch.dtype) -> None:
    # at tau = 0.07 the loss is ~1e-6, below float32 resolution of log-softmax: use float64
    q = t([E1, E1]).to(dtype)
    queries = [q.clone(), q.clone(), q.clone()]
    keys = [[t([E2, E3]).to(dtype) for _ in range(3)] for _ in range(3)]
    for i in range(3):
        keys[i][i] = q.clone()  # positive = query -> l+ = 1; every negative is orthogonal
    queues = [t([E2, E3]).to(dtype) for _ in range(3)]
    out = seco_loss(queries, keys, queues, temperature=tau)

    def by_hand(m: int) -> float:
        return -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + m))

    assert out.head_losses[0].item() == pytest.approx(by_hand(2), rel=1e-4)  # queue only
    assert out.head_losses[1].item() == pytest.approx(by_hand(2 + 4), rel=1e-4)  # + 2N
    assert out.head_losses[2].item() == pytest.approx(by_hand(2 + 4), rel=1e-4)
    assert out.loss.item() == pytest.approx(by_hand(2) + 2 * by_hand(6), rel=1e-4)
    assert [a.item() for a in out.accuracy] == [1.0, 1.0, 1.0]


def test_seco_loss_gradient_reaches_queries_not_keys() -> None:
    queries, keys, queues = _hand_seco_inputs()
    for q in queries:
        q.requires_grad_(True)
    for row in keys:
        for k in row:
            k.requires_grad_(True)
    for queue in queues:
        queue.requires_grad_(True)
    seco_loss(queries, keys, queues).loss.backward()
    for q in queries:
        assert q.grad is not None
        assert q.grad.abs().sum() > 0
    assert all(k.grad is None for row in keys for k in row)
    assert all(queue.grad is None for queue in queues)


def test_seco_loss_one_head_is_moco() -> None:
    # q = (.6, .8), k+ = (1, 0), queue = [(0, 1), (-1, 0)], tau = .5
    # logits = [.6, .8, -.6] / .5 = [1.2, 1.6, -1.2]
    out = seco_loss([t([[0.6, 0.8]])], [[t([[1.0, 0.0]])]], [t([[0.0, 1.0], [-1.0, 0.0]])], 0.5)
    torch.testing.assert_close(out.logits[0], t([[1.2, 1.6, -1.2]]))
    assert out.loss.item() == pytest.approx(ce0([1.2, 1.6, -1.2]), rel=1e-5)
    assert out.accuracy[0].item() == 0.0


def test_seco_loss_errors() -> None:
    queries, keys, queues = _hand_seco_inputs()
    with pytest.raises(ValueError, match="temperature"):
        seco_loss(queries, keys, queues, temperature=0.0)
    with pytest.raises(ValueError, match="one entry per head"):
        seco_loss(queries, keys[:2], queues)
    with pytest.raises(ValueError, match="one key per view"):
        seco_loss(queries, [row[:2] for row in keys], queues)
    with pytest.raises(ValueError, match="query shape"):
        seco_loss(queries, [[*row[:2], torch.zeros(3, 3)] for row in keys], queues)
    with pytest.raises(ValueError, match=r"\[K, 3\]"):
        seco_loss(queries, keys, [torch.zeros(2, 4)] * 3)
    with pytest.raises(ValueError, match="same N"):
        seco_loss([queries[0], torch.zeros(3, 3), queries[2]], keys, queues)
    with pytest.raises(TypeError, match="sequence"):
        seco_loss(torch.zeros(2, 3), keys, queues)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one head"):
        seco_loss([], [], [])


# ----------------------------------------------------------------------------------------------
# dense_info_nce
# ----------------------------------------------------------------------------------------------


def test_dense_info_nce_hand_2x2() -> None:
    z1 = t([[1.0, 0.0], [0.0, 1.0]])
    z2 = t([[3.0, 0.0], [1.2, 1.6]])  # normalised inside: (1, 0), (.6, .8)
    # logits / tau=.5: row 0 [2, 1.2]; row 1 [0, 1.6]
    forward = (ce([2.0, 1.2], 0) + ce([0.0, 1.6], 1)) / 2
    backward = (ce([2.0, 0.0], 0) + ce([1.2, 1.6], 1)) / 2  # columns of the logits
    one_way = dense_info_nce(z1, z2, temperature=0.5, symmetric=False)
    both = dense_info_nce(z1, z2, temperature=0.5, symmetric=True)
    assert one_way.item() == pytest.approx(forward, rel=1e-5)
    assert both.item() == pytest.approx((forward + backward) / 2, rel=1e-5)
    assert dense_info_nce(z2, z1, 0.5, symmetric=False).item() == pytest.approx(backward, rel=1e-5)


def test_dense_info_nce_row_permutation_invariant_and_differentiable() -> None:
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 4, generator=gen, requires_grad=True)
    z2 = torch.randn(6, 4, generator=gen)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    for symmetric in (True, False):
        base = dense_info_nce(z1, z2, symmetric=symmetric)
        permuted = dense_info_nce(z1[perm], z2[perm], symmetric=symmetric)
        assert permuted.item() == pytest.approx(base.item(), rel=1e-5)
    dense_info_nce(z1, z2).backward()
    assert z1.grad is not None
    assert torch.isfinite(z1.grad).all()


def test_dense_info_nce_errors() -> None:
    with pytest.raises(ValueError, match="same shape"):
        dense_info_nce(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="P >= 2"):
        dense_info_nce(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="dimensions"):
        dense_info_nce(torch.ones(2, 2, 2), torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="temperature"):
        dense_info_nce(torch.ones(2, 2), torch.ones(2, 2), temperature=-1.0)


# ----------------------------------------------------------------------------------------------
# CSCL
# ----------------------------------------------------------------------------------------------


def test_neighbour_offsets() -> None:
    offsets = neighbour_offsets(3)
    assert offsets == [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1)]
    assert offsets[9 // 2] == (0, 0)
    assert neighbour_offsets(3, dilation=2)[0] == (-2, -2)
    assert neighbour_offsets(1) == [(0, 0)]
    assert neighbour_offsets(5)[25 // 2] == (0, 0)
    with pytest.raises(ValueError, match="odd"):
        neighbour_offsets(2)
    with pytest.raises(ValueError, match="dilation"):
        neighbour_offsets(3, dilation=0)


def test_cscl_targets_one_class_map() -> None:
    labels = torch.full((2, 4, 5), 7, dtype=torch.long)
    targets, valid = cscl_targets(labels)
    assert targets.shape == (2, 9, 4, 5)
    assert targets.dtype == torch.float32
    assert valid.dtype == torch.bool
    assert valid.all()
    assert (targets[:, 4] == 1).all()  # centre always 1
    # top-left corner: offsets with dy = -1 (3) or dx = -1 (2 more) fall outside -> 5 zeros
    corner = targets[0, :, 0, 0].tolist()
    assert corner == [0, 0, 0, 0, 1, 1, 0, 1, 1]
    assert (targets[:, :, 1:-1, 1:-1] == 1).all()  # interior: every neighbour in image, same


def test_cscl_targets_two_class_hand_map() -> None:
    labels = torch.tensor([[[0, 0, 1], [0, 0, 1], [0, 0, 1]]])  # vertical boundary
    targets, _ = cscl_targets(labels)
    assert targets[0, :, 1, 1].tolist() == [1, 1, 0, 1, 1, 0, 1, 1, 0]
    # top-right pixel (label 1): in-image neighbours (0,1)=0, (1,1)=0, (1,2)=1
    assert targets[0, :, 0, 2].tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 0]


def test_cscl_targets_dilation_and_ignore_index() -> None:
    labels = torch.tensor([[[0, 0, 1], [255, 0, 1], [0, 0, 1]]])
    targets, valid = cscl_targets(labels, dilation=2)
    # centre pixel (1,1) with dilation 2: every neighbour is outside the 3x3 image
    assert targets[0, :, 1, 1].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    # (0,0) with dilation 2: (0,2)=1 differs, (2,0)=0 same, (2,2)=1 differs
    assert targets[0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 0]
    assert valid.all()
    _, valid = cscl_targets(labels, ignore_index=255)
    assert not valid[0, :, 1, 0].any()
    assert int(valid.sum()) == 9 * 8  # every pair of the 8 labelled pixels stays valid


def test_cscl_targets_errors() -> None:
    with pytest.raises(TypeError, match="integer"):
        cscl_targets(torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        cscl_targets(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="odd"):
        cscl_targets(torch.zeros(1, 3, 3, dtype=torch.long), kernel_size=4)


def test_cscl_head_shape_range_and_gradient() -> None:
    torch.manual_seed(0)
    head = CSCLHead(in_channels=6, attn_channels=8)
    x = torch.randn(2, 6, 5, 4)
    s = head(x)
    assert s.shape == (2, 9, 5, 4)
    assert (s >= -1).all()
    assert (s <= 1).all()
    s.sum().backward()
    for p in (head.w_q.weight, head.w_k.weight, head.row_embedding, head.col_embedding):
        assert p.grad is not None
        assert p.grad.abs().sum() > 0
    assert head.w_q.bias is None
    assert head.w_k.bias is None


def test_cscl_head_identity_projections_centre_is_one_and_padding_is_zero() -> None:
    head = CSCLHead(in_channels=4, attn_channels=4)
    with torch.no_grad():
        eye = torch.eye(4).view(4, 4, 1, 1)
        head.w_q.weight.copy_(eye)
        head.w_k.weight.copy_(eye)
        head.row_embedding.zero_()
        head.col_embedding.zero_()
        s = head(torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(s[:, 4], torch.ones(1, 3, 3))
    # outside the image the key is 0 + r = 0, and the eps-safe cosine gives 0
    assert s[0, :, 0, 0].tolist()[:4] == [0.0, 0.0, 0.0, 0.0]


def test_cscl_head_relative_embedding_hand_example() -> None:
    head = CSCLHead(in_channels=2, attn_channels=2)
    with torch.no_grad():
        head.w_q.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        head.w_k.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        head.row_embedding.copy_(t([[0.0], [0.0], [1.0]]))  # row[dy = +1] = 1
        head.col_embedding.copy_(t([[1.0], [0.0], [0.0]]))  # col[dx = -1] = 1
        # a 1x1 image with e = (1, 0): every neighbour is outside, kappa = r_delta
        s = head(t([[1.0], [0.0]]).view(1, 2, 1, 1))
    # r per offset (row, col): (0,1) (0,0) (0,0) (0,1) centre e+0 (0,0) (1,1) (1,0) (1,0)
    expected = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1 / math.sqrt(2), 1.0, 1.0]
    assert s.flatten().tolist() == pytest.approx(expected, abs=1e-6)


def test_cscl_head_errors() -> None:
    with pytest.raises(ValueError, match="even"):
        CSCLHead(in_channels=4, attn_channels=5)
    with pytest.raises(ValueError, match="odd"):
        CSCLHead(kernel_size=2)
    with pytest.raises(ValueError, match=r"\[N, 4, H, W\]"):
        CSCLHead(in_channels=4, attn_channels=4)(torch.zeros(1, 3, 2, 2))


def test_cscl_loss_sign_and_hand_mean() -> None:
    one = torch.ones(1, 1, 1, 1)
    assert cscl_loss(one, one).item() == pytest.approx(-0.125)
    assert cscl_loss(one, torch.zeros_like(one)).item() == pytest.approx(1.0)
    s = t([[0.5, -0.2], [0.8, 1.0]]).view(1, 1, 2, 2)
    y = t([[1.0, 0.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    # -.125*.5 = -.0625, -.2, -.125*.8 = -.1, 1.0 -> mean .6375 / 4
    assert cscl_loss(s, y).item() == pytest.approx(0.6375 / 4)
    valid = torch.tensor([[True, True], [True, False]]).view(1, 1, 2, 2)
    assert cscl_loss(s, y, valid).item() == pytest.approx((-0.0625 - 0.2 - 0.1) / 3)
    assert cscl_loss(s, y, pos_weight=1.0).item() == pytest.approx((-0.5 - 0.2 - 0.8 + 1.0) / 4)


def test_cscl_loss_end_to_end_gradient() -> None:
    torch.manual_seed(0)
    head = CSCLHead(in_channels=3, attn_channels=4)
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 255]]])
    targets, valid = cscl_targets(labels, ignore_index=255)
    x = torch.randn(1, 3, 3, 4, requires_grad=True)
    loss = cscl_loss(head(x), targets, valid)
    loss.backward()
    assert torch.isfinite(loss)
    assert x.grad is not None
    assert x.grad.abs().sum() > 0


def test_cscl_loss_errors() -> None:
    s = torch.zeros(1, 9, 2, 2)
    with pytest.raises(ValueError, match="shape"):
        cscl_loss(s, torch.zeros(1, 9, 2, 3))
    with pytest.raises(ValueError, match="no True"):
        cscl_loss(s, torch.zeros_like(s), torch.zeros_like(s, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        cscl_loss(s, torch.zeros_like(s), torch.ones_like(s))
    with pytest.raises(ValueError, match="shape"):
        cscl_loss(s, torch.zeros_like(s), torch.ones(1, 9, 2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="pos_weight"):
        cscl_loss(s, torch.zeros_like(s), pos_weight=-0.1)
