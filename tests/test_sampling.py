"""Sampling draws from the model's distribution, cut by top-k, the nucleus or epsilon, with a seed that
reproduces a sentence's sample whatever its batch; its scores are the model's own log-probabilities."""

import math
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import PRE_NORM_ONLY, TableLM, TinyLM, run_cli

from nmt.backends import Translator
from nmt.backends.ct2 import CT2Translator
from nmt.choices import LengthNorm, Precision, Sampling
from nmt.config import DecodeConfig, SearchSettings
from nmt.data.batching import pad_sources
from nmt.data.builtin import generate_pairs
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.decoding.search import greedy_search, length_normalizer, max_output_lengths, search, search_corpus
from nmt.errors import NmtError

SPECIALS = (PAD_ID, UNK_ID, BOS_ID)  # never written; EOS is
SOURCES = [[5, 6, 7, 8], [9, 10], [11], [12, 13, 14, 15, 16, 17]]
CPU = torch.device("cpu")


def sampling(method: Sampling, **settings) -> SearchSettings:
    return SearchSettings(beam_size=1, sampling=method, **{"max_len_a": 0, "max_len_b": 6, **settings})


def distinct_sources(n: int) -> torch.Tensor:
    """n different sources, so n different seeds; the table models read none of them."""
    return pad_sources([np.array([4 + (i >> 2 * j) % 4 for j in range(6)]) for i in range(n)])


