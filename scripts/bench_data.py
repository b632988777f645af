"""Data pipeline at WMT14 scale: 4.5M distinct, news-like sentence pairs are prepared with the
wmt14_en_de settings, then a training-data iterator reads every batch of one epoch.

    python scripts/bench_data.py [--pairs N] [--workdir DIR] [--text-dir DIR]

The corpus recombines real WMT newstest pairs (the *.en / *.de files in --text-dir): each new
pair is the first part of one pair followed by the rest of another, cut at the same fraction of
both sides, so pairs stay roughly aligned, lengths and the length ratio stay WMT-like, and the
vocabulary is the news text's own. Repeated pairs are skipped, so every pair is distinct.
Prints a table, then (last line) one JSON object of the figures.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent

ITERATOR = """
import resource, json
from pathlib import Path
from nmt.data.cache import EncodedSplit
from nmt.data.batching import TokenBatchSampler, collate
split = EncodedSplit(Path({cache!r}), 'train')
sampler = TokenBatchSampler(split.src_lengths, split.tgt_lengths, {max_tokens}, seed=1)
real = slots = batches = 0
for indices in sampler:
    batch = collate([split.pair(int(i)) for i in indices])
    real += int((batch.src != 0).sum()) + int((batch.tgt_out != 0).sum())
    slots += batch.src.numel() + batch.tgt_out.numel()
    batches += 1
print(json.dumps({{"batches": batches, "padding_fraction": 1 - real / slots,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def read_pairs(directory: Path) -> list[tuple[list[str], list[str]]]:
    """Word lists of every non-empty pair of DIR/X.en and DIR/X.de."""
    pairs = []
    for en in sorted(directory.glob("*.en")):
        de = en.with_suffix(".de")
        for e, d in zip(en.read_text(encoding="utf-8").splitlines(), de.read_text(encoding="utf-8").splitlines()):
            if e.strip() and d.strip():
                pairs.append((e.split(), d.split()))
    if not pairs:
        sys.exit(f"no *.en / *.de pairs in {directory}; pass --text-dir")
    return pairs


def recombined(pairs: list[tuple[list[str], list[str]]], count: int, seed: int, seen: set[int],
               types: tuple[set[str], set[str]]) -> Iterator[tuple[str, str]]:
    """`count` pairs not in `seen` (hashes, updated): the head of one real pair and the tail of
    another, cut at the same fraction of each side; `types` collects the words of each side."""
    rng = random.Random(seed)
    produced = 0
    while produced < count:
        (head_en, head_de), (tail_en, tail_de) = rng.choice(pairs), rng.choice(pairs)
        cut = rng.uniform(0.2, 0.8)
        en = head_en[:round(cut * len(head_en))] + tail_en[round(cut * len(tail_en)):]
        de = head_de[:round(cut * len(head_de))] + tail_de[round(cut * len(tail_de)):]
        pair = (" ".join(en), " ".join(de))
        key = hash(pair)
        if key in seen or not en or not de:
            continue
        seen.add(key)
        types[0].update(en)
        types[1].update(de)
        produced += 1
        yield pair


def write_corpus(prefix: Path, pairs: Iterator[tuple[str, str]]) -> None:
    with open(f"{prefix}.en", "w", encoding="utf-8") as en, open(f"{prefix}.de", "w", encoding="utf-8") as de:
        for e, d in pairs:
            en.write(e + "\n")
            de.write(d + "\n")


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total / 2 ** 20


def run_measured(command: list[str], cwd: Path) -> tuple[float, float, str]:
    peak = 0.0
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_mib(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{err}")
    return time.perf_counter() - start, peak, out


def build_corpus(text_dir: Path, work: Path, count: int) -> dict:
    """Write train (`count` pairs) and valid (3,000 others); their distinct pairs and word types."""
    pairs = read_pairs(text_dir)
    seen: set[int] = set()
    types: tuple[set[str], set[str]] = (set(), set())
    start = time.perf_counter()
    write_corpus(work / "train", recombined(pairs, count, 1, seen, types))
    unique = len(seen)
    write_corpus(work / "valid", recombined(pairs, 3000, 2, seen, (set(), set())))
    print(f"wrote {count:,} recombined pairs from {len(pairs):,} in {time.perf_counter() - start:.0f}s",
          file=sys.stderr)
    return {"unique_pairs": unique, "word_types": len(types[0] | types[1]),
            "word_types_en": len(types[0]), "word_types_de": len(types[1])}


def measure(work: Path, max_tokens: int) -> tuple[dict, dict]:
    """Prepare with the wmt14_en_de settings, then iterate one epoch: figures, and train stats."""
    prepare = [sys.executable, "-m", "nmt.prepare", "data=wmt14_en_de", "data.source=text", "data.name=bench",
               f"data.train={work / 'train'}", f"data.valid={work / 'valid'}", f"data.cache_dir={work / 'cache'}"]
    seconds, prepare_rss, out = run_measured(prepare, ROOT)
    cache = Path(out.strip().splitlines()[-1])
    stats = json.loads((cache / "stats.json").read_text())["train"]
    iterate = [sys.executable, "-c", ITERATOR.format(cache=str(cache), max_tokens=max_tokens)]
    iterator_seconds, _, out = run_measured(iterate, ROOT)
    iterator = json.loads(out.strip().splitlines()[-1])
    cache_mib = sum(p.stat().st_size for p in cache.iterdir()) / 2 ** 20
    return {"prepare_seconds": round(seconds, 1), "prepare_peak_rss_mib": round(prepare_rss),
            "iterator_peak_rss_mib": round(iterator["peak_rss_mib"]), "iterator_seconds": round(iterator_seconds),
            "batches": iterator["batches"], "cache_mib": round(cache_mib),
            "padding_fraction": round(iterator["padding_fraction"], 4)}, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4_500_000)
    parser.add_argument("--workdir", default="data/bench_data")
    parser.add_argument("--text-dir", default=str(ROOT.parent / "shared" / "data" / "wmt14"),
                        help="line-aligned news text X.en / X.de to recombine (default: this setup's newstest copy)")
    parser.add_argument("--max-tokens", type=int, default=4096)
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = build_corpus(Path(args.text_dir), work, args.pairs)
    figures, stats = measure(work, args.max_tokens)
    figures = {"pairs": args.pairs, **corpus, **figures,
               "pairs_per_second": round(args.pairs / figures["prepare_seconds"])}
    rows = [("pairs", f"{args.pairs:,}", ""),
            ("distinct pairs", f"{corpus['unique_pairs']:,}", ""),
            ("word types", f"{corpus['word_types']:,}",
             f"en {corpus['word_types_en']:,}, de {corpus['word_types_de']:,} (whitespace-separated)"),
            ("kept after cleaning", f"{stats['kept']:,}", f"removed: {stats['removed']}"),
            ("prepare seconds", f"{figures['prepare_seconds']:.1f}", ""),
            ("pairs per second", f"{figures['pairs_per_second']:,}", ""),
            ("prepare peak RSS (MiB)", f"{figures['prepare_peak_rss_mib']}", "process and its workers"),
            ("iterator peak RSS (MiB)", f"{figures['iterator_peak_rss_mib']}",
             f"{figures['batches']:,} batches in {figures['iterator_seconds']}s"),
            ("cache size (MiB)", f"{figures['cache_mib']}", ""),
            ("padding fraction", f"{figures['padding_fraction']:.4f}", f"max_tokens={args.max_tokens}")]
    for name, value, note in rows:
        print(f"{name:<28}{value:>14}   {note}".rstrip())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
