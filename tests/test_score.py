"""Scoring given translations (python -m nmt.score): a target gets the log-probability and score search
would have reported for it, whatever its batch and whichever backend scores it."""

import logging

import pytest
import torch
from conftest import PRE_NORM_ONLY, TinyLM, run_cli

from nmt.backends import Translator
from nmt.backends.ct2 import CT2Translator
from nmt.choices import LengthNorm
from nmt.config import SearchSettings
from nmt.data.builtin import generate_pairs
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.decoding.scoring import score_corpus
from nmt.decoding.search import length_normalizer, search_corpus
from nmt.models.transformer import TransformerModel

SOURCES = [[5, 6, 7, 8], [9, 10], [11], [12, 13, 14, 15, 16, 17]]
CPU = torch.device("cpu")
NORMS = [(LengthNorm.gnmt, 0.6), (LengthNorm.average, 0.0), (LengthNorm.power, 0.2), (LengthNorm.none, 0.0)]


@pytest.mark.parametrize("norm,alpha", NORMS)
@pytest.mark.parametrize("beam_size,nbest", [(1, 1), (3, 3)])
def test_scoring_the_searchs_own_outputs_gives_the_scores_it_reported(any_model, norm, alpha, beam_size, nbest):
    settings = SearchSettings(beam_size=beam_size, nbest=nbest, length_norm=norm, length_penalty=alpha, max_len_b=8)
    found = search_corpus(any_model, SOURCES, settings, max_tokens=10_000, device=CPU)
    pairs = [(source, h) for source, hyps in zip(SOURCES, found) for h in hyps]
    scored = score_corpus(any_model, [s for s, _ in pairs], [h.tokens for _, h in pairs], settings, 10_000, CPU)
    assert [s.tokens for s in scored] == [h.tokens for _, h in pairs]
    assert [s.log_prob for s in scored] == pytest.approx([h.log_prob for _, h in pairs], abs=1e-4)
    assert [s.score for s in scored] == pytest.approx([h.score for _, h in pairs], abs=1e-4)


def test_a_targets_log_probability_sums_its_tokens_and_the_eos_after_them():
    model = TinyLM(9, seed=0)
    targets = [[4, 5, 6], [], [8, 8, 7, 4, 5]]
    settings = SearchSettings(length_norm=LengthNorm.gnmt, length_penalty=1.0)
    for target, scored in zip(targets, score_corpus(model, [[4]] * 3, targets, settings, 10_000, CPU)):
        prev, expected = BOS_ID, []
        for step, token in enumerate(target + [EOS_ID]):
            expected.append(model.table[step, prev, token].item())
            prev = token
        assert scored.token_log_probs == pytest.approx(expected, abs=1e-6)
        assert scored.log_prob == pytest.approx(sum(expected), abs=1e-5)
        assert scored.score == pytest.approx(sum(expected) / length_normalizer(len(target) + 1, settings), abs=1e-5)


def test_scoring_a_batch_equals_one_pair_at_a_time(any_model):
    targets = [[4, 5], [6, 7, 8, 9, 10, 11], [], [12, 13, 14]]
    settings = SearchSettings()
    batched = score_corpus(any_model, SOURCES, targets, settings, max_tokens=10_000, device=CPU)
    alone = score_corpus(any_model, SOURCES, targets, settings, max_tokens=1, device=CPU)  # one pair per batch
    assert [s.token_log_probs for s in batched] == [pytest.approx(s.token_log_probs, abs=1e-5) for s in alone]


@pytest.fixture(scope="module")
def translator(tiny_gru_checkpoint) -> Translator:
    return Translator.from_checkpoint(tiny_gru_checkpoint, "cpu")


def test_a_blank_source_is_not_scored_and_a_blank_target_scores_the_eos_alone(translator):
    found = translator.score_lines(["the cat sees a dog", "  ", "a bird"], ["", "ein Vogel", "ein Vogel"],
                                   SearchSettings())
    empty, blank_source, scored = found
    assert blank_source is None
    assert empty.tokens == [] and len(empty.token_log_probs) == 1 and empty.log_prob < 0
    assert scored.tokens == translator.vocab.encode(["ein Vogel"])[0]


def test_text_never_encodes_to_pad_bos_or_eos(translator):
    ids = translator.vocab.encode(["<pad> <s> </s> <unk>", "</s>"])
    assert not {PAD_ID, BOS_ID, EOS_ID} & {t for line in ids for t in line}


def test_characters_outside_the_vocabulary_are_scored_as_unk_with_a_warning(translator, caplog):
    with caplog.at_level(logging.WARNING):
        scored = translator.score_lines(["a cat", "a cat"], ["eine Katze ☃", "eine Katze"], SearchSettings())
    assert UNK_ID in scored[0].tokens
    assert -1e4 < scored[0].log_prob < scored[1].log_prob
    assert "outside the vocabulary" in caplog.text and ": 1" in caplog.text


def test_targets_longer_than_the_model_takes_are_cut_with_a_warning(translator, caplog):
    vocab = translator.vocab
    torch.manual_seed(0)
    short = TransformerModel(len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=32,
                             max_positions=8).eval()
    with caplog.at_level(logging.WARNING):
        scored = Translator(short, vocab, CPU).score_lines(["a cat"], ["eine Katze " * 10], SearchSettings())
    assert len(scored[0].tokens) == 7 and len(scored[0].token_log_probs) == 8  # 7 tokens, then the EOS
    assert "1 target line(s) longer than 7 tokens were truncated: 1" in caplog.text


