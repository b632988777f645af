"""The training objective: cross-entropy of the reference tokens, summed over a batch's target
tokens (padding excluded), optionally label-smoothed (Szegedy et al. 2016)."""

import torch
import torch.nn.functional as F

from nmt.data.batching import Batch
from nmt.data.vocab import PAD_ID


def token_cross_entropy(logits: torch.Tensor, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """logits: (batch, tgt_len, vocab) for batch.tgt_out; computed in float32 whatever autocast chose."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.tgt_out.view(-1), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing, reduction="sum")
