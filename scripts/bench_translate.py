"""Translation speed and quality of a checkpoint on a test file: greedy and beam 5 in token batches,
beam 5 one sentence at a time, and beam 5 on the fast paths for the same model: CTranslate2 float32
and int8 (exports of the checkpoint) and PyTorch dynamic int8, all with the same thread count.

    python scripts/bench_translate.py --checkpoint PATH --input PATH [--reference PATH] [--threads N]
        [--device cpu] [--precision bf16] [--profile] [--single N] [--output FILE] [--pytorch-only]

--single N times only the first N sentences one at a time (on a slow device all of them take long);
--output writes our beam-5 translations, one per input line, for scoring; --pytorch-only leaves out
the CTranslate2 and int8 rows.

Beam 5 uses length_norm=average in every row, the length normalization CTranslate2 shares with us,
so all rows search for the same thing. --profile prints where our beam search spends its time.
Prints a table, then (last line) one JSON object of the figures.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from sacrebleu import corpus_bleu

from nmt.backends import LineTranslator, Translator
from nmt.backends.ct2 import CT2Translator
from nmt.backends.ct2_export import export_checkpoint
from nmt.choices import LengthNorm, Precision, Quantization
from nmt.config import SearchSettings
from nmt.errors import NmtError
from nmt.io import atomic_write_text, read_lines

GREEDY = SearchSettings(beam_size=1, length_norm=LengthNorm.average)
BEAM5 = SearchSettings(beam_size=5, length_norm=LengthNorm.average)


def timed(translator: LineTranslator, lines: list[str], settings: SearchSettings, precision: Precision,
          max_tokens: int) -> tuple[float, list[str], int]:
    """Seconds, the translations, and the target tokens produced (EOS included)."""
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    hyps = translator.translate_hypotheses(lines, settings, max_tokens, precision)
    if translator.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return seconds, [translator.vocab.decode(h[0].tokens) for h in hyps], sum(len(h[0].tokens) + 1 for h in hyps)


def measure(translator: LineTranslator, lines: list[str], settings: SearchSettings, args,
            references: list[str] | None) -> dict:
    """One row: warm up on 50 lines, then translate them all."""
    precision = Precision(args.precision) if isinstance(translator, Translator) else Precision.fp32
    timed(translator, lines[:50], settings, precision, args.max_tokens)
    seconds, outputs, tokens = timed(translator, lines, settings, precision, args.max_tokens)
    bleu = round(corpus_bleu(outputs, [references]).score, 2) if references else None
    return {"seconds": seconds, "tokens": tokens, "bleu": bleu, "outputs": outputs, "sentences": len(lines)}


def one_at_a_time(translator: Translator, lines: list[str], args) -> dict:
    seconds, tokens = 0.0, 0
    for line in lines:
        s, _, t = timed(translator, [line], BEAM5, Precision(args.precision), args.max_tokens)
        seconds, tokens = seconds + s, tokens + t
    return {"seconds": seconds, "tokens": tokens, "bleu": None, "sentences": len(lines)}


def fast_paths(lines: list[str], args, references: list[str] | None, workdir: Path,
               device: torch.device) -> dict[str, dict]:
    """CTranslate2 float32 and int8 exports and PyTorch dynamic int8 (CPU only), all beam 5."""
    rows = {}
    if device.type == "cpu":
        rows["torch_int8"] = measure(Translator.from_checkpoint(args.checkpoint, "cpu", quantize=True),
                                     lines, BEAM5, args, references)
    for name, quantization in (("ct2_float32", Quantization.none), ("ct2_int8", Quantization.int8)):
        try:
            directory = export_checkpoint(args.checkpoint, workdir / name, quantization)
        except NmtError as error:  # a GRU checkpoint: no CTranslate2 rows
            print(f"no CTranslate2 rows: {error}", file=sys.stderr)
            break
        translator = CT2Translator.from_directory(directory, str(device), threads=args.threads)
        rows[name] = measure(translator, lines, BEAM5, args, references)
    return rows


def profile_beam(translator: Translator, lines: list[str], args) -> None:
    """Where our beam search spends its time: PyTorch's profiler over 200 sentences, on stderr."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        translator.translate_hypotheses(lines[:200], BEAM5, args.max_tokens, Precision(args.precision))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20), file=sys.stderr)


