"""Beam search is exact where it can be, equals greedy at beam 1, and batching changes nothing."""

import itertools
import math

import numpy as np
import pytest
import torch

from nmt.choices import LengthNorm
from nmt.config import SearchSettings
from nmt.data.batching import pad_sources
from nmt.data.vocab import EOS_ID
from nmt.decoding.search import beam_search, greedy_search, length_normalizer, search_corpus
from nmt.models.interface import DecoderState, Step

SOURCES = [[5, 6, 7, 8], [9, 10], [11], [12, 13, 14, 15, 16, 17]]


class TinyLM(torch.nn.Module):
    """A fixed random table of next-token log-probabilities given the previous token and step:
    a model whose every output sequence can be scored by hand."""

    max_positions = 64

    def __init__(self, vocab: int, seed: int, eos_bias: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(8, vocab, vocab, generator=g) * 2
        logits[:, :, EOS_ID] += eos_bias
        self.table = torch.log_softmax(logits, -1)  # (step, prev, next)

    def encode(self, src):
        return DecoderState({}, {"step": torch.zeros(src.size(0), dtype=torch.long)})

    def decode_step(self, prev, state, attention_layer=None):
        step = state.per_hypothesis["step"]
        return Step(self.table[step, prev].clone(), DecoderState({}, {"step": step + 1}), None)

    def sequence_log_prob(self, tokens):
        prev, total = 2, 0.0
        for t, token in enumerate(tokens):
            total += self.table[t, prev, token].item()
            prev = token
        return total


def _exhaustive_best(model, vocab, limit, settings):
    words = range(4, vocab)
    best = (-math.inf, None)
    for length in range(0, limit + 1):
        for seq in itertools.product(words, repeat=length):
            # A hypothesis ends with EOS, also where the length limit forces it.
            tokens = list(seq) + [EOS_ID]
            lp = model.sequence_log_prob(tokens)
            score = lp / length_normalizer(length + 1, settings)
            best = max(best, (score, list(seq)))
    return best


@pytest.mark.parametrize("norm,alpha", [("none", 0.0), ("gnmt", 0.6), ("gnmt", 1.0), ("average", 0.0)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_finds_the_exhaustive_best(norm, alpha, seed):
    vocab, limit = 7, 3  # words 4, 5, 6; outputs of up to 3 words
    model = TinyLM(vocab, seed, eos_bias=-1.0)
    settings = SearchSettings(beam_size=40, length_penalty=alpha, length_norm=LengthNorm(norm), max_len_a=0,
                              max_len_b=limit)
    src = torch.tensor([[4, 3]])
    found = beam_search(model, src, settings)[0][0]
    score, tokens = _exhaustive_best(model, vocab, limit, settings)
    assert found.tokens == tokens
    assert found.score == pytest.approx(score, abs=1e-5)


def test_small_beam_returns_its_hypotheses_best_first():
    model = TinyLM(9, 3)
    hyps = beam_search(model, torch.tensor([[4, 3]]), SearchSettings(beam_size=4, nbest=4, max_len_b=5))[0]
    assert len(hyps) == 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        lp = model.sequence_log_prob(h.tokens + [EOS_ID])
        assert h.log_prob == pytest.approx(lp, abs=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_size_one_equals_greedy(any_model, alpha):
    src = _pad(SOURCES)
    settings = SearchSettings(beam_size=1, length_penalty=alpha, max_len_b=8)
    greedy = greedy_search(any_model, src, settings)
    beam = beam_search(any_model, src, settings)
    assert [g[0].tokens for g in greedy] == [b[0].tokens for b in beam]
    for g, b in zip(greedy, beam):
        assert g[0].score == pytest.approx(b[0].score, abs=1e-4)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_translating_a_batch_equals_one_sentence_at_a_time(any_model, beam_size):
    settings = SearchSettings(beam_size=beam_size, nbest=min(beam_size, 2), max_len_b=8)
    batched = search_corpus(any_model, SOURCES, settings, max_tokens=10_000, device=torch.device("cpu"))
    for source, hyps in zip(SOURCES, batched):
        alone = search_corpus(any_model, [source], settings, max_tokens=10_000, device=torch.device("cpu"))[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-4)


def test_small_token_budget_gives_the_same_results_in_input_order(any_model):
    settings = SearchSettings(beam_size=3, max_len_b=6)
    big = search_corpus(any_model, SOURCES, settings, max_tokens=10_000, device=torch.device("cpu"))
    small = search_corpus(any_model, SOURCES, settings, max_tokens=1, device=torch.device("cpu"))
    assert [h[0].tokens for h in big] == [h[0].tokens for h in small]


def test_output_length_is_capped_by_a_times_source_plus_b(any_model):
    settings = SearchSettings(beam_size=3, max_len_a=0.5, max_len_b=2)
    for source, hyps in zip(SOURCES, search_corpus(any_model, SOURCES, settings, 10_000, torch.device("cpu"))):
        assert len(hyps[0].tokens) <= int(0.5 * len(source) + 2)


def test_attention_comes_back_per_output_token(gru_model):
    src = _pad(SOURCES[:2])
    for search in (greedy_search, beam_search):
        for hyps in search(gru_model, src, SearchSettings(beam_size=2, max_len_b=5), attention_layer=-1):
            assert hyps[0].attention.shape == (len(hyps[0].tokens) + 1, src.size(1))
            torch.testing.assert_close(hyps[0].attention.sum(1), torch.ones(len(hyps[0].tokens) + 1))


def _pad(sources):
    return pad_sources([np.array(s) for s in sources])
