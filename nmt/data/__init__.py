"""Corpus sources, cleaning, the joint vocabulary, the on-disk cache and batching."""

from pathlib import Path

from nmt.config import DataConfig
from nmt.data.cache import VocabSettings, prepare_cache
from nmt.data.cleaning import CleaningRules
from nmt.data.sources import Corpus, CorpusSpec, open_corpus


def corpus_from_config(data: DataConfig) -> Corpus:
    return open_corpus(CorpusSpec(
        source=data.source, src_lang=data.src_lang, tgt_lang=data.tgt_lang, path=data.path,
        hf_config=data.hf_config, hf_splits=dict(data.hf_splits),
        prefixes={"train": data.train, "valid": data.valid, "test": data.test},
        builtin_sizes=dict(data.builtin_sizes), builtin_seed=data.builtin_seed))


def prepare_from_config(data: DataConfig, seed: int = 1) -> Path:
    """The prepared cache directory for this data config (built if missing)."""
    rules = CleaningRules(data.max_len, data.max_ratio, data.drop_identical, data.dedup)
    vocab = VocabSettings(data.vocab_size, data.spm_model_type, data.spm_sample_sentences,
                          data.spm_character_coverage)
    return prepare_cache(corpus_from_config(data), data.name, rules, vocab, Path(data.cache_dir),
                         seed=seed, workers=data.workers)
