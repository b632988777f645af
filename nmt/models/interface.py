"""The contract between the models and search: encode once, step the decoder, reorder its state.

Search, training and translation hold an `EncoderDecoder` and never ask which model it is.
A decoder state has two parts. What the encoder computed (its output, the padding mask, the
cross-attention keys) is one row per source sentence; what the decoder carries (recurrent state,
self-attention caches) is one row per hypothesis. In beam search a sentence's beams share its
row of the first part: the model groups them onto it, and search moves those rows only when
sentences leave the batch, never to reorder beams.
"""

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch

Tensors = dict[str, torch.Tensor]


def token_limit(max_positions: int) -> int:
    """Tokens of one sequence a model with `max_positions` takes: the EOS after a source and the
    BOS before a target each take a position. Longer sources are cut, outputs are capped, here."""
    return max_positions - 1


@dataclass(frozen=True)
class DecoderState:
    per_sentence: Tensors  # (sentences, ...) each
    per_hypothesis: Tensors  # (sentences * hypotheses_each, ...) each

    def reorder(self, hypotheses: torch.Tensor, sentences: torch.Tensor | None = None) -> "DecoderState":
        """Keep and reorder rows: hypothesis rows follow `hypotheses`, sentence rows follow
        `sentences` (or stay as they are when None). Nothing is recomputed."""
        per_sentence = self.per_sentence if sentences is None else _select(self.per_sentence, sentences)
        return DecoderState(per_sentence, _select(self.per_hypothesis, hypotheses))


def _select(tensors: Tensors, index: torch.Tensor) -> Tensors:
    return {name: value.index_select(0, index) for name, value in tensors.items()}


class Step(NamedTuple):
    log_probs: torch.Tensor  # (hypotheses, vocab), float32
    state: DecoderState
    attention: torch.Tensor | None  # (hypotheses, src_len), when asked for


class EncoderDecoder(Protocol):
    """What search and training need of a model; GRUAttentionModel and TransformerModel offer it."""

    max_positions: int  # longest source or output in tokens, EOS included

    def encode(self, src: torch.Tensor) -> DecoderState:
        """Encode (batch, src_len) ids once; the state holds all a decoding step needs."""

    def decode_step(self, prev_tokens: torch.Tensor, state: DecoderState, attention_layer: int | None = None) -> Step:
        """Next-token log-probabilities after `prev_tokens` (hypotheses,). With `attention_layer`
        set, also the attention over the source: the GRU's α, or that Transformer decoder layer's
        cross-attention averaged over heads."""

    def __call__(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced logits (batch, tgt_len, vocab) and, where the model has it cheaply, attention."""