SCORE_SOURCES = "A dog sees the cat.\n\nThe big man likes twenty-one books.\nA bird.\n"
SCORE_TARGETS = "Ein Hund sieht die Katze.\nEin Hund.\n\nEin Vogel.\n"


def test_the_command_writes_one_tab_separated_line_per_pair_to_stdout_or_a_file(trained_run, tmp_path):
    (tmp_path / "src.en").write_text(SCORE_SOURCES, encoding="utf-8")
    (tmp_path / "tgt.de").write_text(SCORE_TARGETS, encoding="utf-8")
    args = (f"checkpoint={trained_run}/checkpoints/best.pt", "src=src.en", "tgt=tgt.de", "token_scores=true")
    printed = run_cli("score", *args, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr.decode()
    lines = printed.stdout.decode().split("\n")[:-1]
    assert len(lines) == 4 and lines[1] == ""  # a blank source: not scored
    for line in (lines[0], lines[2], lines[3]):
        log_prob, score, tokens = line.split("\t")
        token_log_probs = [float(x) for x in tokens.split(" ")]
        assert float(log_prob) == pytest.approx(sum(token_log_probs), abs=1e-4 * len(token_log_probs))
        assert float(log_prob) < 0 and float(score) < 0
    assert len(lines[2].split("\t")[2].split(" ")) == 1  # a blank target: the EOS alone
    written = run_cli("score", *args, "output=scores.tsv", cwd=tmp_path)
    assert written.returncode == 0, written.stderr.decode()
    assert written.stdout == b"" and (tmp_path / "scores.tsv").read_text(encoding="utf-8").split("\n")[:-1] == lines


def _one_line_error(result) -> str:
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    return err


def test_files_with_different_line_counts_are_one_line_naming_both(trained_run, tmp_path):
    (tmp_path / "src.en").write_text("A dog.\nA cat.\n")
    (tmp_path / "tgt.de").write_text("Ein Hund.\n")
    result = run_cli("score", f"checkpoint={trained_run}/checkpoints/best.pt", "src=src.en", "tgt=tgt.de",
                     cwd=tmp_path)
    err = _one_line_error(result)
    assert "src=src.en has 2 lines" in err and "tgt=tgt.de has 1" in err


def test_a_line_that_is_not_utf8_stops_the_command_or_gets_an_empty_line(trained_run, tmp_path):
    (tmp_path / "src.en").write_text("A dog.\nA cat.\nA bird.\n")
    (tmp_path / "tgt.de").write_bytes(b"Ein Hund.\nEine \xff Katze.\nEin Vogel.\n")
    args = (f"checkpoint={trained_run}/checkpoints/best.pt", "src=src.en", "tgt=tgt.de")
    err = _one_line_error(run_cli("score", *args, cwd=tmp_path))
    assert "tgt.de" in err and "line(s) 2" in err and "invalid_lines=empty" in err
    kept = run_cli("score", *args, "invalid_lines=empty", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr.decode()
    lines = kept.stdout.decode().split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]


# A CTranslate2 export scores through its score_batch. Both engines compute in float32 from the same
# weights and differ only in the order their kernels add (about 1e-6 per sentence on this model); 1e-3 per
# sentence is far above that and far below the gap between two different translations.
SENTENCES, REFERENCES = map(list, zip(*generate_pairs(50, 99)))


@PRE_NORM_ONLY
@pytest.mark.parametrize("norm,alpha", NORMS)
def test_an_export_scores_as_its_checkpoint_does(trained_transformer, exported, norm, alpha):
    settings = SearchSettings(length_norm=norm, length_penalty=alpha)
    ours = Translator.from_checkpoint(trained_transformer, "cpu").score_lines(SENTENCES, REFERENCES, settings)
    theirs = CT2Translator.from_directory(exported, "cpu").score_lines(SENTENCES, REFERENCES, settings)
    assert [h.tokens for h in theirs] == [h.tokens for h in ours]
    assert [h.log_prob for h in theirs] == pytest.approx([h.log_prob for h in ours], abs=1e-3)
    assert [h.score for h in theirs] == pytest.approx([h.score for h in ours], abs=1e-3)
    assert max(abs(a - b) for x, y in zip(theirs, ours) for a, b in zip(x.token_log_probs, y.token_log_probs)) < 1e-4


@PRE_NORM_ONLY
def test_the_command_scores_with_an_export_as_with_a_checkpoint(trained_transformer, exported, tmp_path):
    (tmp_path / "src.en").write_text("\n".join(SENTENCES[:5]) + "\n", encoding="utf-8")
    (tmp_path / "tgt.de").write_text("\n".join(REFERENCES[:5]) + "\n", encoding="utf-8")
    outputs = []
    for checkpoint in (trained_transformer, exported):
        result = run_cli("score", f"checkpoint={checkpoint}", "src=src.en", "tgt=tgt.de", cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode()
        outputs.append([[float(x) for x in line.split("\t")] for line in result.stdout.decode().splitlines()])
    assert len(outputs[0]) == 5
    assert outputs[1] == [pytest.approx(row, abs=2e-3) for row in outputs[0]]
