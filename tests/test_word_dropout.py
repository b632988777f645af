import torch

from nmt.data.batching import Batch
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.training.word_dropout import drop_words


def _batch(rows: int = 400, length: int = 50) -> Batch:
    pieces = torch.randint(EOS_ID + 1, 1000, (rows, length), generator=torch.Generator().manual_seed(0))
    src = torch.cat([pieces, torch.full((rows, 1), EOS_ID), torch.full((rows, 2), PAD_ID)], dim=1)
    tgt_in = torch.cat([torch.full((rows, 1), BOS_ID), pieces, torch.full((rows, 2), PAD_ID)], dim=1)
    tgt_out = torch.cat([pieces, torch.full((rows, 1), EOS_ID), torch.full((rows, 2), PAD_ID)], dim=1)
    return Batch(src, tgt_in, tgt_out, rows * (length + 1))


def test_no_rate_returns_the_batch_itself():
    batch = _batch()
    assert drop_words(batch, 0.0) is batch


def test_pieces_become_unk_at_the_rate_and_nothing_else_changes():
    batch = _batch()
    torch.manual_seed(1)
    dropped = drop_words(batch, 0.25)
    for before, after in ((batch.src, dropped.src), (batch.tgt_in, dropped.tgt_in)):
        changed = before != after
        assert (after[changed] == UNK_ID).all()
        pieces = before > EOS_ID
        assert not changed[~pieces].any()  # BOS, EOS and padding stay
        # 20,000 pieces: the rate's standard error is 0.003.
        assert abs(changed[pieces].float().mean().item() - 0.25) < 0.015
    assert dropped.tgt_out is batch.tgt_out and dropped.target_tokens == batch.target_tokens
    # Source and target history draw their own positions.
    assert not torch.equal(dropped.src[:, :50] == UNK_ID, dropped.tgt_in[:, 1:51] == UNK_ID)


def test_the_draws_follow_torchs_generator_so_a_resumed_run_repeats_them():
    batch = _batch(rows=20)
    torch.manual_seed(5)
    first = drop_words(batch, 0.3)
    torch.manual_seed(5)
    again = drop_words(batch, 0.3)
    assert torch.equal(first.src, again.src) and torch.equal(first.tgt_in, again.tgt_in)
