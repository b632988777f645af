"""Beam search is exact where it can be, equals greedy at beam 1, and batching changes nothing."""

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import TableLM, TinyLM

from nmt.choices import LengthNorm
from nmt.config import SearchSettings
from nmt.data.batching import pad_sources
from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.decoding.search import beam_search, greedy_search, length_normalizer, max_output_lengths, search_corpus

SOURCES = [[5, 6, 7, 8], [9, 10], [11], [12, 13, 14, 15, 16, 17]]


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


@pytest.mark.parametrize("norm,alpha", [("none", 0.0), ("gnmt", 0.6), ("gnmt", 1.0), ("average", 0.0),
                                        ("power", 0.2)])
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


A, B, C, D = 4, 5, 6, 7  # the words of an 8-token vocabulary: PAD 0, UNK 1, BOS 2, EOS 3
# Next-token probabilities after each token, the same at every step. With beam 2 and no length
# normalization, step 0 finishes the empty output (0.3) beside the beam A (0.5), and step 1 finishes
# [B] (0.15 * 0.9) beside the beam [A C] (0.45): a rule that stops once beam_size hypotheses have
# finished answers the empty output, yet [A C] goes on to 0.4275, better than both.
EARLY_ENDINGS = {
    BOS_ID: {A: 0.5, EOS_ID: 0.3, B: 0.15, C: 0.025, D: 0.025},
    A: {C: 0.9, EOS_ID: 0.05, A: 0.02, B: 0.02, D: 0.01},
    B: {EOS_ID: 0.9, A: 0.025, B: 0.025, C: 0.025, D: 0.025},
    C: {EOS_ID: 0.95, A: 0.0125, B: 0.0125, C: 0.0125, D: 0.0125},
    D: {EOS_ID: 0.5, A: 0.125, B: 0.125, C: 0.125, D: 0.125},
}


def _bigram_lm(probabilities: dict[int, dict[int, float]], vocab: int = 8, steps: int = 8) -> TableLM:
    table = torch.full((vocab, vocab), -math.inf)  # (prev, next); the specials never come next
    for prev, following in probabilities.items():
        for token, p in following.items():
            table[prev, token] = math.log(p)
    return TableLM(table.repeat(steps, 1, 1))


def test_finished_hypotheses_do_not_stop_a_beam_that_can_still_beat_them():
    model = _bigram_lm(EARLY_ENDINGS)
    settings = SearchSettings(beam_size=2, length_norm=LengthNorm.none, max_len_a=0, max_len_b=3)
    found = beam_search(model, torch.tensor([[4, 3]]), settings)[0][0]
    score, tokens = _exhaustive_best(model, 8, 3, settings)
    assert tokens == [A, C]
    assert found.tokens == tokens
    assert found.score == pytest.approx(score, abs=1e-5)


# With length_norm=average, the empty output ends at step 0 with the score log 0.5 = -0.69. A bound
# taken at the beam A's next length, 2, would stop there (log 0.22 / 2 = -0.76), but [A C D] ends at
# length 4 with -1.67 / 4 = -0.42: only the normalizer at the cap bounds what a beam can reach.
LONG_WINNER = {
    BOS_ID: {EOS_ID: 0.5, A: 0.22, B: 0.18, C: 0.05, D: 0.05},
    A: {C: 0.95, EOS_ID: 0.0125, A: 0.0125, B: 0.0125, D: 0.0125},
    B: {EOS_ID: 0.9, A: 0.025, B: 0.025, C: 0.025, D: 0.025},
    C: {D: 0.95, EOS_ID: 0.0125, A: 0.0125, B: 0.0125, C: 0.0125},
    D: {EOS_ID: 0.95, A: 0.0125, B: 0.0125, C: 0.0125, D: 0.0125},
}


def test_a_short_ending_does_not_stop_a_beam_that_reaches_a_better_average_by_the_cap():
    model = _bigram_lm(LONG_WINNER)
    settings = SearchSettings(beam_size=2, length_norm=LengthNorm.average, max_len_a=0, max_len_b=4)
    found = beam_search(model, torch.tensor([[4, 3]]), settings)[0][0]
    score, tokens = _exhaustive_best(model, 8, 4, settings)
    assert tokens == [A, C, D]
    assert found.tokens == tokens
    assert found.score == pytest.approx(score, abs=1e-5)


