"""Typed configuration for every stage, registered with Hydra's ConfigStore.

The YAML files under `configs/` fill these dataclasses; a key that is not a field
here, or a value of the wrong type, fails when the config is composed.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from nmt.errors import NmtError


@dataclass
class DataConfig:
    # builtin: the generated grammar corpus; text: line-aligned files; hf: a `datasets` dataset.
    source: str = "builtin"
    # Short name used for the cache key and run names.
    name: str = "builtin"
    # hf: hub id or local directory of the same layout.
    path: Optional[str] = None
    # hf: dataset config name, e.g. "de-en" for wmt/wmt14.
    hf_config: Optional[str] = None
    # hf: split names in the dataset for our train / valid / test.
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
    spm_model_type: str = "unigram"
    spm_sample_sentences: int = 1_000_000  # sentences sampled from both sides for training
    spm_character_coverage: float = 1.0
    # Where prepared caches live, keyed by a hash of the inputs and settings.
    cache_dir: str = "data/cache"
    # Training batches hold at most this many tokens (source or target, whichever is longer, padded).
    max_tokens: int = 4096
    # Encoding workers; 0 means one per available core.
    workers: int = 0


@dataclass
class ModelConfig:
    # The model's name: the config file it came from, used for run names.
    name: str = MISSING


@dataclass
class GRUConfig(ModelConfig):
    embed_dim: int = 256
    hidden_dim: int = 256
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.2
    # linear: y_t = softmax(W_o [c_t; s_t] + b_o), as Bahdanau et al.;
    # deep: a tanh layer over [c_t; s_t; E y_{t-1}] down to embed_dim first, which also
    # makes tying the output to the target embeddings possible.
    output_layer: str = "linear"
    tie_embeddings: bool = False


@dataclass
class TransformerConfig(ModelConfig):
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    # Pre-norm trains stably without a long warmup; post-norm is the paper's layout.
    pre_norm: bool = True
    max_positions: int = 1024


@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 1
    max_steps: int = 0  # 0: no step limit
    max_epochs: int = 0  # 0: no epoch limit
    max_minutes: float = 0.0  # wall-clock budget; 0: none
    accumulate: int = 1  # micro-batches per optimizer step
    clip_norm: float = 1.0  # 0 disables clipping
    label_smoothing: float = 0.1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False
    log_every: int = 50
    valid_every: int = 500  # steps between validations; also saves checkpoints
    valid_bleu: bool = True
    valid_beam_size: int = 1  # greedy is enough to rank checkpoints and is fast
    keep_last: int = 5  # periodic checkpoints kept
    patience: int = 0  # validations without BLEU improvement before stopping; 0: never
    threads: int = 0  # CPU threads for torch; 0: torch's default
    # Stop after this many consecutive non-finite losses instead of training on garbage.
    max_bad_steps: int = 20


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0
    # inverse_sqrt: linear warmup then lr * sqrt(warmup / step); constant: warmup then flat.
    schedule: str = "inverse_sqrt"
    warmup_steps: int = 4000


class Quantization(Enum):
    """How an export stores its weights: CTranslate2's own types, chosen when exporting."""
    none = "none"  # float32, exactly the checkpoint's numbers
    int8 = "int8"
    int16 = "int16"
    float16 = "float16"


class DecodeQuantize(Enum):
    """int8: dynamic int8 matrix products at translation time (PyTorch's for a checkpoint,
    CTranslate2's for an export); none: the weights' own type."""
    none = "none"
    int8 = "int8"


@dataclass
class DecodeConfig:
    beam_size: int = 5
    # GNMT length penalty alpha: score / ((5 + len) / 6) ** alpha; 0 disables it.
    length_penalty: float = 0.6
    # gnmt: the penalty above; average: score / len; none: raw log-probability.
    length_norm: str = "gnmt"
    # Output length is capped at max_len_a * source_length + max_len_b tokens.
    max_len_a: float = 1.5
    max_len_b: int = 10
    nbest: int = 1
    max_tokens: int = 8000  # source tokens per translation batch
    precision: str = "fp32"  # fp32 | bf16 | fp16 (GPU only)
    quantize: DecodeQuantize = DecodeQuantize.none  # int8: faster on CPU, slightly different numbers


