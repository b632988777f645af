"""Prepare once, reuse after: clean the corpus, train the joint vocabulary, encode every split
in parallel, and write token ids as flat memory-mappable arrays under a key of all inputs."""

import hashlib
import json
import logging
import multiprocessing
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from nmt.choices import SubwordModel
from nmt.data.cleaning import DUPLICATE, KEEP, REASONS, CleaningRules, removal_reason
from nmt.data.sources import SPLITS, Corpus
from nmt.data.vocab import Vocab, train_vocab
from nmt.errors import NmtError
from nmt.io import atomic_write_text, progress

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
CHUNK_PAIRS = 20_000


@dataclass(frozen=True)
class VocabSettings:
    vocab_size: int
    model_type: SubwordModel
    sample_sentences: int
    character_coverage: float


def cache_key(corpus_identity: str, rules: CleaningRules, vocab: VocabSettings, seed: int) -> str:
    blob = json.dumps([FORMAT_VERSION, corpus_identity, asdict(rules), asdict(vocab), seed], sort_keys=True,
                      default=lambda choice: choice.value)  # an Enum keys the cache by its config string
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def prepare_cache(corpus: Corpus, name: str, rules: CleaningRules, vocab_settings: VocabSettings,
                  cache_root: Path, seed: int = 1, workers: int = 0) -> Path:
    """Return the cache directory for these inputs, building it first if it does not exist."""
    key = cache_key(corpus.identity(), rules, vocab_settings, seed)
    directory = cache_root / f"{name}-{key}"
    if (directory / "meta.json").is_file():
        log.info("reusing prepared data in %s", directory)
        return directory
    workers = workers or len(os.sched_getaffinity(0))
    cache_root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(cache_root)
    # Built aside and renamed, so a killed prepare never leaves a cache that looks complete.
    building = cache_root / f".{directory.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    log.info("preparing %s into %s", name, directory)

    sample = _reservoir_sample(_both_sides(corpus.pairs("train")), vocab_settings.sample_sentences, seed)
    vocab = train_vocab(sample, vocab_settings.vocab_size, vocab_settings.model_type,
                        vocab_settings.character_coverage, threads=workers)
    del sample
    (building / "spm.model").write_bytes(vocab.proto)

    stats, sizes = {}, {}
    for split in SPLITS:
        if not corpus.has_split(split):
            continue
        split_rules = rules if split == "train" else None
        stats[split] = _encode_split(corpus.pairs(split), vocab, split_rules, building, split, workers,
                                     keep_text=split != "train")
        sizes[split] = stats[split]["kept"]
    atomic_write_text(building / "stats.json", json.dumps(stats, indent=2) + "\n")
    if sizes.get("train", 0) == 0:
        raise NmtError(f"no training pairs are left after cleaning; see {building / 'stats.json'}")
    meta = {"format": FORMAT_VERSION, "key": key, "name": name, "vocab_size": len(vocab),
            "dtype": _token_dtype(len(vocab)).str, "sizes": sizes}
    atomic_write_text(building / "meta.json", json.dumps(meta, indent=2) + "\n")
    if directory.exists():  # a concurrent prepare of the same key won; ours is identical
        shutil.rmtree(building)
    else:
        building.rename(directory)
    log.info("prepared %s", {s: v["kept"] for s, v in stats.items()})
    return directory


