"""Greedy and batched beam search over the models' encode / decode_step interface.

Beam search decodes all sentences and all their beams as one tensor program. A sentence
leaves the active set as soon as it is done, so the work shrinks as sentences finish;
its cached state follows the survivors through one index_select per tensor.
"""

import bisect
import math
from dataclasses import dataclass
from typing import Callable

import torch

from nmt.choices import LengthNorm
from nmt.config.decode import SearchSettings
from nmt.data.batching import fill_budget, pad_sources
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.models.interface import DecoderState, EncoderDecoder, token_limit


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # length-normalized log-probability, what the ranking uses
    log_prob: float
    attention: torch.Tensor | None = None  # (len + 1, src_len), when asked for


def length_normalizer(length: int | torch.Tensor, settings: SearchSettings):
    """Divides a hypothesis' log-probability: GNMT ((5 + |Y|) / 6)^alpha, |Y|, or 1."""
    if settings.length_norm is LengthNorm.gnmt:
        return ((5.0 + length) / 6.0) ** settings.length_penalty
    if settings.length_norm is LengthNorm.average:
        return length
    return 1.0


def max_output_lengths(src: torch.Tensor, settings: SearchSettings, max_positions: int) -> torch.Tensor:
    """a * source_length + b tokens (the source without its EOS), within the model's positions."""
    src_lengths = (src != PAD_ID).sum(1) - 1
    limits = (settings.max_len_a * src_lengths.float() + settings.max_len_b).long()
    return limits.clamp(min=1, max=token_limit(max_positions))  # (batch,)


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
def greedy_search(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings,
                  attention_layer: int | None = None) -> list[list[Hypothesis]]:
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
        log_probs, state, alpha = model.decode_step(prev, state, attention_layer)
        log_probs = _force_eos(_forbid_specials(log_probs), limits[active] <= step)
        best_lp, best = log_probs.max(dim=1)
        for row, (sentence, token, lp) in enumerate(zip(active.tolist(), best.tolist(), best_lp.tolist())):
            log_prob[sentence] += lp
            if token != EOS_ID:
                tokens[sentence].append(token)
            if alpha is not None:
                attention[sentence].append(alpha[row].cpu())
        keep = (best != EOS_ID).nonzero().squeeze(1)
        if keep.numel() < active.numel():
            state = state.reorder(keep, keep)  # one hypothesis per sentence: both parts follow
        active, prev = active[keep], best[keep]
        step += 1
    return [[Hypothesis(tokens[i], log_prob[i] / length_normalizer(len(tokens[i]) + 1, settings), log_prob[i],
                        torch.stack(attention[i]) if attention_layer is not None else None)] for i in range(batch)]


@dataclass
class _Beams:
    """The search's own state for the sentences still active: (n, k) scores, (n * k, step) tokens."""

    sentences: torch.Tensor  # (n,) their indices in the batch
    scores: torch.Tensor  # (n, k) log-probabilities of the beams
    history: torch.Tensor  # (n * k, step + 1) tokens so far, BOS first
    attention: torch.Tensor | None  # (n * k, step, src_len) when asked for
    decoder: DecoderState


@torch.no_grad()
def beam_search(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings,
                attention_layer: int | None = None) -> list[list[Hypothesis]]:
    """The `nbest` best-scoring hypotheses per sentence, best first.

    Each step takes the 2 * beam_size best candidates of every sentence; those of its
    beam_size best that end in EOS are finished, and the beam_size best that do not end
    become its beams. A sentence keeps only its nbest best finished hypotheses. It is done
    when it has no beam left, when it reaches its length cap, or when no beam can still beat
    its nbest-th best finished hypothesis: a beam's log-probability only falls as it grows
    and the normalizer only grows, so its log-probability over the normalizer at the cap
    bounds every score it can still reach (with length_norm=none, the log-probability itself).
    """
    k, batch, device = settings.beam_size, src.size(0), src.device
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # all beams start identical; only the first may expand
    # Decoder rows are one per beam; encoder rows stay one per sentence.
    decoder = model.encode(src).reorder(torch.arange(batch, device=device).repeat_interleave(k))
    beams = _Beams(torch.arange(batch, device=device), scores,
                   torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device), None, decoder)
    limits = max_output_lengths(src, settings, model.max_positions)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]  # per sentence its nbest best, best first
    step = 0
    while beams.sentences.numel() > 0:
        log_probs, beams.decoder, alpha = model.decode_step(beams.history[:, -1], beams.decoder, attention_layer)
        log_probs = _force_eos(_forbid_specials(log_probs), (limits[beams.sentences] <= step).repeat_interleave(k))
        if alpha is not None:
            alpha = alpha.unsqueeze(1)
            beams.attention = alpha if beams.attention is None else torch.cat([beams.attention, alpha], 1)
        beams = _advance(beams, log_probs, finished, limits, step, settings)
        step += 1
    return finished


