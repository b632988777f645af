"""How a translation is searched for: the search's own settings, and the decode group of the
config, which is those settings plus how the batches run."""

from dataclasses import dataclass
from typing import Optional

from nmt.choices import DecodeQuantize, LengthNorm, Precision
from nmt.config.checks import require


@dataclass
class SearchSettings:
    """What greedy and beam search need; checked here, so both the config and Python callers get
    the same one-line errors, named by their decode.* keys."""

    beam_size: int = 5
    # GNMT length penalty alpha: score / ((5 + len) / 6) ** alpha; 0 disables it.
    length_penalty: float = 0.6
    length_norm: LengthNorm = LengthNorm.gnmt
    # Output length is capped at max_len_a * source_length + max_len_b tokens.
    max_len_a: float = 1.5
    max_len_b: int = 10
    nbest: int = 1

    def __post_init__(self) -> None:
        require(self.beam_size >= 1, "decode.beam_size", "must be at least 1")
        require(1 <= self.nbest <= self.beam_size, "decode.nbest",
                f"must be between 1 and decode.beam_size={self.beam_size}")
        require(self.length_penalty >= 0, "decode.length_penalty",
                "must be >= 0: a negative one rewards short outputs without bound")
        require(self.max_len_a >= 0 and self.max_len_b >= 1, "decode.max_len_a/max_len_b", "need a >= 0 and b >= 1")
        require(isinstance(self.length_norm, LengthNorm), "decode.length_norm",
                f"must be one of {[n.value for n in LengthNorm]}, as a LengthNorm")


@dataclass
class DecodeConfig(SearchSettings):
    """The `decode` group: a SearchSettings, so search takes it as it is."""

    max_tokens: int = 8000  # source tokens per translation batch, every beam's copy counted
    precision: Precision = Precision.fp32  # bf16 / fp16 on GPU only; CPU decodes in fp32
    quantize: DecodeQuantize = DecodeQuantize.none  # int8: faster on CPU, slightly different numbers
    # Terminology: a UTF-8 TSV of `source term<TAB>target term`; each term found in a source line (whole
    # words, longest first) makes its target term a constraint the translation always contains.
    glossary: Optional[str] = None
    glossary_ignore_case: bool = False
    # One line per input line of tab-separated target phrases each translation must contain (fairseq's format).
    constraints: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.max_tokens >= 1, "decode.max_tokens", "must be at least 1")
