"""The blockwise label-smoothed cross-entropy against PyTorch's own, and R-Drop's objective against
the reference criterion: value and gradient."""

import pytest
import torch
import torch.nn.functional as F

from nmt.data.batching import Batch
from nmt.training import loss as loss_module
from nmt.training.loss import rdrop_cross_entropy, smoothed_cross_entropy

PAD = 0


def _case(rows: int, vocab: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(rows, vocab, generator=generator) * 3).to(dtype)
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    targets[::4] = PAD  # padding rows, and some targets that happen to be 0 anyway
    return logits, targets


def _reference(logits, targets, smoothing, scale):
    leaf = logits.clone().requires_grad_()
    loss = F.cross_entropy(leaf.float(), targets, ignore_index=PAD, label_smoothing=smoothing, reduction="sum")
    (loss * scale).backward()
    return loss.detach(), leaf.grad


def _ours(logits, targets, smoothing, scale):
    leaf = logits.clone().requires_grad_()
    loss = smoothed_cross_entropy(leaf * 1, targets, smoothing, ignore_index=PAD)  # a non-leaf, as a layer's output
    (loss * scale).backward()
    return loss.detach(), leaf.grad


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("block_elements", [1 << 22, 7 * 50])  # one block; blocks of 7 rows, the last partial
def test_value_and_gradient_equal_pytorchs_cross_entropy(smoothing, block_elements, monkeypatch):
    monkeypatch.setattr(loss_module, "BLOCK_ELEMENTS", block_elements)
    logits, targets = _case(rows=45, vocab=50)
    expected_loss, expected_grad = _reference(logits, targets, smoothing, scale=0.37)
    loss, grad = _ours(logits, targets, smoothing, scale=0.37)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-7)
    assert grad[targets == PAD].abs().max() == 0  # padding rows get no gradient


@pytest.mark.parametrize("block_elements", [1 << 22, 4 * 40])  # one block; blocks of 4 rows
def test_half_precision_logits_get_the_gradient_computed_in_float32(block_elements, monkeypatch):
    monkeypatch.setattr(loss_module, "BLOCK_ELEMENTS", block_elements)
    logits, targets = _case(rows=30, vocab=40, dtype=torch.bfloat16)
    expected_loss, expected_grad = _reference(logits, targets, 0.1, scale=1.0)
    loss, grad = _ours(logits, targets, 0.1, scale=1.0)
    assert grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(grad, expected_grad)


def test_without_gradients_the_loss_is_the_same_and_the_logits_are_left_alone():
    logits, targets = _case(rows=20, vocab=30)
    kept = logits.clone()
    with torch.no_grad():
        loss = smoothed_cross_entropy(logits, targets, 0.1, ignore_index=PAD)
    expected = F.cross_entropy(logits, targets, ignore_index=PAD, label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(loss, expected)
    assert torch.equal(logits, kept)


def test_a_second_backward_through_the_overwritten_logits_fails_loudly():
    logits, targets = _case(rows=10, vocab=12)
    leaf = logits.clone().requires_grad_()
    loss = smoothed_cross_entropy(leaf * 1, targets, 0.1, ignore_index=PAD)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()


def test_all_padding_gives_zero_loss_and_zero_gradient():
    logits, _ = _case(rows=6, vocab=9)
    loss, grad = _ours(logits, torch.full((6,), PAD), 0.1, scale=1.0)
    assert loss.item() == 0.0 and grad.abs().max() == 0


def test_the_gradient_is_written_over_the_logits_and_no_other_vocabulary_sized_tensor():
    logits, targets = _case(rows=20, vocab=30)
    output = logits.clone().requires_grad_() * 1  # a layer's output
    seen = {}
    output.register_hook(lambda grad: seen.update(storage=grad.untyped_storage().data_ptr()))
    smoothed_cross_entropy(output, targets, 0.1, ignore_index=PAD).backward()
    assert seen["storage"] == output.untyped_storage().data_ptr()


def test_a_leaf_passed_directly_keeps_its_values_and_gets_the_gradient():
    logits, targets = _case(rows=20, vocab=30)
    expected_loss, expected_grad = _reference(logits, targets, 0.1, scale=1.0)
    leaf = logits.clone().requires_grad_()
    smoothed_cross_entropy(leaf, targets, 0.1, ignore_index=PAD).backward()
    assert torch.equal(leaf.detach(), logits)
    torch.testing.assert_close(leaf.grad, expected_grad)


def _fairseq_rdrop(logits, tgt_out, smoothing, alpha):
    """fairseq's rdrop criterion (label_smoothed_cross_entropy_with_rdrop) over the batch twice: both
    copies' cross-entropies plus alpha times half the symmetric KL, as its compute_kl_loss writes it;
    and that half, the rdrop_kl_loss it logs."""
    vocab, targets = logits.size(-1), tgt_out.reshape(-1)
    cross_entropy = F.cross_entropy(logits.reshape(-1, vocab).float(), targets.repeat(2), ignore_index=PAD,
                                    label_smoothing=smoothing, reduction="sum")
    p, q = logits.float().reshape(2, -1, vocab)
    pad = (targets == PAD).unsqueeze(1)
    p_loss = F.kl_div(F.log_softmax(p, -1), F.softmax(q, -1), reduction="none").masked_fill(pad, 0.0).sum()
    q_loss = F.kl_div(F.log_softmax(q, -1), F.softmax(p, -1), reduction="none").masked_fill(pad, 0.0).sum()
    return cross_entropy + alpha * (p_loss + q_loss) / 2, (p_loss + q_loss) / 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("alpha", [0.0, 5.0])
def test_rdrop_value_and_gradient_are_half_of_fairseqs_criterion(alpha, dtype):
    generator = torch.Generator().manual_seed(3)
    logits = (torch.randn(2 * 3, 5, 40, generator=generator) * 2).to(dtype)  # a batch of 3 twice, 5 positions
    tgt_out = torch.randint(1, 40, (3, 5), generator=generator)
    tgt_out[0, 3:] = PAD
    batch = Batch(torch.zeros(3, 1, dtype=torch.long), tgt_out, tgt_out, int((tgt_out != PAD).sum()))
    expected_leaf, leaf = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    expected, expected_kl = _fairseq_rdrop(expected_leaf, tgt_out, 0.1, alpha)
    (expected / 2).backward()
    loss, kl = rdrop_cross_entropy(leaf * 1, batch, 0.1, alpha)  # a non-leaf, as a layer's output
    loss.backward()
    torch.testing.assert_close(loss, expected / 2)
    torch.testing.assert_close(leaf.grad, expected_leaf.grad)
    torch.testing.assert_close(kl, expected_kl.detach())
    assert not kl.requires_grad