def _advance(beams: _Beams, log_probs: torch.Tensor, finished: list[list[Hypothesis]], limits: torch.Tensor,
             step: int, settings: SearchSettings) -> _Beams:
    """One step of beam search: finish the candidates that end, keep the best k that go on, and
    drop the sentences that are done."""
    k, n, vocab = settings.beam_size, beams.sentences.numel(), log_probs.size(1)
    candidates = (beams.scores.unsqueeze(2) + log_probs.view(n, k, vocab)).view(n, k * vocab)
    cand_scores, cand_ids = candidates.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)
    cand_beams, cand_tokens = cand_ids // vocab, cand_ids % vocab
    is_eos = (cand_tokens == EOS_ID) & (cand_scores > -math.inf)
    _finish(beams, cand_scores, cand_beams, is_eos[:, :k], finished, step, settings)

    # The k best candidates that did not end, per sentence, become the new beams.
    alive_scores, order = cand_scores.masked_fill(is_eos, -math.inf).topk(k, dim=1)  # (n, k)
    rows = (torch.arange(n, device=log_probs.device).unsqueeze(1) * k + cand_beams.gather(1, order)).view(-1)
    tokens = cand_tokens.gather(1, order)
    done = [_is_done(finished[s], best, limit, step, settings) for s, best, limit in
            zip(beams.sentences.tolist(), alive_scores[:, 0].tolist(), limits[beams.sentences].tolist())]
    keep = torch.tensor([not d for d in done], device=log_probs.device)
    keep_rows = rows.view(n, k)[keep].view(-1)
    return _Beams(
        beams.sentences[keep], alive_scores[keep],
        torch.cat([beams.history[keep_rows], tokens[keep].view(-1, 1)], dim=1),
        beams.attention[keep_rows] if beams.attention is not None else None,
        # Encoder rows are one per sentence: they move only when sentences leave.
        beams.decoder.reorder(keep_rows, keep.nonzero().squeeze(1) if any(done) else None))


def _finish(beams: _Beams, cand_scores: torch.Tensor, cand_beams: torch.Tensor, ends: torch.Tensor,
            finished: list[list[Hypothesis]], step: int, settings: SearchSettings) -> None:
    """Only EOS among a sentence's k best candidates finishes a hypothesis (as in fairseq). A sentence
    keeps its nbest best finished hypotheses, best first: all the stopping test and the answer need,
    so memory stays bounded however long it searches. The bookkeeping is Python over a few rows, so
    the small tensors are fetched once."""
    positions = ends.nonzero().tolist()
    if not positions:
        return
    k, nbest, norm = settings.beam_size, settings.nbest, length_normalizer(step + 1, settings)
    score_rows, beam_rows, active = cand_scores.tolist(), cand_beams.tolist(), beams.sentences.tolist()
    for row, col in positions:
        best, lp = finished[active[row]], score_rows[row][col]
        if len(best) == nbest and lp / norm <= best[-1].score:
            continue  # it would rank after all of the nbest best; an equal score ranks after the earlier one
        beam_row = row * k + beam_rows[row][col]
        attention = beams.attention[beam_row].cpu() if beams.attention is not None else None
        bisect.insort(best, Hypothesis(beams.history[beam_row, 1:].tolist(), lp / norm, lp, attention),
                      key=lambda h: -h.score)
        del best[nbest:]


def _is_done(best: list[Hypothesis], best_alive: float, limit: int, step: int, settings: SearchSettings) -> bool:
    """Whether a sentence can stop: it has no beam left, it reached its length cap, or no beam can
    still beat its nbest-th best finished hypothesis (`best`: its nbest best, best first)."""
    if best_alive == -math.inf or step >= limit:
        return True
    if len(best) < settings.nbest:
        return False
    # Log-probabilities are <= 0 and only fall, and the normalizer grows with the length, so the
    # largest normalizer, the one at the cap, gives the best score a beam can still reach; with
    # length_norm=none it is 1. A beam that can at most tie would rank after the earlier hypothesis.
    return best_alive / length_normalizer(limit + 1, settings) <= best[-1].score


def search(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings,
           attention_layer: int | None = None) -> list[list[Hypothesis]]:
    """Beam search, or the faster greedy path when the beam is one and one best is asked. (Under a
    length normalization, beam_search with a beam of one can go on past greedy's first EOS while a
    longer output could still score better; a beam of one here means greedy.) `attention_layer`
    (None: no attention) is passed to the model's decode_step."""
    if settings.beam_size == 1 and settings.nbest == 1:
        return greedy_search(model, src, settings, attention_layer)
    return beam_search(model, src, settings, attention_layer)


def search_corpus(model: EncoderDecoder, sources: list, settings: SearchSettings, max_tokens: int,
                  device: torch.device, attention_layer: int | None = None,
                  on_batch: Callable[[int], None] | None = None) -> list[list[Hypothesis]]:
    """Search every source (a sequence of ids, without EOS) in batches of at most `max_tokens`
    source tokens, shortest first to keep padding small; results come back in input order."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    # Beams multiply the rows, so the budget counts every beam's copy of the source and its EOS.
    costs = [(len(sources[i]) + 1) * settings.beam_size for i in order]
    results: list[list[Hypothesis]] = [[] for _ in sources]
    for begin, end in fill_budget(costs, max_tokens):
        chunk = order[begin:end]
        src = pad_sources([sources[i] for i in chunk]).to(device)
        for i, hyps in zip(chunk, search(model, src, settings, attention_layer)):
            results[i] = hyps
        if on_batch is not None:
            on_batch(len(chunk))
    return results
