"""Both models: stepping with the incremental state gives the full forward pass's numbers."""

import torch


def test_incremental_decoding_equals_full_forward(any_model, padded_batch):
    src, tgt_in = padded_batch
    logits, _ = any_model(src, tgt_in)
    state = any_model.encode(src)
    steps = []
    for t in range(tgt_in.size(1)):
        log_probs, state, _ = any_model.decode_step(tgt_in[:, t], state)
        steps.append(log_probs)
    real = tgt_in != 0
    torch.testing.assert_close(torch.stack(steps, 1)[real], torch.log_softmax(logits, -1)[real], atol=1e-5, rtol=1e-5)


def test_reordering_the_state_equals_decoding_the_reordered_batch(any_model, padded_batch):
    src, tgt_in = padded_batch
    order = torch.tensor([2, 0, 0, 1])
    state = any_model.encode(src).reorder(order, order)
    direct = any_model.encode(src[order])
    for t in range(2):
        a, state, _ = any_model.decode_step(tgt_in[order, t], state)
        b, direct, _ = any_model.decode_step(tgt_in[order, t], direct)
        torch.testing.assert_close(a, b)
