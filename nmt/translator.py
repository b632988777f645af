"""The Python API for translation: `load_translator(path).translate(lines)`, where `path` is a
checkpoint (searched here with PyTorch) or a CTranslate2 export (`nmt.ct2_translator`)."""

import logging
from pathlib import Path
from typing import Callable

import torch

from nmt.checkpoint import load_checkpoint, vocab_bytes
from nmt.config import Precision
from nmt.data.vocab import Vocab
from nmt.errors import NmtError
from nmt.models import build_model, config_from
from nmt.models.interface import EncoderDecoder
from nmt.precision import autocast, quantize_dynamic_int8, resolve_device, resolve_precision
from nmt.search import Hypothesis, SearchSettings, search_corpus

log = logging.getLogger(__name__)


class LineTranslator:
    """What both backends share: lines in, n-best hypotheses out, with the same truncation and
    blank-line rules. A backend sets vocab, device and max_positions and implements search_ids."""

    vocab: Vocab
    device: torch.device
    max_positions: int
    default_settings = SearchSettings()  # what translate() uses when given none

    def search_ids(self, sources: list[list[int]], settings: SearchSettings, max_tokens: int, precision: Precision,
                   attention_layer: int | None, on_batch: Callable[[int], None] | None) -> list[list[Hypothesis]]:
        raise NotImplementedError

    def encode_lines(self, lines: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids per line, cut to the model's maximum; also the (1-based) lines that were cut."""
        limit = self.max_positions - 1  # one position is the EOS
        ids = self.vocab.encode(lines)
        truncated = [n for n, x in enumerate(ids, start=1) if len(x) > limit]
        return [x[:limit] for x in ids], truncated

    def translate_hypotheses(self, lines: list[str], settings: SearchSettings, max_tokens: int = 8000,
                             precision: Precision = Precision.fp32, attention_layer: int | None = None,
                             on_batch: Callable[[int], None] | None = None) -> list[list[Hypothesis]]:
        """n-best hypotheses per line, in input order; a blank line gets an empty hypothesis.
        With `attention_layer` (a Transformer decoder layer; any number for the GRU) each
        hypothesis carries its attention over the source."""
        ids, truncated = self.encode_lines(lines)
        if truncated:
            shown = ", ".join(map(str, truncated[:20])) + (" ..." if len(truncated) > 20 else "")
            log.warning("%d line(s) longer than %d tokens were truncated: %s", len(truncated),
                        self.max_positions - 1, shown)
        todo = [i for i, line in enumerate(lines) if line.strip()]
        results: list[list[Hypothesis]] = [[Hypothesis([], 0.0, 0.0)] for _ in lines]
        found = self.search_ids([ids[i] for i in todo], settings, max_tokens, precision, attention_layer, on_batch)
        for i, hyps in zip(todo, found):
            results[i] = hyps
        return results

    def translate(self, lines: list[str], settings: SearchSettings | None = None, max_tokens: int = 8000) -> list[str]:
        """One translation per input string, in order (default_settings unless given)."""
        hyps = self.translate_hypotheses(lines, settings or self.default_settings, max_tokens)
        return [self.vocab.decode(h[0].tokens) for h in hyps]


class Translator(LineTranslator):
    """A checkpoint's model searched by `nmt.search` in PyTorch."""

    def __init__(self, model: EncoderDecoder, vocab: Vocab, device: torch.device):
        self.model, self.vocab, self.device = model.eval(), vocab, device

    @property
    def max_positions(self) -> int:
        return self.model.max_positions

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", quantize: bool = False) -> "Translator":
        """quantize: PyTorch's dynamic int8 for the linear and recurrent layers (CPU only)."""
        payload = load_checkpoint(path)
        vocab = Vocab(vocab_bytes(payload))
        resolved = resolve_device(device)
        model = build_model(config_from(payload["model_kind"], payload["model_config"]), len(vocab))
        model.load_state_dict(payload["model"])
        if quantize:
            if resolved.type != "cpu":
                raise NmtError(f"decode.quantize=int8 runs on the CPU only, not on device={device}; "
                               "pass device=cpu or decode.quantize=none")
            model = quantize_dynamic_int8(model.eval())
        return cls(model.to(resolved), vocab, resolved)

    def search_ids(self, sources: list[list[int]], settings: SearchSettings, max_tokens: int, precision: Precision,
                   attention_layer: int | None, on_batch: Callable[[int], None] | None) -> list[list[Hypothesis]]:
        with autocast(resolve_precision(precision, self.device), self.device):
            return search_corpus(self.model, sources, settings, max_tokens, self.device, attention_layer, on_batch)


def load_translator(path: str | Path, device: str = "auto", quantize: bool = False) -> LineTranslator:
    """A checkpoint file gives a Translator; an export directory (python -m nmt.export) a CT2Translator."""
    if Path(path).is_dir():
        # Imported here so checkpoint users never load CTranslate2.
        from nmt.ct2_translator import CT2Translator
        return CT2Translator.from_directory(path, device, quantize)
    return Translator.from_checkpoint(path, device, quantize)
