"""Where parallel text comes from: one class per kind of source (the built-in grammar, line-aligned
text files, and HF `datasets` in either of two layouts), all behind the `Corpus` interface.

Every source yields (source sentence, target sentence) pairs for a split name
(train / valid / test) and has an identity string that changes when its data does.
"""

import hashlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Callable, Iterator, Protocol

from nmt.choices import Source
from nmt.data.builtin import generate_pairs, heldout_pairs
from nmt.errors import NmtError
from nmt.io import stream_lines

SPLITS = ("train", "valid", "test")


@dataclass
class CorpusSpec:
    """What a source needs to know; built from the data config by the entry point."""

    source: Source
    src_lang: str
    tgt_lang: str
    path: str | None = None
    hf_config: str | None = None
    hf_splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "valid": "validation",
                                                               "test": "test"})
    prefixes: dict[str, str | None] = field(default_factory=dict)
    builtin_sizes: dict[str, int] = field(default_factory=dict)
    builtin_seed: int = 0


class Corpus(Protocol):
    """Pairs per split from one source."""

    def has_split(self, split: str) -> bool: ...

    def identity(self) -> str:
        """A string that changes whenever the data of any split changes."""

    def pairs(self, split: str) -> Iterator[tuple[str, str]]: ...


class BuiltinCorpus:
    """The generated grammar corpus, always English→German (the language settings do not apply);
    valid and test hold no source sentence of the splits before them."""

    def __init__(self, spec: CorpusSpec):
        self.sizes, self.seed = spec.builtin_sizes, spec.builtin_seed
        self.langs = (spec.src_lang, spec.tgt_lang)

    def has_split(self, split: str) -> bool:
        return self.sizes.get(split, 0) > 0

    def identity(self) -> str:
        grammar = hashlib.sha1(Path(__file__).with_name("builtin.py").read_bytes()).hexdigest()
        return "|".join(["builtin", *self.langs, repr(sorted(self.sizes.items())), str(self.seed), grammar])

    def pairs(self, split: str) -> Iterator[tuple[str, str]]:
        # Each split has its own seed; a held-out split that repeated a training sentence would
        # measure memory, not translation.
        index = SPLITS.index(split)
        if index == 0:
            yield from generate_pairs(self.sizes[split], self.seed)
            return
        seen = {src for earlier in SPLITS[:index] if self.has_split(earlier) for src, _ in self.pairs(earlier)}
        yield from heldout_pairs(self.sizes[split], self.seed + index, seen)


class TextCorpus:
    """Line-aligned files PREFIX.<src_lang> and PREFIX.<tgt_lang> per split."""

    def __init__(self, spec: CorpusSpec):
        self.prefixes, self.langs = spec.prefixes, (spec.src_lang, spec.tgt_lang)
        if not self.prefixes.get("train"):
            raise NmtError("data.train is not set: give data.train=PREFIX (reads PREFIX.<src_lang> and "
                           "PREFIX.<tgt_lang>)")
        for split in SPLITS:
            if self.has_split(split):
                self.paths(split)  # fail now, naming the file, not halfway through preparing

    def has_split(self, split: str) -> bool:
        return bool(self.prefixes.get(split))

    def identity(self) -> str:
        parts = ["text", *self.langs]
        for split in filter(self.has_split, SPLITS):
            for path in self.paths(split):
                st = path.stat()
                parts.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
        return "|".join(parts)

    def paths(self, split: str) -> tuple[Path, Path]:
        prefix = self.prefixes[split]
        paths = (Path(f"{prefix}.{self.langs[0]}"), Path(f"{prefix}.{self.langs[1]}"))
        for path in paths:
            if not path.is_file():
                raise NmtError(f"{path}: no such file (data.{split}={prefix} reads PREFIX.{self.langs[0]} "
                               f"and PREFIX.{self.langs[1]})")
        return paths

    def pairs(self, split: str) -> Iterator[tuple[str, str]]:
        src_path, tgt_path = self.paths(split)
        for number, (src, tgt) in enumerate(zip_longest(stream_lines(src_path), stream_lines(tgt_path)), start=1):
            if src is None or tgt is None:
                shorter = src_path if src is None else tgt_path
                raise NmtError(f"{src_path} and {tgt_path} differ in length: {shorter} ends at line {number - 1}; "
                               "the files must be line-aligned")
            yield src, tgt


