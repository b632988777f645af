"""The GRU model computes the equations its module docstring states (Bahdanau's additive score with
the query s_t, the state after reading y_{t-1}), masks padding and can learn."""

import torch
import torch.nn.functional as F

from nmt.choices import OutputLayer
from nmt.models.gru_attention import BahdanauAttention, GRUAttentionModel


def test_attention_is_zero_on_padding_and_sums_to_one(gru_model, padded_batch):
    src, tgt_in = padded_batch
    _, alpha = gru_model(src, tgt_in)  # (batch, tgt_len, src_len)
    padding = (src == 0).unsqueeze(1).expand_as(alpha)
    assert torch.all(alpha[padding] == 0)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(alpha.shape[:2]))


def test_additive_score_e_ti_matches_v_tanh_W_h_h_i_plus_W_s_s_t_plus_b():
    torch.manual_seed(1)
    attention = BahdanauAttention(key_dim=4, query_dim=3, attention_dim=5)
    h = torch.randn(1, 3, 4)  # three source positions
    s = torch.randn(1, 3)
    mask = torch.tensor([[True, True, False]])
    c, alpha = attention(attention.project_keys(h), h, mask, s)

    W_h, b = attention.W_h.weight, attention.W_h.bias
    W_s, v = attention.W_s.weight, attention.v.weight[0]
    with torch.no_grad():
        e = [float(v @ torch.tanh(W_h @ h[0, i] + W_s @ s[0] + b)) for i in range(2)]  # e_ti, unmasked positions
    expected_alpha = torch.softmax(torch.tensor(e), 0)
    torch.testing.assert_close(alpha[0, :2], expected_alpha)
    assert alpha[0, 2] == 0
    torch.testing.assert_close(c[0], expected_alpha[0] * h[0, 0] + expected_alpha[1] * h[0, 1])


def test_output_y_t_is_softmax_of_W_o_over_c_t_and_s_t(gru_model, padded_batch):
    src, tgt_in = padded_batch
    state = gru_model.encode(src)
    log_probs, new_state, _ = gru_model.decode_step(tgt_in[:, 0], state)
    features = torch.cat([new_state.per_hypothesis["c"], new_state.per_hypothesis["s"][:, -1]], dim=1)  # [c_t; s_t]
    expected = F.log_softmax(features @ gru_model.W_o.weight.T + gru_model.W_o.bias, dim=-1)
    torch.testing.assert_close(log_probs, expected)


def test_state_s_t_is_the_gru_over_previous_embedding_and_context_c_t_minus_1(gru_model, padded_batch):
    src, tgt_in = padded_batch
    state = gru_model.encode(src)
    _, state1, _ = gru_model.decode_step(tgt_in[:, 0], state)
    _, state2, _ = gru_model.decode_step(tgt_in[:, 1], state1)
    x = torch.cat([gru_model.tgt_embed(tgt_in[:, 1]), state1.per_hypothesis["c"]], dim=1)
    torch.testing.assert_close(state2.per_hypothesis["s"][:, 0], gru_model.cells[0](x, state1.per_hypothesis["s"][:, 0]))


def test_attention_query_is_s_t_the_state_after_reading_y_t_minus_1_not_s_t_minus_1(gru_model, padded_batch):
    src, tgt_in = padded_batch
    state = gru_model.encode(src)
    _, new_state, alpha = gru_model.decode_step(tgt_in[:, 0], state, attention_layer=-1)
    encoded = state.per_sentence
    s_t, s_t_minus_1 = new_state.per_hypothesis["s"][:, -1], state.per_hypothesis["s"][:, -1]
    c_t, alpha_t = gru_model.attention(encoded["keys"], encoded["h"], encoded["mask"], s_t)
    torch.testing.assert_close(alpha, alpha_t)
    torch.testing.assert_close(new_state.per_hypothesis["c"], c_t)
    _, alpha_bahdanau = gru_model.attention(encoded["keys"], encoded["h"], encoded["mask"], s_t_minus_1)
    assert not torch.allclose(alpha, alpha_bahdanau)


def test_keys_are_projected_once_per_sentence(gru_model, padded_batch):
    src, tgt_in = padded_batch
    calls = []
    handle = gru_model.attention.W_h.register_forward_hook(lambda *args: calls.append(1))
    gru_model(src, tgt_in)
    handle.remove()
    assert len(calls) == 1


def test_padding_does_not_change_a_sentence_encoding(gru_model):
    alone = gru_model.encode(torch.tensor([[9, 10, 3]]))
    padded = gru_model.encode(torch.tensor([[9, 10, 3, 0, 0]]))
    torch.testing.assert_close(alone.per_sentence["h"], padded.per_sentence["h"][:, :3])
    torch.testing.assert_close(alone.per_hypothesis["s"], padded.per_hypothesis["s"])


def test_tiny_model_overfits_a_handful_of_pairs():
    torch.manual_seed(0)
    model = GRUAttentionModel(vocab_size=20, embed_dim=16, hidden_dim=32)
    src = torch.tensor([[4, 5, 6, 3], [7, 8, 3, 0], [9, 10, 11, 3]])
    tgt_in = torch.tensor([[2, 12, 13, 14], [2, 15, 16, 0], [2, 17, 18, 19]])
    tgt_out = torch.tensor([[12, 13, 14, 3], [15, 16, 3, 0], [17, 18, 19, 3]])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        logits, _ = model(src, tgt_in)
        loss = F.cross_entropy(logits.view(-1, 20), tgt_out.view(-1), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01
    model.eval()
    logits, _ = model(src, tgt_in)
    assert torch.equal(logits.argmax(-1)[tgt_out != 0], tgt_out[tgt_out != 0])


def test_deep_output_with_tied_embeddings_shares_one_table():
    model = GRUAttentionModel(vocab_size=20, embed_dim=16, hidden_dim=8, output_layer=OutputLayer.deep, tie_embeddings=True)
    assert model.W_o.weight is model.tgt_embed.weight is model.src_embed.weight


def test_compiling_traces_each_function_a_few_times_not_once_per_target_length(gru_model):
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()  # counts compiled frames; traces without inductor's code generation
    compiled = torch.compile(gru_model, backend=counter)
    frames = []
    for length in range(3, 12):
        src, tgt_in = torch.randint(4, 23, (3, 5)), torch.randint(4, 23, (3, length))
        compiled(src, tgt_in)
        frames.append(counter.frame_count)
    torch.testing.assert_close(compiled(src, tgt_in), gru_model(src, tgt_in))
    assert frames[-1] == frames[2] > 0  # after the first lengths, no new length compiles anything
