"""How a translation is searched for: the search's own settings, and the decode group of the
config, which is those settings plus how the batches run."""

from dataclasses import dataclass
from typing import Optional

from nmt.choices import DecodeQuantize, LengthNorm, Precision, Sampling
from nmt.config.checks import require


@dataclass
class SearchSettings:
    """What search (greedy, beam) and sampling need; checked here, so both the config and Python callers get
    the same one-line errors, named by their decode.* keys."""

    beam_size: int = 5
    # alpha of length_norm=gnmt, score / ((5 + len) / 6) ** alpha, and of power, score / len ** alpha; 0 disables it.
    length_penalty: float = 0.6
    length_norm: LengthNorm = LengthNorm.gnmt
    # Output length is capped at max_len_a * source_length + max_len_b tokens.
    max_len_a: float = 1.5
    max_len_b: int = 10
    nbest: int = 1
    # Sampling instead of search, for back-translation: one translation per sentence, each token drawn
    # from the model's distribution at `temperature`, cut to the `topk` most probable tokens, to the
    # nucleus of mass `topp`, or to the tokens of probability >= `epsilon`. A sentence's sample depends
    # on `seed` and its source alone, never on its batch.
    sampling: Sampling = Sampling.none
    topk: int = 10  # Edunov et al. (2018) back-translate with top-10 sampling
    topp: float = 0.9  # 1 keeps every token: plain sampling
    epsilon: float = 0.02  # Freitag et al. (2023) sample translations with epsilon 0.02; 0 keeps every token
    temperature: float = 1.0  # below 1 sharpens the distribution, above 1 flattens it; 0 is greedy
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.beam_size >= 1, "decode.beam_size", "must be at least 1")
        require(1 <= self.nbest <= self.beam_size, "decode.nbest",
                f"must be between 1 and decode.beam_size={self.beam_size}")
        require(self.length_penalty >= 0, "decode.length_penalty",
                "must be >= 0: a negative one rewards short outputs without bound")
        require(self.max_len_a >= 0 and self.max_len_b >= 1, "decode.max_len_a/max_len_b", "need a >= 0 and b >= 1")
        require(isinstance(self.length_norm, LengthNorm), "decode.length_norm",
                f"must be one of {[n.value for n in LengthNorm]}, as a LengthNorm")
        require(isinstance(self.sampling, Sampling), "decode.sampling",
                f"must be one of {[s.value for s in Sampling]}, as a Sampling")
        require(self.sampling is Sampling.none or (self.beam_size == 1 and self.nbest == 1), "decode.sampling",
                f"draws one translation per sentence, so it needs decode.beam_size=1 and decode.nbest=1 (not "
                f"{self.beam_size} and {self.nbest}); for more samples, run again with another decode.seed")
        require(self.topk >= 1, "decode.topk", "must be at least 1")
        require(0 < self.topp <= 1, "decode.topp", "must be in (0, 1]; 1 samples from the whole distribution")
        require(0 <= self.epsilon < 1, "decode.epsilon", "must be in [0, 1); 0 samples from the whole distribution")
        require(self.temperature >= 0, "decode.temperature", "must be >= 0; 0 takes the most probable token")
        require(self.seed >= 0, "decode.seed", "must be >= 0")


@dataclass
class DecodeConfig(SearchSettings):
    """The `decode` group: a SearchSettings, so search takes it as it is."""

    max_tokens: int = 8000  # source tokens per translation batch, every beam's copy counted
    precision: Precision = Precision.fp32  # bf16 on GPU or CPU, fp16 on GPU only (CPU: fp32)
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
        require(self.sampling is Sampling.none or (self.glossary is None and self.constraints is None),
                "decode.sampling", "cannot keep terminology: decode.glossary and decode.constraints need "
                "decode.sampling=none (constrained beam search)")
