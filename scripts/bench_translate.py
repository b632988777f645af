"""Translation speed of a checkpoint on a test file: greedy and beam 5 in token batches, and
beam 5 one sentence at a time, on the current device.

    python scripts/bench_translate.py --checkpoint PATH --input PATH [--device cpu] [--precision bf16]
        [--single N] [--output FILE]

--single N times only the first N sentences one at a time (on a slow device all of them take
long); --output writes the beam-5 translations, one per input line, for scoring.

Prints a table, then (last line) one JSON object of the figures.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from nmt.io import atomic_write_text
from nmt.search import SearchSettings
from nmt.translate import read_lines
from nmt.translator import Translator


def timed(translator: Translator, lines: list[str], settings: SearchSettings, precision: str,
          max_tokens: int) -> tuple[float, int, list]:
    """Seconds, output tokens (with EOS) and the hypotheses of translating `lines`."""
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    hyps = translator.translate_hypotheses(lines, settings, max_tokens, precision)
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, sum(len(h[0].tokens) + 1 for h in hyps), hyps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--single", type=int, default=0, help="sentences timed one at a time (0: all)")
    parser.add_argument("--output", help="write the beam-5 translations here")
    args = parser.parse_args()
    translator = Translator.from_checkpoint(args.checkpoint, args.device)
    lines = read_lines(Path(args.input).read_bytes(), args.input)
    greedy, beam5 = SearchSettings(beam_size=1), SearchSettings(beam_size=5)
    timed(translator, lines[:50], beam5, args.precision, args.max_tokens)  # warm-up
    rows = {}
    rows["greedy"] = (len(lines), *timed(translator, lines, greedy, args.precision, args.max_tokens)[:2])
    beam_seconds, beam_tokens, hyps = timed(translator, lines, beam5, args.precision, args.max_tokens)
    rows["beam5"] = (len(lines), beam_seconds, beam_tokens)
    single = lines[:args.single] if args.single else lines
    one_seconds, one_tokens = 0.0, 0
    for line in single:
        seconds, tokens, _ = timed(translator, [line], beam5, args.precision, args.max_tokens)
        one_seconds, one_tokens = one_seconds + seconds, one_tokens + tokens
    rows["beam5 one at a time"] = (len(single), one_seconds, one_tokens)
    if args.output:
        atomic_write_text(args.output, "".join(translator.vocab.decode(h[0].tokens) + "\n" for h in hyps))
    device = torch.cuda.get_device_name() if translator.device.type == "cuda" else "cpu"
    print(f"{len(lines)} sentences from {args.input} on {device} ({args.precision})")
    print(f"{'search':<22} {'sentences':>9} {'seconds':>8} {'sent/s':>8} {'tok/s':>8}")
    for name, (count, seconds, tokens) in rows.items():
        print(f"{name:<22} {count:>9} {seconds:>8.2f} {count / seconds:>8.1f} {tokens / seconds:>8.0f}")
    faster = (len(lines) / beam_seconds) / (len(single) / one_seconds)
    print(f"batched beam 5 is {faster:.1f}x faster than one at a time (sentences per second)")
    print(json.dumps({"sentences": len(lines), "greedy_seconds": round(rows["greedy"][1], 3),
                      "beam5_seconds": round(beam_seconds, 3), "single_sentences": len(single),
                      "beam5_one_at_a_time_seconds": round(one_seconds, 3),
                      "device": device, "precision": args.precision}))


if __name__ == "__main__":
    main()
