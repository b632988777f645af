"""The two translation models and the one function that builds either from its config.

Both offer the interface search and training rely on:
  encode(src) -> state                                   once per source batch
  decode_step(prev_tokens, state) -> (log_probs, state, attention)
  forward(src, tgt_in) -> (logits, attention or None)    teacher forcing
The state is a dict of tensors whose first dimension is the batch, so beam search
reorders it with one index_select per tensor. Keys starting with "enc_" hold what the
encoder computed once per sentence; in beam search they keep one row per sentence while
the decoder entries have one per beam (decode_step groups the beams onto their sentence),
so search moves them only when sentences leave the batch, never to reorder beams.
"""

from dataclasses import asdict

from torch import nn

from nmt.config import GRUConfig, ModelConfig, TransformerConfig
from nmt.models.gru_attention import GRUAttentionModel
from nmt.models.transformer import TransformerModel


def build_model(config: ModelConfig, vocab_size: int) -> nn.Module:
    sizes = {k: v for k, v in asdict(config).items() if k != "name"}
    if isinstance(config, GRUConfig):
        return GRUAttentionModel(vocab_size, **sizes)
    if isinstance(config, TransformerConfig):
        return TransformerModel(vocab_size, **sizes)
    raise TypeError(f"no model for {type(config).__name__}")


def model_kind(config: ModelConfig) -> str:
    return "gru_attention" if isinstance(config, GRUConfig) else "transformer"
