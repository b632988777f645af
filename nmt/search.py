"""Greedy and batched beam search over the models' encode / decode_step interface.

Beam search decodes all sentences and all their beams as one tensor program. A sentence
leaves the active set as soon as it is done, so the work shrinks as sentences finish;
its cached state follows the survivors through one index_select per tensor.
"""

import math
from dataclasses import dataclass

import torch

from nmt.data.batching import pad_sources
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID


@dataclass(frozen=True)
class SearchSettings:
    beam_size: int = 5
    length_penalty: float = 0.6  # GNMT alpha
    length_norm: str = "gnmt"  # gnmt | average | none
    max_len_a: float = 1.5
    max_len_b: int = 10
    nbest: int = 1


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # length-normalized log-probability, what the ranking uses
    log_prob: float
    attention: torch.Tensor | None = None  # (len + 1, src_len), when asked for


def length_normalizer(length: int | torch.Tensor, settings: SearchSettings):
    """Divides a hypothesis' log-probability: GNMT ((5 + |Y|) / 6)^alpha, |Y|, or 1."""
    if settings.length_penalty < 0:
        raise ValueError("a negative length penalty would reward short outputs without bound")
    if settings.length_norm == "gnmt":
        return ((5.0 + length) / 6.0) ** settings.length_penalty
    if settings.length_norm == "average":
        return length
    if settings.length_norm == "none":
        return 1.0
    raise ValueError(f"length_norm must be gnmt, average or none, not {settings.length_norm!r}")


