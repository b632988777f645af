"""Typed configuration for every stage, registered with Hydra's ConfigStore.

The YAML files under `configs/` fill these dataclasses; a key that is not a field
here, or a value of the wrong type, fails when the config is composed.
"""

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Optional, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

# The choices are part of the config's types; they are importable from here as well.
from nmt.choices import (DecodeQuantize, InvalidLines, LengthNorm, OutputLayer, Precision,  # noqa: F401
                         Quantization, Schedule, Source, SubwordModel)
from nmt.errors import NmtError


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
    output_layer: OutputLayer = OutputLayer.linear
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
    precision: Precision = Precision.auto
    compile: bool = False
    log_every: int = 50
    valid_every: int = 500  # steps between validations; also saves checkpoints
    valid_bleu: bool = True  # decoded with the run's `decode` settings (greedy by default: fast, ranks well)
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
    schedule: Schedule = Schedule.inverse_sqrt
    warmup_steps: int = 4000


@dataclass
class DecodeConfig:
    beam_size: int = 5
    # GNMT length penalty alpha: score / ((5 + len) / 6) ** alpha; 0 disables it.
    length_penalty: float = 0.6
    length_norm: LengthNorm = LengthNorm.gnmt
    # Output length is capped at max_len_a * source_length + max_len_b tokens.
    max_len_a: float = 1.5
    max_len_b: int = 10
    nbest: int = 1
    max_tokens: int = 8000  # source tokens per translation batch
    precision: Precision = Precision.fp32  # bf16 / fp16 on GPU only; CPU decodes in fp32
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
    invalid_lines: InvalidLines = InvalidLines.error
    # Attention heatmaps for the first attention_count sentences go here when set.
    attention_dir: Optional[str] = None
    attention_count: int = 5
    attention_layer: int = -1  # Transformer: which decoder layer's cross-attention


@dataclass
class EvalSetConfig:
    # sacreBLEU's name of a standard test set (`sacrebleu --list`); it is downloaded once into ~/.sacrebleu.
    sacrebleu: Optional[str] = None
    langpair: str = "en-de"
    # The same files in a local copy: test_root=DIR reads DIR/<local>.<src lang> and DIR/<local>.<tgt lang>.
    local: Optional[str] = None


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
    # test=NAME (configs/test/: wmt14, wmt14_dev, multi30k_2016) fills this: references and sources
    # of a standard test set; ref= and src= given as well take precedence.
    test: EvalSetConfig = field(default_factory=EvalSetConfig)
    # Read test=NAME's files from this local directory instead of sacreBLEU's download.
    test_root: Optional[str] = None
    src: Optional[str] = None  # enables the breakdown by source length
    report_dir: str = "reports"
    bootstrap: int = 1000  # resamples for confidence intervals and the paired bootstrap test
    randomization: int = 10000  # trials of the approximate randomization test (sacreBLEU's default)
    worst: int = 10  # lowest-chrF sentences listed


@dataclass
class ServeConfig:
    checkpoint: str = MISSING
    device: str = "auto"
    # Loopback unless asked: a model server should not face a network by accident.
    host: str = "127.0.0.1"
    port: int = 5000  # LibreTranslate's port, so its clients' defaults work; 0 picks a free one
    # A checkpoint does not record its languages; /languages and the source/target checks use these.
    source_language: str = "en"
    target_language: str = "de"
    decode: DecodeConfig = field(default_factory=DecodeConfig)  # decode.max_tokens is the batch's token budget
    attention_layer: int = -1  # Transformer: which decoder layer's cross-attention /v1 reports
    # A batch waits this long for more requests once its first has come; more waiting trades latency for throughput.
    max_wait_ms: float = 5.0
    # Sentences accepted and not yet answered; past it requests get 429, so memory stays bounded.
    max_queued_lines: int = 1024
    max_chars: int = 1000  # per line
    max_lines: int = 64  # per request
    max_body_bytes: int = 1_000_000  # refused from the Content-Length header before the body is read
    # With keys set, /translate and /v1/translate need one of them as api_key; empty: open.
    api_keys: list[str] = field(default_factory=list)


def _require(condition: bool, key: str, what: str) -> None:
    if not condition:
        raise NmtError(f"{key}: {what}")


def check_model(m: ModelConfig) -> None:
    """Combinations the types allow but a model cannot be built with."""
    if isinstance(m, GRUConfig):
        _require(not m.tie_embeddings or m.output_layer is OutputLayer.deep, "model.tie_embeddings",
                 "needs model.output_layer=deep (the linear output layer's input is not embed_dim wide)")
    if isinstance(m, TransformerConfig):
        _require(m.d_model % m.heads == 0, "model.heads", f"must divide model.d_model={m.d_model}")


def check_train(c: "TrainConfig") -> None:
    check_model(c.model)
    t, o = c.trainer, c.optim
    _require(o.lr > 0, "optim.lr", "must be > 0")
    _require(t.log_every >= 1 and t.valid_every >= 1, "trainer.log_every/valid_every", "must be at least 1")
    _require(t.accumulate >= 1, "trainer.accumulate", "must be at least 1")
    _require(c.data.max_tokens > c.data.max_len, "data.max_tokens",
             f"must exceed data.max_len={c.data.max_len} so the longest kept pair fits in a batch")


C = TypeVar("C")


def plain_fields(config: Any) -> dict:
    """A model config as the plain values a constructor and a checkpoint take: no name, enums as strings."""
    return {f.name: _plain(getattr(config, f.name)) for f in fields(config) if f.name != "name"}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def from_plain_fields(config_type: type[C], values: dict) -> C:
    """The inverse of plain_fields: strings become the enum members the fields declare."""
    enums = {f.name: f.type for f in fields(config_type) if isinstance(f.type, type) and issubclass(f.type, Enum)}
    return config_type(**{k: enums[k](v) if k in enums else v for k, v in values.items()})


def check_serve(c: "ServeConfig") -> None:
    _require(0 <= c.port <= 65535, "port", "must be between 0 and 65535")
    _require(c.max_wait_ms >= 0, "max_wait_ms", "must be >= 0")
    for key in ("max_queued_lines", "max_chars", "max_lines", "max_body_bytes"):
        _require(getattr(c, key) >= 1, key, "must be at least 1")
    _require(c.max_queued_lines >= c.max_lines, "max_queued_lines", f"must be at least max_lines={c.max_lines}")
    _require(all(key.strip() for key in c.api_keys), "api_keys", "an empty key would let every request in; remove it")


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(group="model", name="gru_schema", node=GRUConfig)
    cs.store(group="model", name="transformer_schema", node=TransformerConfig)