class _HubCorpus(ABC):
    """A `datasets` dataset by hub id or local directory of the same layout; subclasses say how
    a row holds the two languages."""

    kind: Source

    def __init__(self, spec: CorpusSpec):
        self.spec = spec
        self.dataset = _load_dataset(spec)
        for ours, theirs in spec.hf_splits.items():
            if theirs in self.dataset:
                self._check_languages(theirs, self.dataset[theirs].features)
            elif ours == "train":
                raise NmtError(f"{spec.path}: no split {theirs!r} (has {sorted(self.dataset)}); "
                               "set data.hf_splits.train")

    def has_split(self, split: str) -> bool:
        return self.spec.hf_splits.get(split) in self.dataset

    def identity(self) -> str:
        parts = [self.kind.value, self.spec.src_lang, self.spec.tgt_lang]
        parts += [self.dataset[self.spec.hf_splits[s]]._fingerprint for s in SPLITS if self.has_split(s)]
        return "|".join(parts)

    def pairs(self, split: str) -> Iterator[tuple[str, str]]:
        for batch in self.dataset[self.spec.hf_splits[split]].iter(batch_size=10_000):
            for src, tgt in self._rows(batch):
                yield src or "", tgt or ""

    def _require_languages(self, split: str, has: list[str]) -> None:
        for lang in (self.spec.src_lang, self.spec.tgt_lang):
            if lang not in has:
                raise NmtError(f"{self.spec.path}: language {lang!r} is not in split {split!r} (has {has}); "
                               "set data.src_lang / data.tgt_lang")

    @abstractmethod
    def _check_languages(self, split: str, features) -> None:
        """Raise NmtError unless the split's features hold both languages in this layout."""

    @abstractmethod
    def _rows(self, batch: dict) -> Iterator[tuple[str | None, str | None]]:
        """(source, target) of each row of a batch of the dataset."""


class HubTranslationCorpus(_HubCorpus):
    """The layout of wmt/wmt14: one feature `translation: {"de": str, "en": str}`."""

    kind = Source.hf

    def _check_languages(self, split: str, features) -> None:
        feature = features.get("translation")
        if feature is None:
            raise NmtError(f"{self.spec.path}: split {split!r} has no 'translation' feature (has {sorted(features)}); "
                           "for one column per language use data.source=hf_columns")
        self._require_languages(split, list(getattr(feature, "languages", None) or feature.keys()))

    def _rows(self, batch: dict) -> Iterator[tuple[str | None, str | None]]:
        for pair in batch["translation"]:
            yield pair[self.spec.src_lang], pair[self.spec.tgt_lang]


class HubColumnsCorpus(_HubCorpus):
    """The layout of bentrevett/multi30k: one text column per language, `en` and `de`."""

    kind = Source.hf_columns

    def _check_languages(self, split: str, features) -> None:
        if "translation" in features:
            raise NmtError(f"{self.spec.path}: split {split!r} has a 'translation' feature, not one column per "
                           "language; use data.source=hf")
        self._require_languages(split, sorted(features))

    def _rows(self, batch: dict) -> Iterator[tuple[str | None, str | None]]:
        return zip(batch[self.spec.src_lang], batch[self.spec.tgt_lang])


SOURCES: dict[Source, Callable[[CorpusSpec], Corpus]] = {
    Source.builtin: BuiltinCorpus, Source.text: TextCorpus,
    Source.hf: HubTranslationCorpus, Source.hf_columns: HubColumnsCorpus,
}


def open_corpus(spec: CorpusSpec) -> Corpus:
    """The source class that `spec.source` names, opened (and checked) on `spec`."""
    return SOURCES[spec.source](spec)


def _load_dataset(spec: CorpusSpec):
    """Load a `datasets` dataset by hub id or local directory, with one-line errors."""
    import datasets

    path = spec.path
    if not path:
        raise NmtError("data.path is not set: give a hub id (e.g. wmt/wmt14) or a local dataset directory")
    looks_local = path.startswith((".", "/", "~")) or os.path.exists(path)
    if looks_local and not os.path.isdir(os.path.expanduser(path)):
        raise NmtError(f"data.path={path}: no such directory; pass an existing dataset directory or a hub id")
    try:
        return datasets.load_dataset(os.path.expanduser(path), spec.hf_config)
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError) as error:
        raise NmtError(f"data.path={path}: dataset not found ({_first_line(error)}); "
                       "check the hub id or pass data.path=LOCAL_DIR") from None
    except ValueError as error:
        if "config" in str(error).lower():
            raise NmtError(f"data.hf_config={spec.hf_config}: not a config of {path} ({_first_line(error)})") from None
        raise
    except (ConnectionError, OSError) as error:
        raise NmtError(f"data.path={path}: the hub could not be reached ({_first_line(error)}); "
                       "download the dataset elsewhere and pass data.path=LOCAL_DIR") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