def allowed_probabilities(row: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """A table row's next-token distribution at a temperature, the tokens search never writes removed."""
    logits = row.double() / temperature
    logits[list(SPECIALS)] = -math.inf
    return torch.softmax(logits, 0)


def sampled_steps(model: TableLM, hyps, src: torch.Tensor, settings: SearchSettings):
    """(the distribution, the token drawn from it) at every step a sampler chose, the EOS forced at the
    length cap left out."""
    for hyp, limit in zip(hyps, max_output_lengths(src, settings, model.max_positions).tolist()):
        prev = BOS_ID
        for step, token in enumerate(hyp[0].tokens + [EOS_ID]):
            if step < limit:
                yield allowed_probabilities(model.table[step, prev]), token
            prev = token


def first_token_lm(probabilities: dict[int, float]) -> TableLM:
    """A model that writes one token after BOS, drawn from `probabilities`, and then ends."""
    table = torch.full((8, 8, 8), -math.inf)  # (step, prev, next)
    table[1:, :, EOS_ID] = 0.0
    table[0, BOS_ID, list(probabilities)] = torch.tensor(list(probabilities.values())).log()
    return TableLM(table)


FIRST_TOKENS = {EOS_ID: 0.1, 4: 0.4, 5: 0.25, 6: 0.15, 7: 0.1}
# The 0.999 quantile of the chi-square distribution with 4 degrees of freedom (five possible tokens).
CHI_SQUARE_4_DF_999 = 18.467


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sampled_tokens_follow_the_models_distribution_at_the_temperature(temperature):
    model, n = first_token_lm(FIRST_TOKENS), 3000
    hyps = search(model, distinct_sources(n), sampling(Sampling.topp, topp=1.0, temperature=temperature))
    counts = Counter(h[0].tokens[0] if h[0].tokens else EOS_ID for h in hyps)
    weights = {token: p ** (1 / temperature) for token, p in FIRST_TOKENS.items()}  # p^(1/T), renormalized
    expected = {token: n * w / sum(weights.values()) for token, w in weights.items()}  # each well over 5
    assert set(counts) <= set(expected)
    assert sum((counts[t] - e) ** 2 / e for t, e in expected.items()) < CHI_SQUARE_4_DF_999


def test_topk_never_draws_outside_the_k_most_probable_tokens():
    model, src = TinyLM(12, seed=1, eos_bias=-2.0), distinct_sources(300)
    settings = sampling(Sampling.topk, topk=3, temperature=2.0)
    drawn = list(sampled_steps(model, search(model, src, settings), src, settings))
    assert all(token in probs.topk(3).indices.tolist() for probs, token in drawn)
    assert any(token == probs.topk(3).indices[-1] for probs, token in drawn)  # the third is drawn too


def _nucleus(probs: torch.Tensor, p: float) -> list[int]:
    """The most probable tokens, taken one by one until their probabilities reach p."""
    kept, mass = [], 0.0
    for token in probs.argsort(descending=True).tolist():
        kept.append(token)
        mass += probs[token].item()
        if mass >= p:
            return kept
    return kept


def test_topp_never_draws_outside_the_nucleus():
    model, src = TinyLM(12, seed=2, eos_bias=-2.0), distinct_sources(300)
    settings = sampling(Sampling.topp, topp=0.6)
    drawn = list(sampled_steps(model, search(model, src, settings), src, settings))
    assert all(token in _nucleus(probs, 0.6) for probs, token in drawn)
    assert any(token == _nucleus(probs, 0.6)[-1] != probs.argmax() for probs, token in drawn)  # the one reaching p


def test_epsilon_never_draws_a_token_below_epsilon():
    model, src = TinyLM(12, seed=3, eos_bias=-2.0), distinct_sources(300)
    settings = sampling(Sampling.epsilon, epsilon=0.05)
    drawn = list(sampled_steps(model, search(model, src, settings), src, settings))
    assert all(probs[token] >= 0.05 for probs, token in drawn)
    assert any(probs[token] < 0.2 for probs, token in drawn)  # tokens well below the most probable are drawn


def test_epsilon_keeps_the_most_probable_token_when_every_token_is_below_epsilon():
    hyps = search(first_token_lm(FIRST_TOKENS), distinct_sources(100), sampling(Sampling.epsilon, epsilon=0.5))
    assert {tuple(h[0].tokens) for h in hyps} == {(4,)}


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    model, src = TinyLM(12, seed=4, eos_bias=-2.0), distinct_sources(100)
    first, again, other = (search(model, src, sampling(Sampling.topk, topk=6, seed=seed)) for seed in (7, 7, 8))
    assert [h[0].tokens for h in first] == [h[0].tokens for h in again]
    assert sum(a[0].tokens != b[0].tokens for a, b in zip(first, other)) > 50


@pytest.mark.parametrize("method", [Sampling.topk, Sampling.topp, Sampling.epsilon])
def test_a_sentence_is_sampled_the_same_whatever_its_batch(any_model, method):
    settings = sampling(method, topk=8, topp=0.95, epsilon=0.01, max_len_b=8)
    batched = search_corpus(any_model, SOURCES, settings, max_tokens=10_000, device=CPU)
    for source, hyps in zip(SOURCES, batched):
        alone = search_corpus(any_model, [source], settings, max_tokens=10_000, device=CPU)[0]
        assert hyps[0].tokens == alone[0].tokens
        assert hyps[0].log_prob == pytest.approx(alone[0].log_prob, abs=1e-4)


def test_a_sentence_given_twice_is_sampled_the_same_way_twice(any_model):
    settings = sampling(Sampling.topp, topp=1.0, temperature=1.5, max_len_b=8)
    hyps = search_corpus(any_model, [SOURCES[0], SOURCES[1], SOURCES[0]], settings, max_tokens=10_000, device=CPU)
    assert hyps[0][0].tokens == hyps[2][0].tokens


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_temperature_zero_and_near_zero_take_greedy_searchs_tokens(any_model, temperature):
    src = pad_sources([np.array(s) for s in SOURCES])
    settings = sampling(Sampling.topp, topp=1.0, temperature=temperature, max_len_b=8)
    greedy = greedy_search(any_model, src, SearchSettings(beam_size=1, max_len_a=0, max_len_b=8))
    sampled = search(any_model, src, settings)
    assert [h[0].tokens for h in sampled] == [h[0].tokens for h in greedy]
    assert [h[0].score for h in sampled] == pytest.approx([h[0].score for h in greedy], abs=1e-6)


def test_scores_are_the_models_own_log_probabilities_before_temperature_and_truncation():
    model = TinyLM(12, seed=5, eos_bias=-1.0)
    settings = sampling(Sampling.topk, topk=3, temperature=2.0, length_norm=LengthNorm.gnmt, length_penalty=1.0)
    for hyp in search(model, distinct_sources(50), settings):
        log_prob = model.sequence_log_prob(hyp[0].tokens + [EOS_ID])
        assert hyp[0].log_prob == pytest.approx(log_prob, abs=1e-5)
        assert hyp[0].score == pytest.approx(log_prob / length_normalizer(len(hyp[0].tokens) + 1, settings), abs=1e-5)


def test_samples_keep_the_length_caps_and_never_hold_special_tokens():
    model, src = TinyLM(12, seed=6, eos_bias=-3.0), distinct_sources(300)
    settings = sampling(Sampling.topp, topp=1.0, temperature=3.0, max_len_a=0.5, max_len_b=2)
    hyps = search(model, src, settings)
    caps = max_output_lengths(src, settings, model.max_positions).tolist()
    assert all(len(h[0].tokens) <= cap for h, cap in zip(hyps, caps))
    assert any(len(h[0].tokens) == cap for h, cap in zip(hyps, caps))
    assert not {t for h in hyps for t in h[0].tokens} & {*SPECIALS, EOS_ID}


@pytest.mark.parametrize("settings,key", [
    (dict(sampling=Sampling.topk), "decode.sampling"),  # the default beam of 5
    (dict(sampling=Sampling.topp, beam_size=2, nbest=2), "decode.sampling"),
    (dict(topk=0), "decode.topk"),
    (dict(topp=0.0), "decode.topp"),
    (dict(topp=1.5), "decode.topp"),
    (dict(epsilon=1.0), "decode.epsilon"),
    (dict(temperature=-0.5), "decode.temperature"),
    (dict(seed=-1), "decode.seed"),
])
def test_out_of_range_sampling_settings_name_their_key(settings, key):
    with pytest.raises(NmtError, match=key):
        SearchSettings(**settings)


def test_sampling_with_a_glossary_is_refused_naming_both_keys():
    with pytest.raises(NmtError, match="decode.sampling.*decode.glossary"):
        DecodeConfig(beam_size=1, sampling=Sampling.topk, glossary="terms.tsv")


SAMPLE_INPUT = "A dog sees the cat.\n\nThe big man likes twenty-one books.\nA bird.\n"


def _sample_cli(trained_run, tmp_path, *overrides):
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/best.pt", "decode.beam_size=1",
                     "decode.sampling=topk", "decode.temperature=1.5", *overrides, cwd=tmp_path,
                     stdin=SAMPLE_INPUT.encode())
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().split("\n")[:-1]


