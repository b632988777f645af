"""The one place the service touches the model: load it, decode a batch of lines, and turn
hypotheses into text, subword tokens, attention rows and aligned units. The rest of nmt/service
goes through here, so a change in the Translator's API is adapted in this file alone."""

import ctypes
import ctypes.util
from dataclasses import replace

from nmt.backends import LineTranslator, Translator, load_translator
from nmt.choices import DecodeQuantize
from nmt.config import DecodeConfig
from nmt.decoding.alignment import AlignedUnit, align
from nmt.decoding.search import Hypothesis


def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


class Engine:
    def __init__(self, translator: LineTranslator, decode: DecodeConfig, attention_layer: int = -1):
        """attention_layer: the Transformer decoder layer whose cross-attention is reported (the GRU has one)."""
        self.translator, self.decode_config, self.attention_layer = translator, decode, attention_layer
        # A CTranslate2 export has no constrained search; a PyTorch model does.
        self.has_constraints = isinstance(translator, Translator)

    @classmethod
    def load(cls, checkpoint: str, device: str, decode: DecodeConfig, attention_layer: int) -> "Engine":
        """A checkpoint or a CTranslate2 export (python -m nmt.export), whatever load_translator accepts."""
        return cls(load_translator(checkpoint, device, quantize=decode.quantize is DecodeQuantize.int8), decode,
                   attention_layer)

    def costs(self, lines: list[str]) -> list[int]:
        """What each line adds to a batch: its source tokens with EOS, once per beam, as search counts them."""
        ids, _ = self.translator.encode_lines(lines)
        return [(len(x) + 1) * self.decode_config.beam_size for x in ids]

    def decode(self, lines: list[str], nbest: int, need_attention: bool,
               constraints: list[list[str]] | None = None) -> list[list[Hypothesis]]:
        """The `nbest` best hypotheses per line; blocking, so the service runs it off the event loop.
        `constraints`: per line, the target terms its translation must contain (empty for none)."""
        d = self.decode_config
        settings = replace(d, nbest=nbest)
        layer = self.attention_layer if need_attention else None
        constrained = [i for i, terms in enumerate(constraints or []) if terms]
        if not constrained:
            found = self.translator.translate_hypotheses(lines, settings, d.max_tokens, d.precision, layer)
        else:
            # Lines with terms are searched apart from the rest: a batch with constraints runs beam
            # search for every line, and a beam of one is not greedy search, so a line's translation
            # would depend on whether a batch mate had terms.
            free = sorted(set(range(len(lines))) - set(constrained))
            found = [[] for _ in lines]
            for group, terms in ((free, None), (constrained, [constraints[i] for i in constrained])):
                hyps = self.translator.translate_hypotheses([lines[i] for i in group], settings, d.max_tokens,
                                                            d.precision, layer, constraints=terms)
                for i, h in zip(group, hyps):
                    found[i] = h
        # glibc keeps a batch's freed tensor buffers in its heaps, so a long-running service's memory
        # would ratchet up to its largest batch ever; hand them back to the OS after each batch.
        if _MALLOC_TRIM is not None:
            _MALLOC_TRIM(0)
        return found

    def aligned_units(self, line: str, hypothesis: Hypothesis) -> list[AlignedUnit]:
        """The hypothesis' text cut into units, each with the characters of `line` its attention
        aligns it with (nmt.decoding.alignment); the hypothesis must carry its attention."""
        vocab = self.translator.vocab
        ids, _ = self.translator.encode_lines([line])
        source = vocab.pieces(ids[0])
        return align(line, source, vocab.spans(line)[:len(source)], vocab.pieces(hypothesis.tokens),
                     lambda k: vocab.decode(hypothesis.tokens[:k]), hypothesis.attention)

    def text(self, hypothesis: Hypothesis) -> str:
        return self.translator.vocab.decode(hypothesis.tokens)

    def target_tokens(self, hypothesis: Hypothesis) -> list[str]:
        return self.translator.vocab.pieces_with_end(hypothesis.tokens)

    def source_tokens(self, line: str) -> list[str]:
        """The subwords the model read, cut where it cuts them; a blank line is not decoded at all."""
        if not line.strip():
            return []
        ids, _ = self.translator.encode_lines([line])
        return self.translator.vocab.pieces_with_end(ids[0])

    @staticmethod
    def attention(hypothesis: Hypothesis, source_count: int) -> list[list[float]] | None:
        """One row per target token (EOS included), one column per source token; padding cut off."""
        if hypothesis.attention is None:
            return None
        rows = hypothesis.attention[:len(hypothesis.tokens) + 1, :source_count].float()
        return [[round(w, 4) for w in row] for row in rows.tolist()]
