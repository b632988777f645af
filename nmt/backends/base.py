"""What both translation backends share: lines in, n-best hypotheses out, or given translations
scored, with the same truncation and blank-line rules. A backend sets vocab, device and max_positions
and implements search_ids and score_ids."""

import logging
from typing import Callable

import torch

from nmt.choices import Precision
from nmt.config.decode import SearchSettings
from nmt.data.vocab import UNK_ID, Vocab
from nmt.decoding.constraints import Phrase
from nmt.decoding.search import Hypothesis
from nmt.io import line_numbers
from nmt.models.interface import token_limit

log = logging.getLogger("nmt.translate")


class LineTranslator:
    """The interface translate, serve and Python callers use, whichever engine searches."""

    vocab: Vocab
    device: torch.device
    max_positions: int
    default_settings = SearchSettings()  # what translate() uses when given none

    def search_ids(self, sources: list[list[int]], settings: SearchSettings, max_tokens: int, precision: Precision,
                   attention_layer: int | None, on_batch: Callable[[int], None] | None,
                   constraints: list[list[Phrase]] | None = None) -> list[list[Hypothesis]]:
        """The search itself, over token ids; `constraints`: per source, target phrases as token ids."""
        raise NotImplementedError

    def score_ids(self, sources: list[list[int]], targets: list[list[int]], settings: SearchSettings,
                  max_tokens: int, precision: Precision,
                  on_batch: Callable[[int], None] | None) -> list[Hypothesis]:
        """Each target scored as the translation of its source (token ids, neither with EOS): forced
        decoding, see nmt.decoding.scoring; each hypothesis carries its token_log_probs."""
        raise NotImplementedError

    def encode_lines(self, lines: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids per line, cut to the model's maximum; also the (1-based) lines that were cut."""
        limit = token_limit(self.max_positions)
        ids = self.vocab.encode(lines)
        truncated = [n for n, x in enumerate(ids, start=1) if len(x) > limit]
        return [x[:limit] for x in ids], truncated

    def translate_hypotheses(self, lines: list[str], settings: SearchSettings, max_tokens: int = 8000,
                             precision: Precision = Precision.fp32, attention_layer: int | None = None,
                             on_batch: Callable[[int], None] | None = None,
                             constraints: list[list[str]] | None = None) -> list[list[Hypothesis]]:
        """n-best hypotheses per line, in input order; a blank line gets an empty hypothesis.
        With `attention_layer` (a Transformer decoder layer; any number for the GRU) each
        hypothesis carries its attention over the source. `constraints` gives each line the target
        phrases its translation must contain (terminology; see nmt.decoding.glossary)."""
        ids, truncated = self.encode_lines(lines)
        if truncated:
            log.warning("%d line(s) longer than %d tokens were truncated: %s", len(truncated),
                        token_limit(self.max_positions), line_numbers(truncated, shown=20))
        todo = [i for i, line in enumerate(lines) if line.strip()]
        results: list[list[Hypothesis]] = [[Hypothesis([], 0.0, 0.0)] for _ in lines]
        phrases = [self.encode_phrases(constraints[i]) for i in todo] if constraints is not None else None
        found = self.search_ids([ids[i] for i in todo], settings, max_tokens, precision, attention_layer, on_batch,
                                phrases if phrases is not None and any(phrases) else None)
        for i, hyps in zip(todo, found):
            results[i] = hyps
        return results

    def score_lines(self, sources: list[str], targets: list[str], settings: SearchSettings, max_tokens: int = 8000,
                    precision: Precision = Precision.fp32,
                    on_batch: Callable[[int], None] | None = None) -> list[Hypothesis | None]:
        """Each target line scored as the translation of its source line, in input order: its tokens, its
        log-probability with the EOS, its score under settings' length normalization, and its
        token_log_probs. A pair whose source is blank gets None: search never reads a blank line (it
        translates it as an empty line), so there is nothing to score. A blank target with a real source
        is the empty translation, scored as the EOS alone. Sources and targets longer than the model's
        maximum are cut, with a warning, as translation cuts sources."""
        src_ids, long_sources = self.encode_lines(sources)
        tgt_ids, long_targets = self.encode_lines(targets)
        for side, numbers in (("source", long_sources), ("target", long_targets)):
            if numbers:
                log.warning("%d %s line(s) longer than %d tokens were truncated: %s", len(numbers), side,
                            token_limit(self.max_positions), line_numbers(numbers, shown=20))
        todo = [i for i, line in enumerate(sources) if line.strip()]
        unknown = [i + 1 for i in todo if UNK_ID in tgt_ids[i]]
        if unknown:
            log.warning("%d target line(s) hold characters outside the vocabulary, scored as UNK: %s",
                        len(unknown), line_numbers(unknown, shown=20))
        results: list[Hypothesis | None] = [None] * len(sources)
        found = self.score_ids([src_ids[i] for i in todo], [tgt_ids[i] for i in todo], settings, max_tokens,
                               precision, on_batch)
        for i, hypothesis in zip(todo, found):
            results[i] = hypothesis
        return results

    def encode_phrases(self, phrases: list[str]) -> list[Phrase]:
        """Target phrases as the subword ids the model writes them with, as at the start of a word."""
        return [tuple(ids) for ids in self.vocab.encode(phrases) if ids]

    def translate(self, lines: list[str], settings: SearchSettings | None = None, max_tokens: int = 8000) -> list[str]:
        """One translation per input string, in order (default_settings unless given)."""
        hyps = self.translate_hypotheses(lines, settings or self.default_settings, max_tokens)
        return [self.vocab.decode(h[0].tokens) for h in hyps]
