"""Terminology constraints on a test set, with an oracle glossary as in Post & Vilar (2018): up to
`--terms` words of each reference (chosen at random with a fixed seed among its words of at least
`--min-chars` letters) must appear in the translation. Compares constrained against unconstrained
beam search on the same checkpoint and settings: how many terms appear (coverage), time, and BLEU.

Coverage is counted twice: a term that appears in its translation's text at all (what the search
guarantees: its subwords are in the output), and one that appears as a whole word (the subword a
term ends with may be continued, as "Hund" in "Hunde", which the search does not forbid).

    python scripts/bench_constraints.py --checkpoint PATH --input test.en --reference test.de

Prints a table, then (last line) one JSON object of the figures.
"""

import argparse
import json
import random
import re
import time
from pathlib import Path

import torch
from sacrebleu import corpus_bleu

from nmt.backends import Translator
from nmt.config import SearchSettings
from nmt.io import read_lines


def oracle_terms(references: list[str], count: int, min_chars: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    terms = []
    for reference in references:
        words = list(dict.fromkeys(w for w in re.findall(r"\w+", reference) if len(w) >= min_chars))
        terms.append(rng.sample(words, min(count, len(words))))
    return terms


def coverage(outputs: list[str], terms: list[list[str]], whole_words: bool) -> float:
    """The share of terms that appear in their translation, anywhere or as whole words."""
    found = total = 0
    for output, line_terms in zip(outputs, terms):
        words = set(re.findall(r"\w+", output))
        found += sum((term in words) if whole_words else (term in output) for term in line_terms)
        total += len(line_terms)
    return found / max(total, 1)


def timed(translator: Translator, lines: list[str], settings: SearchSettings, max_tokens: int,
          terms: list[list[str]] | None) -> tuple[list[str], float]:
    start = time.perf_counter()
    hyps = translator.translate_hypotheses(lines, settings, max_tokens, constraints=terms)
    seconds = time.perf_counter() - start
    return [translator.vocab.decode(h[0].tokens) for h in hyps], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--terms", type=int, default=2, help="terms per sentence, at most")
    parser.add_argument("--min-chars", type=int, default=4, help="shortest word taken as a term")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = read_lines(Path(args.input).read_bytes(), args.input)[0]
    references = read_lines(Path(args.reference).read_bytes(), args.reference)[0]
    terms = oracle_terms(references, args.terms, args.min_chars, args.seed)
    translator = Translator.from_checkpoint(args.checkpoint, "cpu")
    settings = SearchSettings(beam_size=args.beam_size)
    plain, plain_seconds = timed(translator, lines, settings, args.max_tokens, None)
    kept, kept_seconds = timed(translator, lines, settings, args.max_tokens, terms)
    rows = {"unconstrained": (plain, plain_seconds), "constrained": (kept, kept_seconds)}
    figures = {name: {"seconds": round(seconds, 2), "coverage": round(100 * coverage(outputs, terms, False), 2),
                      "coverage_whole_words": round(100 * coverage(outputs, terms, True), 2),
                      "bleu": round(corpus_bleu(outputs, [references]).score, 2)}
               for name, (outputs, seconds) in rows.items()}
    print(f"{len(lines)} sentences of {args.input}, {sum(map(len, terms))} oracle terms (up to {args.terms} per "
          f"sentence, words of {args.min_chars}+ letters, seed {args.seed}); beam {args.beam_size}, "
          f"{settings.length_norm.value} length penalty {settings.length_penalty}, {args.threads} threads")
    print(f"{'search':<16}{'seconds':>9}{'coverage %':>12}{'as words %':>12}{'BLEU':>7}")
    for name, f in figures.items():
        print(f"{name:<16}{f['seconds']:>9.2f}{f['coverage']:>12.2f}{f['coverage_whole_words']:>12.2f}"
              f"{f['bleu']:>7.2f}")
    ratio = kept_seconds / plain_seconds
    print(f"time constrained / unconstrained: {ratio:.2f}")
    print(json.dumps({"sentences": len(lines), "terms": sum(map(len, terms)), "beam_size": args.beam_size,
                      "threads": args.threads, "time_ratio": round(ratio, 3), **figures}))


if __name__ == "__main__":
    main()
