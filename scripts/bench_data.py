"""Data pipeline at WMT14 scale: a synthetic corpus of WMT-like sentences is prepared with the
wmt14_en_de settings, then a training-data iterator reads every batch of one epoch.

    python scripts/bench_data.py [--pairs N] [--workdir DIR]

The corpus resamples the WMT newstest pairs in ../shared/data/wmt14 and puts a random number
into each pair, so pairs are distinct (deduplication keeps them) and lengths stay WMT-like.
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

ROOT = Path(__file__).resolve().parent.parent
WMT = ROOT.parent / "shared" / "data" / "wmt14"

ITERATOR = """
import sys, resource, json
import numpy as np
sys.path.insert(0, {root!r})
from nmt.data.cache import EncodedSplit
from nmt.data.batching import TokenBatchSampler, collate
split = EncodedSplit(__import__('pathlib').Path({cache!r}), 'train')
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


def read_pairs() -> list[tuple[str, str]]:
    pairs = []
    for en in sorted(WMT.glob("*.en")):
        de = en.with_suffix(".de")
        pairs += list(zip(en.read_text(encoding="utf-8").splitlines(), de.read_text(encoding="utf-8").splitlines()))
    return [(e, d) for e, d in pairs if e.strip() and d.strip()]


def write_corpus(prefix: Path, pairs: list[tuple[str, str]], count: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(f"{prefix}.en", "w", encoding="utf-8") as en, open(f"{prefix}.de", "w", encoding="utf-8") as de:
        for _ in range(count):
            e, d = pairs[rng.randrange(len(pairs))]
            number = str(rng.randrange(10 ** 6))
            ew, dw = e.split(" "), d.split(" ")
            ew.insert(rng.randrange(len(ew) + 1), number)
            dw.insert(rng.randrange(len(dw) + 1), number)
            en.write(" ".join(ew) + "\n")
            de.write(" ".join(dw) + "\n")


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
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4_500_000)
    parser.add_argument("--workdir", default="data/bench_data")
    parser.add_argument("--max-tokens", type=int, default=4096)
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pairs = read_pairs()
    t0 = time.perf_counter()
    write_corpus(work / "train", pairs, args.pairs, seed=1)
    write_corpus(work / "valid", pairs, 3000, seed=2)
    print(f"wrote {args.pairs:,} synthetic pairs in {time.perf_counter() - t0:.0f}s", file=sys.stderr)

    prepare = [sys.executable, "-m", "nmt.prepare", "data=wmt14_en_de", "data.source=text", "data.name=bench",
               f"data.train={work / 'train'}", f"data.valid={work / 'valid'}", f"data.cache_dir={work / 'cache'}"]
    seconds, prepare_rss, out = run_measured(prepare, ROOT)
    cache = Path(out.strip().splitlines()[-1])
    stats = json.loads((cache / "stats.json").read_text())["train"]
    iterate = [sys.executable, "-c", ITERATOR.format(root=str(ROOT), cache=str(cache), max_tokens=args.max_tokens)]
    iterator_seconds, _, out = run_measured(iterate, ROOT)
    iterator = json.loads(out.strip().splitlines()[-1])
    cache_mib = sum(p.stat().st_size for p in cache.iterdir()) / 2 ** 20

    figures = {"pairs": args.pairs, "prepare_seconds": round(seconds, 1),
               "pairs_per_second": round(args.pairs / seconds), "prepare_peak_rss_mib": round(prepare_rss),
               "iterator_peak_rss_mib": round(iterator["peak_rss_mib"]), "cache_mib": round(cache_mib),
               "padding_fraction": round(iterator["padding_fraction"], 4)}
    print(f"{'pairs':<28}{args.pairs:>14,}")
    print(f"{'kept after cleaning':<28}{stats['kept']:>14,}   removed: {stats['removed']}")
    print(f"{'prepare seconds':<28}{seconds:>14.1f}")
    print(f"{'pairs per second':<28}{figures['pairs_per_second']:>14,}")
    print(f"{'prepare peak RSS (MiB)':<28}{prepare_rss:>14.0f}   (process and its workers)")
    print(f"{'iterator peak RSS (MiB)':<28}{iterator['peak_rss_mib']:>14.0f}   ({iterator['batches']:,} batches "
          f"in {iterator_seconds:.0f}s)")
    print(f"{'cache size (MiB)':<28}{cache_mib:>14.0f}")
    print(f"{'padding fraction':<28}{iterator['padding_fraction']:>14.4f}   (max_tokens={args.max_tokens})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
