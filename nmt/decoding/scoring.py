"""Scores of given translations (forced decoding): how probable the model finds a target for its source,
over the encode / decode_step interface search uses, so a target gets exactly the log-probabilities
search would have added up had it written that target.

A target's log-probability sums log_softmax over the whole vocabulary at each of its tokens and at the
EOS that ends it, as search's scores and fairseq's --score-reference, CTranslate2's score_batch and
marian-scorer count it; its score divides that by search's length normalizer of |target| + 1. Text never
encodes to PAD, BOS or EOS, so a target holds none of them. It may hold UNK (a character outside the
vocabulary): search never writes UNK, but a given target is scored with the model's own log-probability
for it, as those tools do, so that one rare character does not make a whole pair unscorable.
"""

from typing import Callable, Sequence

import torch

from nmt.config.decode import SearchSettings
from nmt.data.batching import fill_budget, pad_sources
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.decoding.search import Hypothesis, length_normalizer
from nmt.models.interface import EncoderDecoder


def scored_hypothesis(target: list[int], token_log_probs: Sequence[float], settings: SearchSettings) -> Hypothesis:
    """The hypothesis `target` is, given the log-probabilities of its tokens and of the EOS after them."""
    log_prob = float(sum(token_log_probs))
    return Hypothesis(list(target), log_prob / length_normalizer(len(target) + 1, settings), log_prob,
                      token_log_probs=list(token_log_probs))


@torch.no_grad()
def score_batch(model: EncoderDecoder, src: torch.Tensor, targets: list[list[int]],
                settings: SearchSettings) -> list[Hypothesis]:
    """Each target (subword ids, without EOS) scored as the translation of its row of `src` (batch, src_len):
    the decoder is fed the target's own tokens, BOS first, and each step's log-probability of the next
    target token (then EOS) is kept. Rows whose target has ended read PAD and are ignored."""
    lengths = [len(t) + 1 for t in targets]  # with the EOS
    gold = torch.full((len(targets), max(lengths)), PAD_ID, dtype=torch.long)
    for row, target in enumerate(targets):
        gold[row, :len(target)] = torch.tensor(target, dtype=torch.long)
        gold[row, len(target)] = EOS_ID
    gold = gold.to(src.device)  # (batch, tgt_len)
    state = model.encode(src)
    prev = torch.full((len(targets),), BOS_ID, dtype=torch.long, device=src.device)
    steps = []
    for step in range(gold.size(1)):
        log_probs, state, _ = model.decode_step(prev, state)  # (batch, vocab)
        steps.append(log_probs.gather(1, gold[:, step:step + 1]))
        prev = gold[:, step]
    token_log_probs = torch.cat(steps, dim=1).tolist()  # (batch, tgt_len)
    return [scored_hypothesis(target, row[:length], settings)
            for target, row, length in zip(targets, token_log_probs, lengths)]


def score_corpus(model: EncoderDecoder, sources: list[list[int]], targets: list[list[int]], settings: SearchSettings,
                 max_tokens: int, device: torch.device,
                 on_batch: Callable[[int], None] | None = None) -> list[Hypothesis]:
    """Score every (source, target) pair of subword ids (without EOS) in batches of at most `max_tokens`
    padded tokens of the longer side, shortest first to keep padding small; results in input order."""
    costs = [max(len(s), len(t)) + 1 for s, t in zip(sources, targets)]
    order = sorted(range(len(sources)), key=costs.__getitem__)
    found: dict[int, Hypothesis] = {}
    for begin, end in fill_budget([costs[i] for i in order], max_tokens):
        chunk = order[begin:end]
        src = pad_sources([sources[i] for i in chunk]).to(device)
        found.update(zip(chunk, score_batch(model, src, [targets[i] for i in chunk], settings)))
        if on_batch is not None:
            on_batch(len(chunk))
    return [found[i] for i in range(len(sources))]