def _remove_abandoned_builds(cache_root: Path) -> None:
    """A killed prepare leaves its side directory behind; remove those whose process is gone."""
    for path in cache_root.glob(".*.building-*"):
        pid = path.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _is_running(int(pid)):
            log.info("removing %s, left by a prepare that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _both_sides(pairs: Iterable[tuple[str, str]]) -> Iterator[str]:
    for src, tgt in pairs:
        if src:
            yield src
        if tgt:
            yield tgt


def _reservoir_sample(items: Iterable[str], size: int, seed: int) -> list[str]:
    """A uniform sample of `size` items from a stream of unknown length (Algorithm R)."""
    rng = random.Random(seed)
    sample: list[str] = []
    for seen, item in enumerate(items):
        if seen < size:
            sample.append(item)
        else:
            slot = rng.randint(0, seen)
            if slot < size:
                sample[slot] = item
    return sample


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max else np.dtype(np.int32)


def _chunks(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_worker_vocab: Vocab | None = None
_worker_rules: CleaningRules | None = None


def _init_worker(proto: bytes, rules: CleaningRules | None) -> None:
    global _worker_vocab, _worker_rules
    _worker_vocab, _worker_rules = Vocab(proto), rules


class EncodedChunk(NamedTuple):
    src_ids: np.ndarray  # all source ids of the chunk, back to back
    src_lengths: np.ndarray
    tgt_ids: np.ndarray
    tgt_lengths: np.ndarray
    reasons: np.ndarray  # per pair: KEEP or why cleaning removes it
    hashes: list[bytes] | None  # per pair, when deduplicating
    sources: list[str]
    targets: list[str]


def _encode_chunk(chunk: list[tuple[str, str]]) -> EncodedChunk:
    """Encode one chunk and say which pairs cleaning keeps."""
    srcs = [s for s, _ in chunk]
    tgts = [t for _, t in chunk]
    src_ids, tgt_ids = _worker_vocab.encode(srcs), _worker_vocab.encode(tgts)
    src_lens = np.fromiter((len(x) for x in src_ids), np.int32, len(chunk))
    tgt_lens = np.fromiter((len(x) for x in tgt_ids), np.int32, len(chunk))
    if _worker_rules is None:
        reasons = np.zeros(len(chunk), np.int8)
        hashes = None
    else:
        reasons = np.fromiter((removal_reason(s, t, sl, tl, _worker_rules)
                               for s, t, sl, tl in zip(srcs, tgts, src_lens, tgt_lens)), np.int8, len(chunk))
        hashes = None
        if _worker_rules.dedup:
            hashes = [hashlib.blake2b(f"{s}\t{t}".encode(), digest_size=8).digest() for s, t in chunk]
    dtype = _token_dtype(len(_worker_vocab))
    src_flat = np.fromiter((i for x in src_ids for i in x), dtype, int(src_lens.sum()))
    tgt_flat = np.fromiter((i for x in tgt_ids for i in x), dtype, int(tgt_lens.sum()))
    return EncodedChunk(src_flat, src_lens, tgt_flat, tgt_lens, reasons, hashes, srcs, tgts)


def _encode_split(pairs: Iterable[tuple[str, str]], vocab: Vocab, rules: CleaningRules | None,
                  directory: Path, split: str, workers: int, keep_text: bool) -> dict:
    counts = {reason: 0 for reason in REASONS.values()}
    seen_hashes: set[bytes] = set()
    src_lengths, tgt_lengths = [], []
    total = 0
    dtype = _token_dtype(len(vocab))
    chunks = _chunks(pairs, CHUNK_PAIRS)
    pool = multiprocessing.Pool(workers, _init_worker, (vocab.proto, rules)) if workers > 1 else None
    if pool is None:
        _init_worker(vocab.proto, rules)
    results = pool.imap(_encode_chunk, chunks) if pool else map(_encode_chunk, chunks)
    with open(directory / f"{split}.src.bin", "wb") as src_out, \
            open(directory / f"{split}.tgt.bin", "wb") as tgt_out, \
            _text_writers(directory, split, keep_text) as (src_text, tgt_text):
        for chunk in progress(results, desc=f"encode {split}", unit="chunk"):
            total += len(chunk.reasons)
            _mark_duplicates(chunk, seen_hashes)
            keep = chunk.reasons == KEEP
            for code, name in REASONS.items():
                counts[name] += int((chunk.reasons == code).sum())
            src_out.write(_select(chunk.src_ids, chunk.src_lengths, keep).astype(dtype).tobytes())
            tgt_out.write(_select(chunk.tgt_ids, chunk.tgt_lengths, keep).astype(dtype).tobytes())
            src_lengths.append(chunk.src_lengths[keep])
            tgt_lengths.append(chunk.tgt_lengths[keep])
            if src_text is not None:
                src_text.writelines(_one_line(s) for s, k in zip(chunk.sources, keep) if k)
                tgt_text.writelines(_one_line(t) for t, k in zip(chunk.targets, keep) if k)
    if pool:
        pool.close()
        pool.join()
    src_lengths = np.concatenate(src_lengths) if src_lengths else np.zeros(0, np.int32)
    tgt_lengths = np.concatenate(tgt_lengths) if tgt_lengths else np.zeros(0, np.int32)
    np.save(directory / f"{split}.src_len.npy", src_lengths)
    np.save(directory / f"{split}.tgt_len.npy", tgt_lengths)
    return {"input": total, "kept": int(len(src_lengths)), "removed": counts}


def _mark_duplicates(chunk: EncodedChunk, seen: set[bytes]) -> None:
    """Kept pairs seen before (in this chunk or an earlier one) become DUPLICATE."""
    if chunk.hashes is None:
        return
    for i, h in enumerate(chunk.hashes):
        if chunk.reasons[i] == KEEP:
            if h in seen:
                chunk.reasons[i] = DUPLICATE
            else:
                seen.add(h)


def _one_line(text: str) -> str:
    """The text on exactly one line, whatever line separators it holds."""
    return " ".join(text.splitlines()) + "\n"


def _select(flat: np.ndarray, lengths: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The ids of the kept sentences from a flat array of all of them."""
    if keep.all():
        return flat
    return flat[np.repeat(keep, lengths)]


class _text_writers:
    """Raw text of valid/test, kept for BLEU against the untouched references."""

    def __init__(self, directory: Path, split: str, enabled: bool):
        self.paths = (directory / f"{split}.src.txt", directory / f"{split}.tgt.txt") if enabled else None

    def __enter__(self):
        if self.paths is None:
            return None, None
        self.files = [open(p, "w", encoding="utf-8", newline="") for p in self.paths]
        return self.files

    def __exit__(self, *exc):
        for f in getattr(self, "files", []):
            f.close()


class EncodedSplit:
    """One prepared split, memory-mapped: nothing is read until a pair is asked for."""

    def __init__(self, directory: Path, split: str):
        meta = json.loads((directory / "meta.json").read_text())
        dtype = np.dtype(meta["dtype"])
        self.src_lengths = np.load(directory / f"{split}.src_len.npy")
        self.tgt_lengths = np.load(directory / f"{split}.tgt_len.npy")
        self._src_offsets = np.concatenate([[0], np.cumsum(self.src_lengths, dtype=np.int64)])
        self._tgt_offsets = np.concatenate([[0], np.cumsum(self.tgt_lengths, dtype=np.int64)])
        self._src = _memmap(directory / f"{split}.src.bin", dtype)
        self._tgt = _memmap(directory / f"{split}.tgt.bin", dtype)

    def __len__(self) -> int:
        return len(self.src_lengths)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        s0, s1 = self._src_offsets[index], self._src_offsets[index + 1]
        t0, t1 = self._tgt_offsets[index], self._tgt_offsets[index + 1]
        return self._src[s0:s1], self._tgt[t0:t1]


def _memmap(path: Path, dtype: np.dtype) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")