class _CountingLM(TableLM):
    def __init__(self, table: torch.Tensor):
        super().__init__(table)
        self.steps = 0

    def decode_step(self, prev, state, attention_layer=None):
        self.steps += 1
        return super().decode_step(prev, state, attention_layer)


def test_search_stops_once_no_beam_can_beat_the_best_finished_hypothesis():
    # [A C] ends at step 2 with log-probability -0.85; every beam left is below -5 and can only fall.
    model = _CountingLM(_bigram_lm(EARLY_ENDINGS).table)
    settings = SearchSettings(beam_size=2, length_norm=LengthNorm.none, max_len_a=0, max_len_b=6)
    assert beam_search(model, torch.tensor([[4, 3]]), settings)[0][0].tokens == [A, C]
    assert model.steps == 3


def _same_beam_to_the_cap(model: TableLM, limit: int, settings: SearchSettings) -> list[tuple[float, float, list]]:
    """The search's own pruning in plain Python, adding in float32 as it does: each step the 2k best
    candidates, those of the k best that end in EOS finish, the k best others go on. It never stops
    before the cap, so it sees every hypothesis the search could ever finish. Its nbest best
    (score, log-probability, tokens), best first."""
    k, table = settings.beam_size, model.table.numpy()
    beams = [(np.float32(0.0), [BOS_ID])]
    finished = []
    for step in range(limit + 1):
        allowed = [EOS_ID] if step == limit else [EOS_ID, *range(4, table.shape[2])]
        candidates = sorted(((lp + table[step, tokens[-1], token], tokens + [token])
                             for lp, tokens in beams for token in allowed), key=lambda c: -c[0])[:2 * k]
        finished += [(float(lp) / length_normalizer(step + 1, settings), float(lp), tokens[1:-1])
                     for lp, tokens in candidates[:k] if tokens[-1] == EOS_ID]
        beams = [(lp, tokens) for lp, tokens in candidates if tokens[-1] != EOS_ID][:k]
    return sorted(finished, key=lambda f: -f[0])[:settings.nbest]


@pytest.mark.parametrize("norm,alpha", [("none", 0.0), ("average", 0.0), ("gnmt", 0.6), ("gnmt", 1.0),
                                        ("power", 0.2)])
@pytest.mark.parametrize("beam_size,nbest", [(2, 1), (2, 2), (3, 1), (3, 2)])
@pytest.mark.parametrize("seed", range(6))
def test_stopping_early_loses_nothing_the_same_beam_finds_by_the_cap(norm, alpha, beam_size, nbest, seed):
    vocab = 10  # words 4..9; outputs of up to 3, 4 and 5 words: far more than the beam keeps
    model = TinyLM(vocab, seed, eos_bias=1.0)
    settings = SearchSettings(beam_size=beam_size, nbest=nbest, length_penalty=alpha, length_norm=LengthNorm(norm),
                              max_len_a=1, max_len_b=2)
    src = _pad([[4], [4, 5], [4, 5, 6]])
    limits = max_output_lengths(src, settings, model.max_positions).tolist()
    for limit, hyps in zip(limits, beam_search(model, src, settings)):
        expected = _same_beam_to_the_cap(model, limit, settings)
        assert [h.tokens for h in hyps] == [tokens for _, _, tokens in expected]
        assert [h.score for h in hyps] == pytest.approx([score for score, _, _ in expected], abs=1e-6)
        assert [h.log_prob for h in hyps] == pytest.approx([lp for _, lp, _ in expected], abs=1e-6)


def test_small_beam_returns_its_hypotheses_best_first():
    model = TinyLM(9, 3)
    hyps = beam_search(model, torch.tensor([[4, 3]]), SearchSettings(beam_size=4, nbest=4, max_len_b=5))[0]
    assert len(hyps) == 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:
        lp = model.sequence_log_prob(h.tokens + [EOS_ID])
        assert h.log_prob == pytest.approx(lp, abs=1e-5)


# Where the score is the log-probability itself, a beam of one is greedy search exactly. Under a length
# normalization it may rightly go on past greedy's first EOS (a longer output can score better), so
# search() sends a beam of one to greedy_search, as users expect of beam 1.
@pytest.mark.parametrize("norm,alpha", [(LengthNorm.none, 0.0), (LengthNorm.gnmt, 0.0)])
def test_beam_size_one_equals_greedy(any_model, norm, alpha):
    src = _pad(SOURCES)
    settings = SearchSettings(beam_size=1, length_penalty=alpha, length_norm=norm, max_len_b=8)
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
