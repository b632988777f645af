"""Translation speed of a checkpoint on a test file: greedy and beam 5 in token batches, and
beam 5 one sentence at a time, on the current device.

    python scripts/bench_translate.py --checkpoint PATH --input PATH [--device cpu] [--precision bf16]

Prints a table, then (last line) one JSON object of the figures.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.search import SearchSettings  # noqa: E402
from nmt.translate import read_lines  # noqa: E402
from nmt.translator import Translator  # noqa: E402


def timed(translator: Translator, lines: list[str], settings: SearchSettings, precision: str,
          max_tokens: int) -> tuple[float, int]:
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    hyps = translator.translate_hypotheses(lines, settings, max_tokens, precision)
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, sum(len(h[0].tokens) + 1 for h in hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--max-tokens", type=int, default=8000)
    args = parser.parse_args()
    translator = Translator.from_checkpoint(args.checkpoint, args.device)
    lines = read_lines(Path(args.input).read_bytes(), args.input)
    greedy, beam5 = SearchSettings(beam_size=1), SearchSettings(beam_size=5)
    timed(translator, lines[:50], beam5, args.precision, args.max_tokens)  # warm-up
    rows = {}
    rows["greedy"] = timed(translator, lines, greedy, args.precision, args.max_tokens)
    rows["beam5"] = timed(translator, lines, beam5, args.precision, args.max_tokens)
    one_seconds, one_tokens = 0.0, 0
    for line in lines:
        seconds, tokens = timed(translator, [line], beam5, args.precision, args.max_tokens)
        one_seconds, one_tokens = one_seconds + seconds, one_tokens + tokens
    rows["beam5 one at a time"] = (one_seconds, one_tokens)
    print(f"{len(lines)} sentences from {args.input} on {translator.device} ({args.precision})")
    print(f"{'search':<22} {'seconds':>8} {'sent/s':>8} {'tok/s':>8}")
    for name, (seconds, tokens) in rows.items():
        print(f"{name:<22} {seconds:>8.2f} {len(lines) / seconds:>8.1f} {tokens / seconds:>8.0f}")
    print(f"batched beam 5 is {one_seconds / rows['beam5'][0]:.1f}x faster than one at a time")
    print(json.dumps({"sentences": len(lines), "greedy_seconds": round(rows["greedy"][0], 3),
                      "beam5_seconds": round(rows["beam5"][0], 3),
                      "beam5_one_at_a_time_seconds": round(one_seconds, 3),
                      "device": str(translator.device), "precision": args.precision}))


if __name__ == "__main__":
    main()
