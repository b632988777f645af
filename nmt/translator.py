"""The Python API for translation: `Translator.from_checkpoint(path).translate(lines)`."""

import logging
from pathlib import Path
from typing import Callable

import torch

from nmt.checkpoint import load_checkpoint, vocab_bytes
from nmt.config import Precision
from nmt.data.vocab import Vocab
from nmt.models import build_model, config_from
from nmt.models.interface import EncoderDecoder
from nmt.precision import autocast, resolve_device, resolve_precision
from nmt.search import Hypothesis, SearchSettings, search_corpus

log = logging.getLogger(__name__)


class Translator:
    def __init__(self, model: EncoderDecoder, vocab: Vocab, device: torch.device):
        self.model, self.vocab, self.device = model.eval(), vocab, device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> "Translator":
        payload = load_checkpoint(path)
        vocab = Vocab(vocab_bytes(payload))
        resolved = resolve_device(device)
        model = build_model(config_from(payload["model_kind"], payload["model_config"]), len(vocab))
        model.load_state_dict(payload["model"])
        return cls(model.to(resolved), vocab, resolved)

    def encode_lines(self, lines: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids per line, cut to the model's maximum; also the (1-based) lines that were cut."""
        limit = self.model.max_positions - 1  # one position is the EOS
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
                        self.model.max_positions - 1, shown)
        todo = [i for i, line in enumerate(lines) if line.strip()]
        results: list[list[Hypothesis]] = [[Hypothesis([], 0.0, 0.0)] for _ in lines]
        with autocast(resolve_precision(precision, self.device), self.device):
            found = search_corpus(self.model, [ids[i] for i in todo], settings, max_tokens, self.device,
                                  attention_layer, on_batch)
        for i, hyps in zip(todo, found):
            results[i] = hyps
        return results

    def translate(self, lines: list[str], settings: SearchSettings | None = None, max_tokens: int = 8000) -> list[str]:
        """One translation per input string, in order (beam 5, length penalty 0.6 unless given)."""
        hyps = self.translate_hypotheses(lines, settings or SearchSettings(), max_tokens)
        return [self.vocab.decode(h[0].tokens) for h in hyps]
