"""The Transformer: tied embeddings, causal masking, padding, pre- and post-norm."""

import pytest
import torch

from nmt.choices import LinearInit
from nmt.models.transformer import FeedForward, MultiHeadAttention, TransformerModel, sinusoidal_positions


def test_source_target_and_output_embeddings_are_one_tensor(transformer_model):
    tables = [p for n, p in transformer_model.named_parameters() if p.dim() == 2 and p.size(0) == 23]
    assert len(tables) == 1
    src = torch.tensor([[5, 3]])
    tgt = torch.tensor([[2, 7]])
    logits, _ = transformer_model(src, tgt)
    logits.sum().backward()
    assert transformer_model.embed.weight.grad is not None


def test_no_position_sees_a_later_one(transformer_model):
    src = torch.tensor([[5, 6, 7, 3]])
    tgt = torch.tensor([[2, 10, 11, 12, 13]])
    changed = tgt.clone()
    changed[0, 3:] = torch.tensor([20, 21])
    a, _ = transformer_model(src, tgt)
    b, _ = transformer_model(src, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_source_padding_changes_nothing(transformer_model):
    tgt = torch.tensor([[2, 10, 11]])
    a, _ = transformer_model(torch.tensor([[5, 6, 3]]), tgt)
    b, _ = transformer_model(torch.tensor([[5, 6, 3, 0, 0]]), tgt)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_both_norm_placements_decode_incrementally(pre_norm, padded_batch):
    torch.manual_seed(0)
    model = TransformerModel(23, 16, 1, 2, 2, 32, dropout=0.0, pre_norm=pre_norm).eval()
    src, tgt_in = padded_batch
    logits, _ = model(src, tgt_in)
    state = model.encode(src)
    for t in range(tgt_in.size(1)):
        log_probs, state, _ = model.decode_step(tgt_in[:, t], state)
        real = tgt_in[:, t] != 0
        torch.testing.assert_close(log_probs[real], torch.log_softmax(logits[:, t], -1)[real], atol=1e-5, rtol=1e-5)
    assert isinstance(model.encoder_norm, torch.nn.LayerNorm) == pre_norm


def test_sinusoidal_positions_follow_the_paper():
    pe = sinusoidal_positions(50, 8)
    pos, i = 7, 1
    assert pe[pos, 2 * i].item() == pytest.approx(torch.sin(torch.tensor(pos / 10000 ** (2 * i / 8))).item(), abs=1e-6)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(torch.cos(torch.tensor(pos / 10000 ** (2 * i / 8))).item(), abs=1e-6)


def test_cross_attention_weights_average_heads_and_mask_padding(transformer_model, padded_batch):
    src, _ = padded_batch
    state = transformer_model.encode(src)
    _, _, attention = transformer_model.decode_step(torch.full((3,), 2), state, attention_layer=-1)
    assert attention.shape == (3, src.size(1))
    torch.testing.assert_close(attention.sum(-1), torch.ones(3))
    assert torch.all(attention[src == 0] == 0)


@pytest.mark.parametrize("linear_init", list(LinearInit))
def test_linear_init_gives_each_matrix_its_variance(linear_init):
    """Xavier uniform has variance gain^2 * 2 / (fan_in + fan_out), torch's default 1 / (3 fan_in);
    with d_model 64 and ffn 256 every matrix below tells the two apart by at least 1.2x."""
    torch.manual_seed(0)
    d, ffn = 64, 256
    model = TransformerModel(23, d, 1, 1, 4, ffn, linear_init=linear_init)
    matrices = []  # (matrix, its Xavier variance), every projection of every layer
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            q, (k, v) = module.q_proj.weight, module.kv_proj.weight.chunk(2)
            matrices += [(q, 0.5 * 2 / (d + d)), (k, 0.5 * 2 / (d + d)), (v, 0.5 * 2 / (d + d)),
                         (module.out_proj.weight, 2 / (d + d))]
        elif isinstance(module, FeedForward):
            matrices += [(module[0].weight, 2 / (d + ffn)), (module[2].weight, 2 / (ffn + d))]
    assert len(matrices) == 3 * 4 + 2 * 2  # encoder self-, decoder self- and cross-attention; two FFNs
    for i, (matrix, xavier_variance) in enumerate(matrices):
        expected = xavier_variance if linear_init is LinearInit.xavier else 1 / (3 * matrix.size(1))
        assert matrix.var().item() == pytest.approx(expected, rel=0.06), i
    biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all((b == 0).all() for b in biases) == (linear_init is LinearInit.xavier)
