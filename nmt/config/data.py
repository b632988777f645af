"""Where the corpus comes from and how it is cleaned, tokenized and batched for training."""

from dataclasses import dataclass, field
from typing import Optional

from nmt.choices import Source, SubwordModel


@dataclass
class DataConfig:
    # An Enum, so a misspelt kind fails when the config is composed, naming the allowed values.
    source: Source = Source.builtin
    # Short name used for the cache key and run names.
    name: str = "builtin"
    # hf, hf_columns: hub id (wmt/wmt14, bentrevett/multi30k) or local directory of the same layout.
    path: Optional[str] = None
    # hf, hf_columns: dataset config name, e.g. "de-en" for wmt/wmt14.
    hf_config: Optional[str] = None
    # hf, hf_columns: split names in the dataset for our train / valid / test.
    hf_splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "valid": "validation", "test": "test"}
    )
    # text: file prefixes; PREFIX.<src_lang> and PREFIX.<tgt_lang> are read.
    train: Optional[str] = None
    valid: Optional[str] = None
    test: Optional[str] = None
    src_lang: str = "en"
    tgt_lang: str = "de"
    # builtin: corpus sizes and the grammar's seed.
    builtin_sizes: dict[str, int] = field(
        default_factory=lambda: {"train": 12000, "valid": 300, "test": 300}
    )
    builtin_seed: int = 1234
    # Cleaning of the training split (valid and test are never filtered).
    max_len: int = 128  # subword tokens per side
    max_ratio: float = 3.0  # longer/shorter side in subword tokens; Moses-style, loose
    drop_identical: bool = True  # source equal to target: untranslated noise
    dedup: bool = False
    # Joint sentencepiece model.
    vocab_size: int = 8000
    spm_model_type: SubwordModel = SubwordModel.unigram
    spm_sample_sentences: int = 1_000_000  # sentences sampled from both sides for training
    spm_character_coverage: float = 1.0
    # Where prepared caches live, keyed by a hash of the inputs and settings.
    cache_dir: str = "data/cache"
    # Training batches hold at most this many tokens (source or target, whichever is longer, padded).
    max_tokens: int = 4096
    # Encoding workers; 0 means one per available core.
    workers: int = 0
