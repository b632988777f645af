"""Validation during training: loss, perplexity and BLEU on the validation split, and a picture
of the model's attention on its first sentence. Rank 0 alone runs it."""

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sacrebleu
import torch

from nmt.choices import Precision
from nmt.config.decode import SearchSettings
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import Vocab
from nmt.decoding.search import search_corpus
from nmt.device import autocast
from nmt.evaluation.plots import attention_figure
from nmt.models.interface import EncoderDecoder, token_limit
from nmt.training.loss import token_cross_entropy


@dataclass
class ValidationSet:
    """The validation pairs and their reference text. Validation is never filtered: pairs are
    cut to the model's positions and batched with room for the longest."""

    data: EncodedSplit
    references: list[str]
    max_positions: int
    train_max_tokens: int

    @cached_property
    def pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        limit = token_limit(self.max_positions)
        return [tuple(side[:limit] for side in self.data.pair(i)) for i in range(len(self.data))]

    @cached_property
    def max_tokens(self) -> int:
        longest = int(max(self.data.src_lengths.max(), self.data.tgt_lengths.max())) if len(self.data) else 0
        return max(self.train_max_tokens * 2, min(longest, token_limit(self.max_positions)) + 2)

    def batches(self):
        limit = token_limit(self.max_positions)
        sampler = TokenBatchSampler(np.minimum(self.data.src_lengths, limit), np.minimum(self.data.tgt_lengths, limit),
                                    self.max_tokens, 0, shuffle=False)
        for indices in sampler.epoch_batches(0):
            yield collate([self.pairs[int(i)] for i in indices])


@torch.no_grad()
def validate(model: EncoderDecoder, valid: ValidationSet, vocab: Vocab, search: SearchSettings | None,
             device: torch.device, precision: Precision) -> dict[str, float]:
    """Loss and perplexity per target token; BLEU of `search`'s output against the references
    unless `search` is None."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in valid.batches():
        batch = batch.to(device)
        with autocast(precision, device):
            logits, _ = model(batch.src, batch.tgt_in)
        total += token_cross_entropy(logits, batch).item()
        tokens += batch.target_tokens
    loss = total / max(tokens, 1)
    result = {"loss": loss, "ppl": math.exp(min(loss, 50))}
    if search is not None:
        with autocast(precision, device):
            hyps = search_corpus(model, [src for src, _ in valid.pairs], search, valid.max_tokens, device)
        outputs = [vocab.decode(h[0].tokens) for h in hyps]
        result["bleu"] = sacrebleu.corpus_bleu(outputs, [valid.references]).score
    return result


@torch.no_grad()
def attention_picture(model: EncoderDecoder, valid: ValidationSet, vocab: Vocab, device: torch.device, title: str):
    """The greedy translation's attention on the first validation sentence, as a figure (or None
    without matplotlib)."""
    model.eval()
    source = valid.pairs[0][0]
    hyp = search_corpus(model, [source], SearchSettings(beam_size=1), valid.max_tokens, device,
                        attention_layer=-1)[0][0]
    return attention_figure(hyp.attention.float().numpy(), vocab.pieces_with_end(source),
                            vocab.pieces_with_end(hyp.tokens), title)
