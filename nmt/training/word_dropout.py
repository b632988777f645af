"""Word dropout (Gal & Ghahramani 2016; for low-resource NMT, Sennrich & Zhang 2019): during training
each source piece and each piece of the target history is replaced by <unk> with probability p, so the
model cannot lean on any one input word. The labels (tgt_out), BOS, EOS and padding are never touched,
so the loss still asks for every reference piece."""

from dataclasses import replace

import torch

from nmt.data.batching import Batch
from nmt.data.vocab import EOS_ID, UNK_ID


def drop_words(batch: Batch, p: float) -> Batch:
    """`batch` with its inputs' pieces replaced by <unk> at rate `p`, drawn from torch's generator."""
    if p == 0:
        return batch
    return replace(batch, src=_drop(batch.src, p), tgt_in=_drop(batch.tgt_in, p))


def _drop(tokens: torch.Tensor, p: float) -> torch.Tensor:
    pieces = tokens > EOS_ID  # the special ids (PAD, UNK, BOS, EOS) are the lowest
    hit = torch.rand(tokens.shape, device=tokens.device) < p
    return tokens.masked_fill(pieces & hit, UNK_ID)
