"""Where parallel text comes from: the built-in grammar, line-aligned text files, or HF `datasets`.

Every source yields (source sentence, target sentence) pairs for a split name
(train / valid / test) and has an identity string that changes when its data does.
"""

import hashlib
import os
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Iterator

from nmt.data.builtin import generate_pairs
from nmt.errors import NmtError

SPLITS = ("train", "valid", "test")


@dataclass
class CorpusSpec:
    """What a source needs to know; built from the data config by the entry point."""

    source: str
    src_lang: str
    tgt_lang: str
    path: str | None = None
    hf_config: str | None = None
    hf_splits: dict[str, str] | None = None
    prefixes: dict[str, str | None] | None = None
    builtin_sizes: dict[str, int] | None = None
    builtin_seed: int = 0


class Corpus:
    """Pairs per split from one source."""

    def __init__(self, spec: CorpusSpec):
        if spec.source not in ("builtin", "text", "hf"):
            raise NmtError(f"data.source={spec.source!r} is unknown: use builtin, text or hf")
        self.spec = spec
        self._hf = _load_hf(spec) if spec.source == "hf" else None
        if spec.source == "text":
            if not (spec.prefixes or {}).get("train"):
                raise NmtError("data.train is not set: give data.train=PREFIX (reads PREFIX.<src_lang> and "
                               "PREFIX.<tgt_lang>)")
            for split in SPLITS:
                if self.has_split(split):
                    self.text_paths(split)  # fail now, naming the file, not halfway through preparing

    def has_split(self, split: str) -> bool:
        s = self.spec
        if s.source == "builtin":
            return (s.builtin_sizes or {}).get(split, 0) > 0
        if s.source == "text":
            return bool((s.prefixes or {}).get(split))
        return (s.hf_splits or {}).get(split) in self._hf

    def identity(self) -> str:
        """A string that changes whenever the data of any split changes."""
        s = self.spec
        parts = [s.source, s.src_lang, s.tgt_lang]
        if s.source == "builtin":
            parts += [repr(sorted((s.builtin_sizes or {}).items())), str(s.builtin_seed),
                      hashlib.sha1(Path(__file__).with_name("builtin.py").read_bytes()).hexdigest()]
        elif s.source == "text":
            for split in SPLITS:
                if self.has_split(split):
                    for path in self.text_paths(split):
                        st = path.stat()
                        parts.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
        else:
            for split in SPLITS:
                if self.has_split(split):
                    parts.append(self._hf[s.hf_splits[split]]._fingerprint)
        return "|".join(parts)

    def text_paths(self, split: str) -> tuple[Path, Path]:
        prefix = self.spec.prefixes[split]
        paths = (Path(f"{prefix}.{self.spec.src_lang}"), Path(f"{prefix}.{self.spec.tgt_lang}"))
        for path in paths:
            if not path.is_file():
                raise NmtError(f"{path}: no such file (data.{split}={prefix} reads PREFIX.{self.spec.src_lang} "
                               f"and PREFIX.{self.spec.tgt_lang})")
        return paths

    def pairs(self, split: str) -> Iterator[tuple[str, str]]:
        s = self.spec
        if s.source == "builtin":
            # Each split has its own seed so the splits are disjoint draws.
            yield from generate_pairs(s.builtin_sizes[split], s.builtin_seed + SPLITS.index(split))
        elif s.source == "text":
            yield from _text_pairs(*self.text_paths(split))
        else:
            dataset = self._hf[s.hf_splits[split]]
            for batch in dataset.iter(batch_size=10_000):
                for pair in batch["translation"]:
                    yield pair[s.src_lang] or "", pair[s.tgt_lang] or ""


def _read_lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise NmtError(f"{path}:{number}: not valid UTF-8 ({error.reason}); "
                               "convert the file to UTF-8") from None


def _text_pairs(src_path: Path, tgt_path: Path) -> Iterator[tuple[str, str]]:
    for number, (src, tgt) in enumerate(zip_longest(_read_lines(src_path), _read_lines(tgt_path)), start=1):
        if src is None or tgt is None:
            shorter = src_path if src is None else tgt_path
            raise NmtError(f"{src_path} and {tgt_path} differ in length: {shorter} ends at line {number - 1}; "
                           "the files must be line-aligned")
        yield src, tgt


def _load_hf(spec: CorpusSpec):
    """Load a `datasets` dataset by hub id or local directory, with one-line errors."""
    import datasets

    path = spec.path
    if not path:
        raise NmtError("data.path is not set: give a hub id (e.g. wmt/wmt14) or a local dataset directory")
    looks_local = path.startswith((".", "/", "~")) or os.path.exists(path)
    if looks_local and not os.path.isdir(os.path.expanduser(path)):
        raise NmtError(f"data.path={path}: no such directory; pass an existing dataset directory or a hub id")
    try:
        loaded = datasets.load_dataset(os.path.expanduser(path), spec.hf_config)
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
    for ours, theirs in (spec.hf_splits or {}).items():
        if theirs not in loaded:
            if ours == "train":
                raise NmtError(f"{path}: no split {theirs!r} (has {sorted(loaded)}); set data.hf_splits.train")
            continue
        feature = loaded[theirs].features.get("translation")
        if feature is None:
            raise NmtError(f"{path}: split {theirs!r} has no 'translation' feature")
        languages = list(getattr(feature, "languages", None) or feature.keys())
        for lang in (spec.src_lang, spec.tgt_lang):
            if lang not in languages:
                raise NmtError(f"{path}: language {lang!r} is not in the data (has {languages}); "
                               "set data.src_lang / data.tgt_lang")
    return loaded


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
