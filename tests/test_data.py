"""Preparation: cleaning removes exactly what it says, the cache is reused or rebuilt as it should."""

import json
import os

import numpy as np
import pytest

from nmt.choices import Source, SubwordModel
from nmt.data.builtin import generate_pairs, number_words
from nmt.data.cache import EncodedSplit, VocabSettings, prepare_cache
from nmt.data.cleaning import EMPTY, IDENTICAL, KEEP, RATIO, TOO_LONG, CleaningRules, removal_reason
from nmt.data.sources import CorpusSpec, open_corpus
from nmt.data.vocab import Vocab
from nmt.errors import NmtError

RULES = CleaningRules(max_len=30, max_ratio=2.0, drop_identical=True, dedup=True)
VOCAB = VocabSettings(vocab_size=60, model_type=SubwordModel.unigram, sample_sentences=10_000, character_coverage=1.0)


def test_german_numbers_put_units_before_tens():
    assert number_words(21) == ("twenty-one", "einundzwanzig")
    assert number_words(97) == ("ninety-seven", "siebenundneunzig")
    assert number_words(30) == ("thirty", "dreißig")
    assert number_words(16) == ("sixteen", "sechzehn")


def test_builtin_corpus_is_deterministic_and_agrees_in_case():
    assert list(generate_pairs(50, 7)) == list(generate_pairs(50, 7))
    assert list(generate_pairs(50, 7)) != list(generate_pairs(50, 8))
    pairs = list(generate_pairs(3000, 1))
    subordinate = [de for en, de in pairs if en.startswith("I know that")]
    assert subordinate and all(de.startswith("Ich weiß, dass") for de in subordinate)
    # Verb-final: the German clause ends with a verb form, never with a noun.
    verbs = {"sieht", "sehen", "mag", "mögen", "findet", "finden", "kauft", "kaufen", "hört", "hören",
             "zeichnet", "zeichnen"}
    assert all(de.rstrip(".").split()[-1] in verbs for de in subordinate)
    assert any(" mit dem " in de or " mit den " in de for _, de in pairs)  # dative after "mit"


@pytest.mark.parametrize("src,tgt,src_len,tgt_len,reason", [
    ("a b", "c d", 2, 2, KEEP),
    ("", "c d", 0, 2, EMPTY),
    ("a b", "   ", 2, 1, EMPTY),
    ("same text", "same text", 2, 2, IDENTICAL),
    ("long", "x", 31, 16, TOO_LONG),
    ("a", "b", 3, 7, RATIO),
    ("a", "b", 3, 6, KEEP),
])
def test_each_filter_removes_exactly_what_it_says(src, tgt, src_len, tgt_len, reason):
    assert removal_reason(src, tgt, src_len, tgt_len, RULES) == reason


PAIRS = [(f"The cat sees {i} birds.", f"Die Katze sieht {i} Vögel.") for i in range(200)]


def _write_corpus(directory, pairs, name="train"):
    (directory / f"{name}.en").write_text("".join(e + "\n" for e, _ in pairs), encoding="utf-8")
    (directory / f"{name}.de").write_text("".join(d + "\n" for _, d in pairs), encoding="utf-8")


def _corpus(directory):
    return open_corpus(CorpusSpec(Source.text, "en", "de", prefixes={"train": str(directory / "train"),
                                                           "valid": str(directory / "valid")}))


@pytest.fixture
def text_corpus(tmp_path):
    pairs = PAIRS
    noisy = [("", "leer"), ("Hello there", "Hello there"), ("one", " ".join(["sehr"] * 80)), pairs[0]]
    _write_corpus(tmp_path, pairs + noisy)
    _write_corpus(tmp_path, list(generate_pairs(20, 4)), "valid")
    return tmp_path


def test_stats_count_every_removed_pair_and_the_kept_ones_are_encoded(text_corpus, tmp_path):
    cache = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    stats = json.loads((cache / "stats.json").read_text())["train"]
    removed = stats["removed"]
    assert removed["empty_side"] == 1
    assert removed["source_equals_target"] == 1
    assert removed["duplicate"] == 1
    assert removed["over_max_len"] + removed["length_ratio"] >= 1
    assert stats["kept"] == stats["input"] - sum(removed.values())
    train = EncodedSplit(cache, "train")
    assert len(train) == stats["kept"]
    vocab = Vocab.from_file(str(cache / "spm.model"))
    first_en, first_de = PAIRS[0]
    src, tgt = train.pair(0)
    assert vocab.decode(src.tolist()) == first_en and vocab.decode(tgt.tolist()) == first_de
    assert all(max(train.src_lengths[i], train.tgt_lengths[i]) <= RULES.max_len for i in range(len(train)))


def test_parallel_encoding_keeps_every_pair_in_order(text_corpus, tmp_path):
    cache = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=2)
    vocab = Vocab.from_file(str(cache / "spm.model"))
    train = EncodedSplit(cache, "train")
    assert len(train) == len(PAIRS)  # the noisy pairs are gone, the duplicate of PAIRS[0] too
    for i, (en, de) in enumerate(PAIRS):
        src, tgt = train.pair(i)
        assert (vocab.decode(src.tolist()), vocab.decode(tgt.tolist())) == (en, de)


def test_cache_is_reused_when_nothing_changed(text_corpus, tmp_path):
    first = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    stamp = (first / "meta.json").stat().st_mtime_ns
    again = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    assert again == first and (again / "meta.json").stat().st_mtime_ns == stamp


def test_cache_is_rebuilt_when_the_data_changes(text_corpus, tmp_path):
    first = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    with open(text_corpus / "train.en", "a") as f:
        f.write("A new line.\n")
    with open(text_corpus / "train.de", "a") as f:
        f.write("Eine neue Zeile.\n")
    second = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    assert second != first
    assert len(EncodedSplit(second, "train")) == len(EncodedSplit(first, "train")) + 1


@pytest.mark.parametrize("change", [
    {"vocab": VocabSettings(70, SubwordModel.unigram, 10_000, 1.0)},
    {"vocab": VocabSettings(60, SubwordModel.bpe, 10_000, 1.0)},
    {"rules": CleaningRules(30, 3.0, True, True)},
])
def test_cache_is_rebuilt_when_settings_change(text_corpus, tmp_path, change):
    first = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    second = prepare_cache(_corpus(text_corpus), "t", change.get("rules", RULES), change.get("vocab", VOCAB),
                           tmp_path / "cache", workers=1)
    assert second != first and (second / "meta.json").is_file()


def test_misaligned_text_files_are_a_clear_error(tmp_path):
    _write_corpus(tmp_path, [("a", "b"), ("c", "d")])
    with open(tmp_path / "train.en", "a") as f:
        f.write("extra\n")
    corpus = open_corpus(CorpusSpec(Source.text, "en", "de", prefixes={"train": str(tmp_path / "train")}))
    with pytest.raises(NmtError, match="differ in length"):
        list(corpus.pairs("train"))


def test_encoded_arrays_are_memory_mapped(text_corpus, tmp_path):
    cache = prepare_cache(_corpus(text_corpus), "t", RULES, VOCAB, tmp_path / "cache", workers=1)
    split = EncodedSplit(cache, "train")
    assert isinstance(split._src, np.memmap) and isinstance(split._tgt, np.memmap)
    assert os.path.getsize(cache / "train.src.bin") == split.src_lengths.sum() * 2  # uint16 ids
