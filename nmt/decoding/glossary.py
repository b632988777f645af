"""Terminology for constrained search: a glossary of `source term -> target term` pairs matched in
each source line, and per-line constraint files. Both give, for each input line, the target phrases
its translation must contain (as text; the translator turns them into subword constraints).

Terms match whole words: a line and a term are split into words and punctuation marks the same
way, so "cat" matches in "the cat." but not in "category". Where matches overlap, the longest is
kept, then the earliest.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from nmt.config.decode import DecodeConfig
from nmt.errors import NmtError
from nmt.io import read_lines

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _words(text: str, ignore_case: bool) -> tuple[str, ...]:
    words = _TOKEN.findall(text)
    return tuple(w.casefold() for w in words) if ignore_case else tuple(words)


@dataclass(frozen=True)
class Glossary:
    """Source terms, as word tuples, to their target terms."""

    entries: dict[tuple[str, ...], str]
    ignore_case: bool = False

    @classmethod
    def from_pairs(cls, pairs: dict[str, str], ignore_case: bool = False, name: str = "glossary") -> "Glossary":
        entries: dict[tuple[str, ...], str] = {}
        for source, target in pairs.items():
            if not source.strip() or not target.strip():
                raise NmtError(f"{name}: the term {source!r} -> {target!r} has an empty side; give both terms")
            entries[_words(source, ignore_case)] = target.strip()
        return cls(entries, ignore_case)

    @property
    def longest(self) -> int:
        return max((len(words) for words in self.entries), default=0)

    def targets(self, line: str) -> list[str]:
        """The target terms of the source terms found in `line`, in the order they occur, each once."""
        words, longest = _words(line, self.ignore_case), self.longest
        found = [(start, end) for start in range(len(words))
                 for end in range(start + 1, min(start + longest, len(words)) + 1) if words[start:end] in self.entries]
        taken: list[tuple[int, int]] = []
        for start, end in sorted(found, key=lambda span: (span[0] - span[1], span[0])):  # longest, then earliest
            if all(end <= s or start >= e for s, e in taken):
                taken.append((start, end))
        targets = [self.entries[words[start:end]] for start, end in sorted(taken)]
        return list(dict.fromkeys(targets))


def load_glossary(path: str | Path, ignore_case: bool = False) -> Glossary:
    """A UTF-8 TSV of `source term<TAB>target term`, one pair per line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"decode.glossary={path}: no such file")
    lines, _ = read_lines(path.read_bytes(), str(path))
    pairs: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise NmtError(f"{path}:{number}: {len(columns)} tab-separated columns; a glossary line is "
                           "'source term<TAB>target term'")
        if not columns[0].strip() or not columns[1].strip():
            raise NmtError(f"{path}:{number}: an empty term; give a source and a target term")
        pairs[columns[0]] = columns[1]
    return Glossary.from_pairs(pairs, ignore_case, str(path))


def load_constraints(path: str | Path, line_count: int) -> list[list[str]]:
    """fairseq's constraints: for each input line, a line of tab-separated target phrases (or none)."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"decode.constraints={path}: no such file")
    lines, _ = read_lines(path.read_bytes(), str(path))
    if len(lines) != line_count:
        raise NmtError(f"{path} has {len(lines)} lines for {line_count} input lines; give one line of "
                       "tab-separated target phrases per input line (an empty line for none)")
    return [[phrase.strip() for phrase in line.split("\t") if phrase.strip()] for line in lines]


def line_constraints(decode: DecodeConfig, lines: list[str]) -> list[list[str]] | None:
    """Each line's target phrases from decode.constraints and decode.glossary (both may be given);
    None when neither is."""
    if decode.constraints is None and decode.glossary is None:
        return None
    given = load_constraints(decode.constraints, len(lines)) if decode.constraints else [[] for _ in lines]
    glossary = load_glossary(decode.glossary, decode.glossary_ignore_case) if decode.glossary else None
    return [list(dict.fromkeys(phrases + (glossary.targets(line) if glossary else [])))
            for line, phrases in zip(lines, given)]
