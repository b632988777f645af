"""Lexically constrained beam search: every constraint appears in every output, the best-scoring
sequence that contains them is found when the beam is large enough, batching changes nothing, and
without constraints the search is the one it always was."""

import itertools
import math

import pytest
import torch
from conftest import TinyLM
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.backends import Translator
from nmt.choices import LengthNorm, Precision
from nmt.config import SearchSettings
from nmt.data.vocab import EOS_ID
from nmt.decoding.constraints import Candidate, allocate, contains, initial_state
from nmt.decoding.search import beam_search, length_normalizer, search_corpus

CPU = torch.device("cpu")
SOURCES = [[5, 6, 7, 8], [9, 10], [11], [12, 13, 14, 15, 16, 17]]


def test_a_state_follows_overlapping_phrases_and_counts_the_tokens_met():
    state = initial_state([(4, 5, 6), (5, 7)])
    assert state.next_tokens() == {4, 5}
    state = state.advance(4).advance(5)  # (4, 5) of the first; (5,) of the second
    assert state.progress == 2 and state.next_tokens() == {6, 7, 4, 5}
    state = state.advance(7)  # completes the second, breaks the first
    assert state.met == {1} and state.progress == 2 and not state.all_met
    state = state.advance(4).advance(5).advance(6)
    assert state.all_met and state.progress == 5 and state.next_tokens() == set()


def test_allocation_deals_beams_round_robin_from_the_bank_that_met_the_most():
    state = initial_state([(9, 8)])
    one, none = state.advance(9), state
    candidates = [Candidate(0, 5, -1.0, none), Candidate(1, 6, -1.5, none), Candidate(0, 9, -4.0, one),
                  Candidate(1, 9, -5.0, one), Candidate(0, 7, -0.5, none)]
    chosen = allocate(candidates, 3)
    # Bank 1 gives its best, bank 0 its best, then bank 1 again: one candidate each turn.
    assert [(c.beam, c.token) for c in chosen] == [(0, 7), (0, 9), (1, 9)]


def _exhaustive_best_with(model, vocab, limit, settings, phrases):
    best = (-math.inf, None)
    for length in range(0, limit + 1):
        for seq in itertools.product(range(4, vocab), repeat=length):
            if all(contains(list(seq), p) for p in phrases):
                lp = model.sequence_log_prob(list(seq) + [EOS_ID])
                best = max(best, (lp / length_normalizer(length + 1, settings), list(seq)))
    return best


@pytest.mark.parametrize("phrases", [[(5,)], [(6, 4)], [(4,), (6,)], [(5, 5)]])
@pytest.mark.parametrize("norm", [LengthNorm.none, LengthNorm.average])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_large_beam_finds_the_best_sequence_that_contains_the_constraints(phrases, norm, seed):
    vocab, limit = 7, 4  # words 4, 5, 6; outputs of up to 4 words: 364 sequences
    model = TinyLM(vocab, seed, eos_bias=1.0)  # short outputs are likely, so the constraints cost
    search_settings = SearchSettings(beam_size=60, length_norm=norm, max_len_a=0, max_len_b=limit)
    found = beam_search(model, torch.tensor([[4, 3]]), search_settings, constraints=[phrases])[0][0]
    score, tokens = _exhaustive_best_with(model, vocab, limit, search_settings, phrases)
    assert found.tokens == tokens
    assert found.score == pytest.approx(score, abs=1e-5)


@pytest.fixture(scope="module")
def trained(trained_run) -> Translator:
    return Translator.from_checkpoint(trained_run / "checkpoints" / "best.pt", "cpu")


LINES = ["the cat sees the dog .", "a small bird sings", "the old man reads a book in the garden .", "hello"]


@settings(max_examples=30, deadline=None)
@given(data=st.data(), beam=st.integers(1, 5), nbest=st.integers(1, 3), line=st.sampled_from(LINES))
def test_every_constraint_appears_in_every_output(trained, data, beam, nbest, line):
    """Random phrases of random subwords: however unlikely under the model, each one is in every hypothesis."""
    words = st.integers(4, len(trained.vocab) - 1)
    phrases = data.draw(st.lists(st.lists(words, min_size=1, max_size=3).map(tuple), min_size=1, max_size=3))
    # Room for every phrase: the search can meet them all by the cap.
    search_settings = SearchSettings(beam_size=beam, nbest=min(nbest, beam), max_len_a=0,
                                     max_len_b=4 + sum(len(p) for p in phrases))
    ids, _ = trained.encode_lines([line])
    hyps = trained.search_ids(ids, search_settings, 10_000, Precision.fp32, None, None, [phrases])[0]
    assert hyps and all(contains(h.tokens, p) for h in hyps for p in phrases)