@dataclass
class PrepareConfig:
    data: DataConfig = field(default_factory=DataConfig)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    name: str = MISSING
    run_dir: str = MISSING


@dataclass
class TranslateConfig:
    checkpoint: str = MISSING
    input: Optional[str] = None  # None: stdin
    output: Optional[str] = None  # None: stdout
    device: str = "auto"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    # A line that is not UTF-8: error (stop, naming it) or empty (translate it as an empty line).
    invalid_lines: str = "error"
    # Attention heatmaps for the first attention_count sentences go here when set.
    attention_dir: Optional[str] = None
    attention_count: int = 5
    attention_layer: int = -1  # Transformer: which decoder layer's cross-attention


@dataclass
class ExportConfig:
    checkpoint: str = MISSING  # a Transformer checkpoint (GRU models have no CTranslate2 counterpart)
    output: str = MISSING  # the CTranslate2 model directory to write
    quantization: Quantization = Quantization.none
    overwrite: bool = False  # replace an existing non-empty output (only once the new one is complete)
    # Recorded in the metadata; None: read from the run's config.yaml beside checkpoints/.
    src_lang: Optional[str] = None
    tgt_lang: Optional[str] = None


@dataclass
class EvaluateConfig:
    # A path, or a list of paths ([a,b]): several systems, the first is the baseline.
    hyp: Any = MISSING
    # A path, or a list of paths: several references per segment.
    ref: Any = None
    # Where the test sets named in configs/test/ (test=wmt14, test=multi30k_2016) are read from.
    test_root: str = "../shared/data"
    src: Optional[str] = None  # enables the breakdown by source length
    report_dir: str = "reports"
    bootstrap: int = 1000  # resamples for confidence intervals and the paired bootstrap test
    randomization: int = 10000  # trials of the approximate randomization test (sacreBLEU's default)
    worst: int = 10  # lowest-chrF sentences listed


def _require(condition: bool, key: str, what: str) -> None:
    if not condition:
        raise NmtError(f"{key}: {what}")


def check_decode(d: DecodeConfig) -> None:
    """Values the types allow but search cannot use; checked before any work starts."""
    _require(d.beam_size >= 1, "decode.beam_size", "must be at least 1")
    _require(1 <= d.nbest <= d.beam_size, "decode.nbest", f"must be between 1 and decode.beam_size={d.beam_size}")
    _require(d.length_penalty >= 0, "decode.length_penalty", "must be >= 0")
    _require(d.length_norm in ("gnmt", "average", "none"), "decode.length_norm", "use gnmt, average or none")
    _require(d.max_len_a >= 0 and d.max_len_b >= 1, "decode.max_len_a/max_len_b", "need a >= 0 and b >= 1")
    _require(d.precision in ("fp32", "bf16", "fp16"), "decode.precision", "use fp32, bf16 or fp16")


def check_train(c: "TrainConfig") -> None:
    t, o = c.trainer, c.optim
    _require(o.schedule in ("inverse_sqrt", "constant"), "optim.schedule", "use inverse_sqrt or constant")
    _require(o.lr > 0, "optim.lr", "must be > 0")
    _require(t.log_every >= 1 and t.valid_every >= 1, "trainer.log_every/valid_every", "must be at least 1")
    _require(t.accumulate >= 1, "trainer.accumulate", "must be at least 1")
    _require(c.data.max_tokens > c.data.max_len, "data.max_tokens",
             f"must exceed data.max_len={c.data.max_len} so the longest kept pair fits in a batch")
    _require(t.valid_beam_size >= 1, "trainer.valid_beam_size", "must be at least 1")


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(group="model", name="gru_schema", node=GRUConfig)
    cs.store(group="model", name="transformer_schema", node=TransformerConfig)
