"""The configs of the stages other than training: prepare, translate, score, evaluate, export and serve."""

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from nmt.choices import InvalidLines, Package, Quantization
from nmt.config.checks import require
from nmt.config.data import DataConfig
from nmt.config.decode import DecodeConfig


@dataclass
class PrepareConfig:
    data: DataConfig = field(default_factory=DataConfig)


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
class ScoreConfig:
    checkpoint: str = MISSING  # a checkpoint or an export directory
    src: str = MISSING  # source lines
    tgt: str = MISSING  # their given translations, one per source line
    output: Optional[str] = None  # None: stdout
    device: str = "auto"
    # decode.length_norm and decode.length_penalty make the score; decode.max_tokens, precision and quantize
    # run the batches as in translation. The search's own keys (beam, caps, sampling) play no part.
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    # A line that is not UTF-8, in either file: error (stop, naming it) or empty (its pair gets an empty line).
    invalid_lines: InvalidLines = InvalidLines.error
    token_scores: bool = False  # also write each subword's log-probability, the EOS last


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
    # The decoder layer whose cross-attention (heads averaged) the export returns as its attention,
    # which serve places HTML markup by; CTranslate2 fixes it in the model directory.
    alignment_layer: int = -1
    # argos: the export inside an Argos Translate package, output/translate-<src>_<tgt>-<package_version>.argosmodel,
    # which Argos Translate and LibreTranslate install (output is then the directory that holds it).
    package: Package = Package.none
    # LibreTranslate compares an installed package's version with its index's, so it must read as one.
    # Hydra reads package_version=1.10 as the number 1.1; quote such a version: package_version="'1.10'".
    package_version: str = "1.0"
    # The languages' names a package shows; None: the English name of the ISO 639-1 code, from a table.
    src_name: Optional[str] = None
    tgt_name: Optional[str] = None

    def __post_init__(self) -> None:
        require(re.fullmatch(r"[0-9]+(\.[0-9]+)*", self.package_version) is not None, "package_version",
                f"{self.package_version!r} is not a version; write numbers joined by dots, as 1.0 or 1.2.3")
        require(self.package is Package.argos or (self.src_name is None and self.tgt_name is None), "src_name/tgt_name",
                "only an Argos package shows language names; pass package=argos or leave them out")


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
    # With keys set, every translating endpoint and /suggest need one of them as api_key; empty: open.
    api_keys: list[str] = field(default_factory=list)
    # LibreTranslate's limits under its own names, -1 meaning none as there. max_chars and max_lines
    # above still bound every line and every request, whatever these say.
    char_limit: int = -1  # characters per text of q (a text may hold several lines)
    batch_limit: int = -1  # texts per request when q is a list
    alternatives_limit: int = -1
    # Requests per minute per API key, or per client address without keys, on each route that
    # translates, detects or takes a suggestion; a list q costs one per text; past it, 429 "Slowdown: ...".
    req_limit: int = -1
    # Access-Control-Allow-Origin: "*" (LibreTranslate's) lets any web page call the service.
    cors_origins: list[str] = field(default_factory=lambda: ["*"])
    # POST /suggest appends {q, s, source, target} to suggestions_dir/suggestions.jsonl; off: 403.
    suggestions: bool = False
    suggestions_dir: Optional[str] = None
    # POST /translate_file: .txt, .html and .srt up to max_file_bytes; the translation waits for
    # its one download at most file_lifetime_s (LibreTranslate keeps them 30 minutes).
    files_translation: bool = True
    max_file_bytes: int = 500_000
    file_lifetime_s: float = 1800.0
    # A /v1/translate request's own glossary: at most this many terms of at most this many characters.
    max_glossary_terms: int = 100
    max_term_chars: int = 200

    def __post_init__(self) -> None:
        require(0 <= self.port <= 65535, "port", "must be between 0 and 65535")
        require(self.max_wait_ms >= 0, "max_wait_ms", "must be >= 0")
        for key in ("max_queued_lines", "max_chars", "max_lines", "max_body_bytes", "max_file_bytes",
                    "max_glossary_terms", "max_term_chars"):
            require(getattr(self, key) >= 1, key, "must be at least 1")
        require(self.max_queued_lines >= self.max_lines, "max_queued_lines",
                f"must be at least max_lines={self.max_lines}")
        require(all(key.strip() for key in self.api_keys), "api_keys",
                "an empty key would let every request in; remove it")
        for key in ("char_limit", "batch_limit", "req_limit"):
            require(getattr(self, key) == -1 or getattr(self, key) >= 1, key, "must be -1 (no limit) or at least 1")
        require(self.alternatives_limit >= -1, "alternatives_limit", "must be -1 (no limit) or at least 0")
        require(self.file_lifetime_s > 0, "file_lifetime_s", "must be > 0")
        require(bool(self.cors_origins) and all(origin.strip() for origin in self.cors_origins), "cors_origins",
                'list the origins allowed to call the service, or ["*"] for any')
        require(not self.suggestions or self.suggestions_dir is not None, "suggestions_dir",
                "suggestions=true needs a directory to write suggestions.jsonl in")
        require(self.decode.constraints is None, "decode.constraints",
                "a per-line constraints file has no meaning for a service; give terms with decode.glossary=FILE "
                "or a request's glossary")