def reorder_state(state: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Keep and reorder batch rows of every cached tensor; nothing is recomputed."""
    return {key: value.index_select(0, index) for key, value in state.items()}


def reorder_beams(state: dict[str, torch.Tensor], index: torch.Tensor,
                  encoder_index: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Decoder entries (one row per beam) follow `index`. Encoder entries ("enc_" keys) are one
    row per sentence, shared by its beams: they follow `encoder_index` (the surviving sentences)
    or, when None, stay as they are."""
    return {key: (value if encoder_index is None else value.index_select(0, encoder_index))
            if key.startswith("enc_") else value.index_select(0, index) for key, value in state.items()}


def max_output_lengths(src: torch.Tensor, settings: SearchSettings, max_positions: int) -> torch.Tensor:
    """a * source_length + b tokens (the source without its EOS), within the model's positions."""
    src_lengths = (src != PAD_ID).sum(1) - 1
    limits = (settings.max_len_a * src_lengths.float() + settings.max_len_b).long()
    return limits.clamp(min=1, max=max_positions - 1)  # (batch,)


def _forbid_specials(log_probs: torch.Tensor) -> torch.Tensor:
    log_probs[:, PAD_ID] = -math.inf
    log_probs[:, BOS_ID] = -math.inf
    log_probs[:, UNK_ID] = -math.inf
    return log_probs


def _force_eos(log_probs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows at their length limit may only end; EOS keeps its real log-probability."""
    if not rows.any():
        return log_probs
    eos = log_probs[rows, EOS_ID]
    log_probs[rows] = -math.inf
    log_probs[rows, EOS_ID] = eos
    return log_probs


@torch.no_grad()
def greedy_search(model, src: torch.Tensor, settings: SearchSettings,
                  need_attention: bool = False) -> list[list[Hypothesis]]:
    """The most likely next token at each step, all sentences at once; finished rows drop out."""
    batch = src.size(0)
    state = model.encode(src)
    limits = max_output_lengths(src, settings, model.max_positions)
    active = torch.arange(batch, device=src.device)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    log_prob = [0.0] * batch
    attention: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    step = 0
    while active.numel() > 0:
        log_probs, state, alpha = model.decode_step(prev, state, need_attention=need_attention)
        log_probs = _forbid_specials(log_probs)
        log_probs = _force_eos(log_probs, limits[active] <= step)
        best_lp, best = log_probs.max(dim=1)
        finished = best == EOS_ID
        for row, (sentence, token, lp) in enumerate(zip(active.tolist(), best.tolist(), best_lp.tolist())):
            log_prob[sentence] += lp
            if token != EOS_ID:
                tokens[sentence].append(token)
            if need_attention:
                attention[sentence].append(alpha[row].cpu())
        keep = (~finished).nonzero().squeeze(1)
        if keep.numel() < active.numel():
            state = reorder_state(state, keep)
        active, prev = active[keep], best[keep]
        step += 1
    return [[Hypothesis(tokens[i], log_prob[i] / length_normalizer(len(tokens[i]) + 1, settings), log_prob[i],
                        torch.stack(attention[i]) if need_attention else None)] for i in range(batch)]


@torch.no_grad()
def beam_search(model, src: torch.Tensor, settings: SearchSettings,
                need_attention: bool = False) -> list[list[Hypothesis]]:
    """The `nbest` best-scoring hypotheses per sentence, best first.

    Each step keeps the beam_size best unfinished extensions of every sentence out of
    the 2 * beam_size best candidates; candidates ending in EOS are finished. A sentence
    is done when beam_size hypotheses have finished, or when no active beam can still
    beat its nbest-th finished one: log-probabilities only fall, so an active beam's best
    possible score is its current log-probability over the largest normalizer it can reach.
    """
    k = settings.beam_size
    batch, device = src.size(0), src.device
    # Decoder entries get a row per beam; encoder entries stay one per sentence.
    state = reorder_beams(model.encode(src), torch.arange(batch, device=device).repeat_interleave(k), None)
    limits = max_output_lengths(src, settings, model.max_positions)
    # Per active sentence: its index, beam scores (n, k), token history (n * k, step).
    sentences = torch.arange(batch, device=device)
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # all beams start identical; only the first may expand
    history = torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device)
    attn_history: torch.Tensor | None = None  # (n * k, step, src_len)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    step = 0
    while sentences.numel() > 0:
        n = sentences.numel()
        log_probs, state, alpha = model.decode_step(history[:, -1], state, need_attention=need_attention)
        log_probs = _forbid_specials(log_probs)
        vocab = log_probs.size(1)
        log_probs = _force_eos(log_probs, (limits[sentences] <= step).repeat_interleave(k))
        if need_attention:
            attn_history = alpha.unsqueeze(1) if attn_history is None else torch.cat([attn_history, alpha.unsqueeze(1)], 1)
        candidates = (scores.unsqueeze(2) + log_probs.view(n, k, vocab)).view(n, k * vocab)
        cand_scores, cand_ids = candidates.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)
        cand_beams, cand_tokens = cand_ids // vocab, cand_ids % vocab
        is_eos = (cand_tokens == EOS_ID) & (cand_scores > -math.inf)

        # Only EOS among a sentence's k best candidates finishes a hypothesis (as in fairseq);
        # the bookkeeping is Python over a few rows, so fetch the small tensors once.
        eos_positions = is_eos[:, :k].nonzero().tolist()
        if eos_positions:
            norm = length_normalizer(step + 1, settings)
            score_rows, beam_rows, active = cand_scores.tolist(), cand_beams.tolist(), sentences.tolist()
            for row, col in eos_positions:
                beam_row = row * k + beam_rows[row][col]
                lp = score_rows[row][col]
                finished[active[row]].append(Hypothesis(
                    history[beam_row, 1:].tolist(), lp / norm, lp,
                    attn_history[beam_row].cpu() if need_attention else None))

        # The k best candidates that did not end, per sentence, become the new beams.
        alive_scores = cand_scores.masked_fill(is_eos, -math.inf)
        alive_scores, order = alive_scores.topk(k, dim=1)  # (n, k)
        beams = cand_beams.gather(1, order)
        tokens = cand_tokens.gather(1, order)
        rows = (torch.arange(n, device=device).unsqueeze(1) * k + beams).view(-1)  # (n * k,)

        done = [_is_done(finished[s], best, limit, step, settings) for s, best, limit in
                zip(sentences.tolist(), alive_scores[:, 0].tolist(), limits[sentences].tolist())]
        keep = torch.tensor([not d for d in done], device=device)
        keep_rows = rows.view(n, k)[keep].view(-1)
        # Encoder entries are one per sentence: they move only when sentences leave.
        state = reorder_beams(state, keep_rows, keep.nonzero().squeeze(1) if any(done) else None)
        history = torch.cat([history[keep_rows], tokens[keep].view(-1, 1)], dim=1)
        if attn_history is not None:
            attn_history = attn_history[keep_rows]
        scores = alive_scores[keep]
        sentences = sentences[keep]
        step += 1
    return [sorted(hyps, key=lambda h: -h.score)[:settings.nbest] for hyps in finished]


def _is_done(finished: list[Hypothesis], best_alive: float, limit: int, step: int,
             settings: SearchSettings) -> bool:
    if best_alive == -math.inf or step >= limit:
        return True
    if len(finished) >= settings.beam_size:
        return True
    if len(finished) < settings.nbest:
        return False
    nth_best = sorted((h.score for h in finished), reverse=True)[settings.nbest - 1]
    # Scores are <= 0, so the largest normalizer gives the best score an active beam can reach.
    return best_alive / length_normalizer(limit + 1, settings) <= nth_best


def search(model, src: torch.Tensor, settings: SearchSettings, need_attention: bool = False) -> list[list[Hypothesis]]:
    """Beam search, or the faster greedy path when the beam is one and one best is asked."""
    if settings.beam_size == 1 and settings.nbest == 1:
        return greedy_search(model, src, settings, need_attention)
    return beam_search(model, src, settings, need_attention)


def search_corpus(model, sources: list, settings: SearchSettings, max_tokens: int, device: torch.device,
                  need_attention: bool = False, on_batch=None) -> list[list[Hypothesis]]:
    """Search every source (a sequence of ids, without EOS) in batches of at most `max_tokens`
    source tokens, shortest first to keep padding small; results come back in input order."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    start = 0
    while start < len(order):
        end = start + 1
        # Beams multiply the rows, so the budget counts every beam's copy of the source.
        while end < len(order) and (end + 1 - start) * (len(sources[order[end]]) + 1) * settings.beam_size <= max_tokens:
            end += 1
        chunk = order[start:end]
        src = pad_sources([sources[i] for i in chunk]).to(device)
        for i, hyps in zip(chunk, search(model, src, settings, need_attention)):
            results[i] = hyps
        if on_batch is not None:
            on_batch(len(chunk))
        start = end
    return results