def print_table(rows: dict[str, dict]) -> None:
    labels = {"greedy": "greedy, batched", "beam5": "beam 5, batched", "one": "beam 5, one at a time",
              "ct2_float32": "CTranslate2 float32", "ct2_int8": "CTranslate2 int8",
              "torch_int8": "PyTorch dynamic int8"}
    print(f"{'search':<24} {'sentences':>9} {'seconds':>8} {'sent/s':>8} {'tok/s':>8} {'BLEU':>6}")
    for key, row in rows.items():
        bleu = "" if row["bleu"] is None else f"{row['bleu']:.2f}"
        print(f"{labels[key]:<24} {row['sentences']:>9} {row['seconds']:>8.2f} {row['sentences'] / row['seconds']:>8.1f} "
              f"{row['tokens'] / row['seconds']:>8.0f} {bleu:>6}")
    beam = rows["beam5"]["seconds"]
    if "one" in rows:
        per_second = (rows["beam5"]["sentences"] / beam) / (rows["one"]["sentences"] / rows["one"]["seconds"])
        print(f"batched beam 5 is {per_second:.1f}x faster than one at a time (sentences per second)")
    if "ct2_float32" in rows:
        print(f"our float32 beam 5 takes {beam / rows['ct2_float32']['seconds']:.2f}x CTranslate2 float32's time "
              f"(goal: at most 1.5x); CTranslate2 int8 is {beam / rows['ct2_int8']['seconds']:.2f}x faster than "
              "our float32 (goal: at least 2x)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--reference", help="the input's reference translations, for sacreBLEU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="CPU threads for PyTorch and CTranslate2 alike")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--skip-one-at-a-time", action="store_true",
                        help="leave out the slowest row (minutes on a shared CPU)")
    parser.add_argument("--single", type=int, default=0, help="sentences timed one at a time (0: all)")
    parser.add_argument("--output", help="write our beam-5 translations here")
    parser.add_argument("--pytorch-only", action="store_true", help="no CTranslate2 or int8 rows")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.from_checkpoint(args.checkpoint, args.device)
    lines = read_lines(Path(args.input).read_bytes(), args.input)[0]
    references = read_lines(Path(args.reference).read_bytes(), args.reference)[0] if args.reference else None
    rows = {"greedy": measure(translator, lines, GREEDY, args, references),
            "beam5": measure(translator, lines, BEAM5, args, references)}
    if args.output:
        atomic_write_text(args.output, "".join(line + "\n" for line in rows["beam5"]["outputs"]))
    if not args.skip_one_at_a_time:
        rows["one"] = one_at_a_time(translator, lines[:args.single] if args.single else lines, args)
    if not args.pytorch_only:
        with tempfile.TemporaryDirectory() as workdir:
            rows |= fast_paths(lines, args, references, Path(workdir), translator.device)
    if args.profile:
        profile_beam(translator, lines, args)
    device = torch.cuda.get_device_name() if translator.device.type == "cuda" else "cpu"
    print(f"{len(lines)} sentences from {args.input} on {device} ({args.precision}), "
          f"{args.threads} threads, beam 5 with length_norm=average")
    print_table(rows)
    seconds = {f"{key}_seconds": round(rows[key]["seconds"], 3) if key in rows else None
               for key in ("ct2_float32", "ct2_int8", "torch_int8")}
    print(json.dumps({"sentences": len(lines), "greedy_seconds": round(rows["greedy"]["seconds"], 3),
                      "beam5_seconds": round(rows["beam5"]["seconds"], 3),
                      "beam5_one_at_a_time_seconds": round(rows["one"]["seconds"], 3) if "one" in rows else None,
                      **seconds,
                      "bleu": {key: rows[key]["bleu"] if key in rows else None
                               for key in ("beam5", "ct2_float32", "ct2_int8", "torch_int8")},
                      "single_sentences": rows["one"]["sentences"] if "one" in rows else None,
                      "threads": args.threads, "device": device, "precision": args.precision}))


if __name__ == "__main__":
    main()