def test_terms_given_as_text_appear_in_the_translation(trained):
    search_settings = SearchSettings(beam_size=4)
    plain = trained.translate_hypotheses(LINES, search_settings)
    terms = [["Vogel"], ["Buch", "Hund"], [], ["Hund"]]  # words the model would not write for these lines
    kept = trained.translate_hypotheses(LINES, search_settings, constraints=terms)
    for line_terms, hyps in zip(terms, kept):
        assert all(term in trained.vocab.decode(hyps[0].tokens) for term in line_terms)
    assert kept[2][0].tokens == plain[2][0].tokens  # the line without terms is translated as before


def test_nbest_hypotheses_all_contain_the_constraints(gru_model):
    search_settings = SearchSettings(beam_size=5, nbest=3, max_len_b=12)
    phrases = [(7, 8), (15,)]
    for hyps in search_corpus(gru_model, SOURCES, search_settings, 10_000, CPU, constraints=[phrases] * 4):
        assert len(hyps) == 3
        assert all(contains(h.tokens, p) for h in hyps for p in phrases)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_constrained_batch_equals_one_sentence_at_a_time(any_model, beam_size):
    search_settings = SearchSettings(beam_size=beam_size, nbest=1, max_len_b=10)
    constraints = [[(7,)], [], [(9, 10), (12,)], [(5,)]]  # one sentence without constraints among them
    batched = search_corpus(any_model, SOURCES, search_settings, 10_000, CPU, constraints=constraints)
    for source, phrases, hyps in zip(SOURCES, constraints, batched):
        alone = search_corpus(any_model, [source], search_settings, 10_000, CPU, constraints=[phrases])[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-5)


def test_without_constraints_the_search_is_unchanged(any_model):
    search_settings = SearchSettings(beam_size=4, nbest=2, max_len_b=8)
    plain = search_corpus(any_model, SOURCES, search_settings, 10_000, CPU)
    empty = search_corpus(any_model, SOURCES, search_settings, 10_000, CPU, constraints=[[] for _ in SOURCES])
    assert [[(h.tokens, h.score, h.log_prob) for h in hyps] for hyps in plain] == \
        [[(h.tokens, h.score, h.log_prob) for h in hyps] for hyps in empty]


def test_a_sentence_without_constraints_is_unchanged_by_constrained_batch_mates(any_model):
    search_settings = SearchSettings(beam_size=4, max_len_b=8)
    plain = search_corpus(any_model, SOURCES, search_settings, 10_000, CPU)
    mixed = search_corpus(any_model, SOURCES, search_settings, 10_000, CPU, constraints=[[(7,)], [], [(9,)], []])
    for i in (1, 3):
        assert [(h.tokens, h.score) for h in mixed[i]] == [(h.tokens, h.score) for h in plain[i]]


def test_at_the_cap_the_hypothesis_that_met_the_most_constraints_is_returned(gru_model):
    # Two three-token phrases cannot both fit in three tokens: no hypothesis meets both, so the search
    # returns one that met one of them, the most any could.
    search_settings = SearchSettings(beam_size=4, max_len_a=0, max_len_b=3)
    hyps = search_corpus(gru_model, [SOURCES[0]], search_settings, 10_000, CPU,
                         constraints=[[(7, 8, 9), (10, 11, 12)]])[0]
    assert len(hyps) == 1 and len(hyps[0].tokens) == 3
    assert contains(hyps[0].tokens, (7, 8, 9)) or contains(hyps[0].tokens, (10, 11, 12))



def test_constrained_hypotheses_carry_their_attention(gru_model):
    search_settings = SearchSettings(beam_size=3, nbest=2, max_len_b=10)
    found = search_corpus(gru_model, SOURCES[:2], search_settings, 10_000, CPU, attention_layer=-1,
                          constraints=[[(7, 8)], [(9,)]])
    for source, hyps in zip(SOURCES[:2], found):
        for h in hyps:
            assert h.attention.shape[0] == len(h.tokens) + 1 and h.attention.shape[1] >= len(source) + 1
            torch.testing.assert_close(h.attention.sum(1), torch.ones(len(h.tokens) + 1))
