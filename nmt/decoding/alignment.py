"""Which source words each target word was written from, read off a translation's attention (the
GRU's α, or a Transformer decoder layer's cross-attention): what lets markup on the source be put
back on the translation.

Both sides are cut into *units*: the subwords of one word (a piece that begins with "▁" starts a
word), with each punctuation piece a unit of its own, so "snow." is "snow" and ".". A target unit is
aligned with the source unit its subwords attended to most, summed over the subwords of both.
"""

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class AlignedUnit:
    text: str  # the target text of the unit, with the space before it when it begins a word
    source: tuple[int, int]  # the characters [begin, end) of the source line it is aligned with


def _is_punctuation(piece: str) -> bool:
    text = piece.lstrip("▁")
    return bool(text) and not any(char.isalnum() for char in text)


def units(pieces: list[str]) -> list[tuple[int, int]]:
    """The units of a piece sequence as [start, end) piece ranges."""
    starts = [i for i, piece in enumerate(pieces)
              if i == 0 or piece.startswith("▁") or _is_punctuation(piece) or _is_punctuation(pieces[i - 1])]
    return list(zip(starts, starts[1:] + [len(pieces)]))


def _trimmed(line: str, begin: int, end: int) -> tuple[int, int]:
    """A span without the whitespace a piece's "▁" stands for, so it touches only its own word."""
    while begin < end and line[begin].isspace():
        begin += 1
    return begin, end


def align(line: str, source_pieces: list[str], source_spans: list[tuple[int, int]], target_pieces: list[str],
          prefix_text: Callable[[int], str], attention: torch.Tensor) -> list[AlignedUnit]:
    """The translation of `line` cut into units, each with the source characters it is aligned with.

    source_pieces, source_spans: the pieces the model read (without the EOS) and their characters in
    `line`; target_pieces: the pieces it wrote (without the EOS); prefix_text(k): the text of the first
    k target pieces, so the units' texts join into exactly the translation; attention: one row per
    target piece (more rows, e.g. the EOS's, are ignored), one column per source piece (likewise).
    """
    source_units, target_units = units(source_pieces), units(target_pieces)
    texts = [prefix_text(b) for _, b in target_units]
    if not source_units:  # nothing the model could read: the words come from nowhere in the line
        return [AlignedUnit(text[len(before):], (0, 0)) for text, before in zip(texts, [""] + texts)]
    weights = attention[:len(target_pieces), :len(source_pieces)].float()  # (target pieces, source pieces)
    by_source = torch.stack([weights[:, a:b].sum(1) for a, b in source_units], 1)  # (target pieces, source units)
    by_unit = [by_source[a:b].sum(0) for a, b in target_units]  # each (source units,)
    spans = [_trimmed(line, source_spans[a][0], source_spans[b - 1][1]) for a, b in source_units]
    return [AlignedUnit(text[len(before):], spans[int(row.argmax())])
            for text, before, row in zip(texts, [""] + texts, by_unit)]