def test_translate_samples_one_line_per_input_line_reproducibly_by_seed(trained_run, tmp_path):
    first, again, other = (_sample_cli(trained_run, tmp_path, f"decode.seed={seed}") for seed in (3, 3, 4))
    assert len(first) == 4 and first[1] == "" and all(first[i] for i in (0, 2, 3))
    assert first == again
    assert first != other


def test_sampling_with_the_default_beam_is_a_one_line_config_error(trained_run, tmp_path):
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/best.pt", "decode.sampling=topk",
                     cwd=tmp_path, stdin=b"A dog.\n")
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and "decode.beam_size=1" in err, err


# A CTranslate2 export samples with CTranslate2's own top-k / nucleus sampler and generator.
SENTENCES = [source for source, _ in generate_pairs(40, 99)]


@PRE_NORM_ONLY
@pytest.mark.parametrize("method", [Sampling.topk, Sampling.topp])
def test_an_export_samples_reproducibly_and_scores_samples_as_the_checkpoint_does(trained_transformer, exported,
                                                                                   method):
    settings = sampling(method, topk=5, topp=0.9, temperature=1.5, seed=11, max_len_a=1.0, max_len_b=5,
                        length_norm=LengthNorm.gnmt)  # the samples are rescored, so even gnmt works
    export = CT2Translator.from_directory(exported, "cpu")
    first, again = (export.translate_hypotheses(SENTENCES, settings) for _ in range(2))
    assert [h[0].tokens for h in first] == [h[0].tokens for h in again]
    checkpoint = Translator.from_checkpoint(trained_transformer, "cpu")
    ids, _ = checkpoint.encode_lines(SENTENCES)
    rescored = checkpoint.score_ids(ids, [h[0].tokens for h in first], settings, 8000, Precision.fp32, None)
    assert [h[0].log_prob for h in first] == pytest.approx([h.log_prob for h in rescored], abs=1e-3)
    greedy = checkpoint.translate_hypotheses(SENTENCES, SearchSettings(beam_size=1))
    assert sum(a[0].tokens != b[0].tokens for a, b in zip(first, greedy)) > len(SENTENCES) / 4  # it samples


@PRE_NORM_ONLY
def test_an_export_at_temperature_zero_takes_its_greedy_tokens(exported):
    export = CT2Translator.from_directory(exported, "cpu")
    greedy = export.translate_hypotheses(SENTENCES, SearchSettings(beam_size=1, length_norm=LengthNorm.average))
    sampled = export.translate_hypotheses(SENTENCES, sampling(Sampling.topk, temperature=0.0, max_len_a=1.5,
                                                              max_len_b=10))
    assert [h[0].tokens for h in sampled] == [h[0].tokens for h in greedy]


@PRE_NORM_ONLY
def test_epsilon_sampling_with_an_export_is_refused_with_one_line(exported, tmp_path):
    result = run_cli("translate", f"checkpoint={exported}", "decode.beam_size=1", "decode.sampling=epsilon",
                     cwd=tmp_path, stdin=b"A dog.\n")
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and "decode.sampling=epsilon" in err, err
