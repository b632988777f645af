"""Filters for the training split; each pair gets the first reason that removes it, or KEEP."""

from dataclasses import dataclass

KEEP, EMPTY, IDENTICAL, TOO_LONG, RATIO, DUPLICATE = range(6)
REASONS = {EMPTY: "empty_side", IDENTICAL: "source_equals_target", TOO_LONG: "over_max_len",
           RATIO: "length_ratio", DUPLICATE: "duplicate"}


@dataclass(frozen=True)
class CleaningRules:
    max_len: int  # subword tokens per side
    max_ratio: float  # longer / shorter side, in subword tokens
    drop_identical: bool
    dedup: bool


def removal_reason(src: str, tgt: str, src_len: int, tgt_len: int, rules: CleaningRules) -> int:
    """Why this pair is dropped (lengths in subword tokens), or KEEP. Duplicates are found later."""
    if not src.strip() or not tgt.strip() or src_len == 0 or tgt_len == 0:
        return EMPTY
    if rules.drop_identical and src.strip() == tgt.strip():
        return IDENTICAL
    if src_len > rules.max_len or tgt_len > rules.max_len:
        return TOO_LONG
    if max(src_len, tgt_len) > rules.max_ratio * min(src_len, tgt_len):
        return RATIO
    return KEEP
