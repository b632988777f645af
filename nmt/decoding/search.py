"""Greedy and batched beam search over the models' encode / decode_step interface, and the loop that
sampling (nmt/decoding/sampling.py) shares with greedy search.

Beam search decodes all sentences and all their beams as one tensor program. A sentence
leaves the active set as soon as it is done, so the work shrinks as sentences finish;
its cached state follows the survivors through one index_select per tensor.
"""

import bisect
import math
from dataclasses import dataclass
from typing import Callable

import torch

from nmt.choices import LengthNorm, Sampling
from nmt.config.decode import SearchSettings
from nmt.data.batching import fill_budget, pad_sources
from nmt.data.vocab import BOS_ID, EOS_ID, NEVER_PRODUCED, PAD_ID
from nmt.decoding.constraints import Candidate, ConstraintState, Phrase, allocate, initial_state
from nmt.decoding.sampling import TokenSampler
from nmt.models.interface import DecoderState, EncoderDecoder, token_limit


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # length-normalized log-probability, what the ranking uses
    log_prob: float
    attention: torch.Tensor | None = None  # (len + 1, src_len), when asked for
    token_log_probs: list[float] | None = None  # per token, the EOS last: what scoring a given target reports


def length_normalizer(length: int | torch.Tensor, settings: SearchSettings):
    """Divides a hypothesis' log-probability: GNMT ((5 + |Y|) / 6)^alpha, |Y|, |Y|^alpha or 1."""
    if settings.length_norm is LengthNorm.gnmt:
        return ((5.0 + length) / 6.0) ** settings.length_penalty
    if settings.length_norm is LengthNorm.average:
        return length
    if settings.length_norm is LengthNorm.power:
        return length ** settings.length_penalty
    return 1.0


def max_output_lengths(src: torch.Tensor, settings: SearchSettings, max_positions: int) -> torch.Tensor:
    """a * source_length + b tokens (the source without its EOS), within the model's positions."""
    src_lengths = (src != PAD_ID).sum(1) - 1
    limits = (settings.max_len_a * src_lengths.float() + settings.max_len_b).long()
    return limits.clamp(min=1, max=token_limit(max_positions))  # (batch,)


def _forbid_specials(log_probs: torch.Tensor) -> torch.Tensor:
    log_probs[:, list(NEVER_PRODUCED)] = -math.inf
    return log_probs


def _force_eos(log_probs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows at their length limit may only end; EOS keeps its real log-probability."""
    if not rows.any():
        return log_probs
    eos = log_probs[rows, EOS_ID]
    log_probs[rows] = -math.inf
    log_probs[rows, EOS_ID] = eos
    return log_probs


# Picks each active row's next token: (log_probs (rows, vocab), the rows' sentences (rows,), step) -> (rows,).
Choose = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def _most_likely(log_probs: torch.Tensor, sentences: torch.Tensor, step: int) -> torch.Tensor:
    return log_probs.max(dim=1).indices


def greedy_search(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings,
                  attention_layer: int | None = None) -> list[list[Hypothesis]]:
    """The most likely next token at each step, all sentences at once; finished rows drop out."""
    return _one_per_sentence(model, src, settings, attention_layer, _most_likely)


@torch.no_grad()
def _one_per_sentence(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings,
                      attention_layer: int | None, choose: Choose) -> list[list[Hypothesis]]:
    """One hypothesis per sentence, token by token, all sentences at once: `choose` picks each row's
    next token from log-probabilities with the specials forbidden and EOS forced at the length cap.
    A hypothesis' log_prob sums the model's log-probabilities of its tokens; finished rows drop out."""
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
        best = choose(log_probs, active, step)
        best_lp = log_probs.gather(1, best.unsqueeze(1)).squeeze(1)
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
    # Per beam row, how far it has met its sentence's constraints (None: the sentence has none);
    # None for the whole batch when no sentence has constraints, so that search runs as it always did.
    constraints: list[ConstraintState | None] | None = None


@torch.no_grad()
def beam_search(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings,
                attention_layer: int | None = None,
                constraints: list[list[Phrase]] | None = None) -> list[list[Hypothesis]]:
    """The `nbest` best-scoring hypotheses per sentence, best first.

    Each step takes the 2 * beam_size best candidates of every sentence; those of its
    beam_size best that end in EOS are finished, and the beam_size best that do not end
    become its beams. A sentence keeps only its nbest best finished hypotheses. It is done
    when it has no beam left, when it reaches its length cap, or when no beam can still beat
    its nbest-th best finished hypothesis: a beam's log-probability only falls as it grows
    and the normalizer only grows, so its log-probability over the normalizer at the cap
    bounds every score it can still reach (with length_norm=none, the log-probability itself).

    `constraints` gives each sentence target phrases (subword ids) that its hypotheses must contain
    before they may end: lexically constrained search with dynamic beam allocation (Post & Vilar
    2018) for those sentences, see `_constrained_step`. Sentences without phrases search as above.
    """
    k, batch, device = settings.beam_size, src.size(0), src.device
    scores = torch.full((batch, k), -math.inf, device=device)
    scores[:, 0] = 0.0  # all beams start identical; only the first may expand
    # Decoder rows are one per beam; encoder rows stay one per sentence.
    decoder = model.encode(src).reorder(torch.arange(batch, device=device).repeat_interleave(k))
    states = None
    if constraints is not None and any(constraints):
        states = [initial_state(phrases) if phrases else None for phrases in constraints for _ in range(k)]
    beams = _Beams(torch.arange(batch, device=device), scores,
                   torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device), None, decoder, states)
    limits = max_output_lengths(src, settings, model.max_positions)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]  # per sentence its nbest best, best first
    # Constrained sentences only: hypotheses ended at the length cap without meeting every phrase.
    fallbacks: list[list[tuple[int, Hypothesis]]] = [[] for _ in range(batch)]
    step = 0
    while beams.sentences.numel() > 0:
        log_probs, beams.decoder, alpha = model.decode_step(beams.history[:, -1], beams.decoder, attention_layer)
        at_cap = (limits[beams.sentences] <= step).repeat_interleave(k)
        log_probs = _force_eos(_forbid_specials(log_probs), at_cap)
        if beams.constraints is not None:
            _forbid_unmet_ends(log_probs, beams.constraints, at_cap)
        if alpha is not None:
            alpha = alpha.unsqueeze(1)
            beams.attention = alpha if beams.attention is None else torch.cat([beams.attention, alpha], 1)
        beams = _advance(beams, log_probs, finished, fallbacks, limits, step, settings)
        step += 1
    # A constrained sentence none of whose hypotheses met every phrase by the cap gets those that met the most.
    return [best or [h for _, h in fallback] for best, fallback in zip(finished, fallbacks)]


def _forbid_unmet_ends(log_probs: torch.Tensor, states: list[ConstraintState | None], at_cap: torch.Tensor) -> None:
    """A hypothesis may end only once it has met all its phrases; at the cap it must end all the same."""
    rows = [row for row, (state, capped) in enumerate(zip(states, at_cap.tolist()))
            if state is not None and not state.all_met and not capped]
    if rows:
        log_probs[rows, EOS_ID] = -math.inf


def _advance(beams: _Beams, log_probs: torch.Tensor, finished: list[list[Hypothesis]],
             fallbacks: list[list[tuple[int, Hypothesis]]], limits: torch.Tensor, step: int,
             settings: SearchSettings) -> _Beams:
    """One step of beam search: finish the candidates that end, keep the best k that go on, and
    drop the sentences that are done."""
    k, n, vocab = settings.beam_size, beams.sentences.numel(), log_probs.size(1)
    candidates = (beams.scores.unsqueeze(2) + log_probs.view(n, k, vocab)).view(n, k * vocab)
    cand_scores, cand_ids = candidates.topk(min(2 * k, k * vocab), dim=1)  # (n, 2k)
    cand_beams, cand_tokens = cand_ids // vocab, cand_ids % vocab
    is_eos = (cand_tokens == EOS_ID) & (cand_scores > -math.inf)
    ends = is_eos[:, :k]
    if beams.constraints is not None:  # constrained sentences finish in _constrained_step
        ends = ends & torch.tensor([s is None for s in beams.constraints[::k]], device=ends.device).unsqueeze(1)
    _finish(beams, cand_scores, cand_beams, ends, finished, step, settings)

    # The k best candidates that did not end, per sentence, become the new beams.
    alive_scores, order = cand_scores.masked_fill(is_eos, -math.inf).topk(k, dim=1)  # (n, k)
    rows = (torch.arange(n, device=log_probs.device).unsqueeze(1) * k + cand_beams.gather(1, order)).view(-1)
    tokens = cand_tokens.gather(1, order)
    states = None
    if beams.constraints is not None:
        alive_scores, rows, tokens, states = _constrained_step(beams, log_probs, cand_scores, cand_ids, alive_scores,
                                                               rows, tokens, finished, fallbacks, limits, step,
                                                               settings)
    done = [_is_done(finished[s], best, limit, step, settings) for s, best, limit in
            zip(beams.sentences.tolist(), alive_scores[:, 0].tolist(), limits[beams.sentences].tolist())]
    keep = torch.tensor([not d for d in done], device=log_probs.device)
    keep_rows = rows.view(n, k)[keep].view(-1)
    return _Beams(
        beams.sentences[keep], alive_scores[keep],
        torch.cat([beams.history[keep_rows], tokens[keep].view(-1, 1)], dim=1),
        beams.attention[keep_rows] if beams.attention is not None else None,
        # Encoder rows are one per sentence: they move only when sentences leave.
        beams.decoder.reorder(keep_rows, keep.nonzero().squeeze(1) if any(done) else None),
        [state for state, kept in zip(states, keep.repeat_interleave(k).tolist()) if kept] if states else None)


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
        if _ranks(best, lp / norm, nbest):
            _insert(best, _ended(beams, row * k + beam_rows[row][col], lp, norm), nbest)


def _ranks(best: list[Hypothesis], score: float, nbest: int) -> bool:
    """Whether a hypothesis of this score enters the nbest best (an equal score ranks after the earlier one)."""
    return len(best) < nbest or score > best[-1].score


def _insert(best: list[Hypothesis], hypothesis: Hypothesis, nbest: int) -> None:
    bisect.insort(best, hypothesis, key=lambda h: -h.score)
    del best[nbest:]


def _ended(beams: _Beams, beam_row: int, log_prob: float, norm: float) -> Hypothesis:
    """The hypothesis of a beam that ends with EOS now (its attention copied only here, for those kept)."""
    attention = beams.attention[beam_row].cpu() if beams.attention is not None else None
    return Hypothesis(beams.history[beam_row, 1:].tolist(), log_prob / norm, log_prob, attention)


def _constrained_step(beams: _Beams, log_probs: torch.Tensor, cand_scores: torch.Tensor, cand_ids: torch.Tensor,
                      alive_scores: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor,
                      finished: list[list[Hypothesis]], fallbacks: list[list[tuple[int, Hypothesis]]],
                      limits: torch.Tensor, step: int, settings: SearchSettings):
    """The endings and the new beams of the sentences with constraints; the others keep theirs.

    - A beam that has met all its phrases may end: its EOS extension is a finished hypothesis,
      whether or not it is among the k best candidates.
    - At the length cap every beam ends. One that has not met all its phrases is kept as a
      fallback, ranked by the phrases it met, then by score.
    - The new beams are chosen by dynamic beam allocation (`constraints.allocate`) from the 2k best
      extensions, each beam's best extension, and each beam's extensions by a token that advances
      a phrase (Hu et al. 2019's candidates), so a phrase can always be begun or continued.

    Returns the (n, k) scores, (n * k,) source rows, (n, k) tokens and the (n * k) states of the new beams.
    """
    k, vocab, nbest = settings.beam_size, log_probs.size(1), settings.nbest
    states, n = beams.constraints, beams.sentences.numel()
    constrained = [i for i in range(n) if states[i * k] is not None]
    beam_scores, active, caps = beams.scores.tolist(), beams.sentences.tolist(), limits[beams.sentences].tolist()
    # The log-probabilities this needs, fetched in one gather: each live beam's EOS and phrase tokens.
    wanted = [(i * k + b, t) for i in constrained for b in range(k) if beam_scores[i][b] > -math.inf
              for t in (EOS_ID, *states[i * k + b].next_tokens())]
    fetched = log_probs[[r for r, _ in wanted], [t for _, t in wanted]].tolist() if wanted else []
    value = dict(zip(wanted, fetched))
    top_lp, top_tokens = (x.tolist() for x in log_probs.view(n, k, vocab)[constrained].topk(2, dim=2))
    new_scores, new_rows, new_tokens = alive_scores.tolist(), rows.tolist(), tokens.tolist()
    new_states: list[ConstraintState | None] = [states[row] for row in new_rows]
    norm = length_normalizer(step + 1, settings)
    for c, i in enumerate(constrained):
        sentence, capped = active[i], step >= caps[i]
        extensions: dict[tuple[int, int], float] = {}
        for b in range(k):
            base, state = beam_scores[i][b], states[i * k + b]
            if base == -math.inf:
                continue
            end = base + value[(i * k + b, EOS_ID)]
            if end > -math.inf and state.all_met and _ranks(finished[sentence], end / norm, nbest):
                _insert(finished[sentence], _ended(beams, i * k + b, end, norm), nbest)
            elif end > -math.inf and capped:
                _keep_fallback(fallbacks[sentence], len(state.met), _ended(beams, i * k + b, end, norm), nbest)
            if capped:
                continue
            extensions.update({(b, t): base + value[(i * k + b, t)] for t in state.next_tokens()})
            best_token = next(t for t in top_tokens[c][b] if t != EOS_ID)
            extensions[(b, best_token)] = base + top_lp[c][b][top_tokens[c][b].index(best_token)]
        if not capped:
            for lp, index in zip(cand_scores[i].tolist(), cand_ids[i].tolist()):
                b, t = divmod(index, vocab)
                if t != EOS_ID:
                    extensions[(b, t)] = lp
        chosen = allocate([Candidate(b, t, lp, states[i * k + b].advance(t))
                           for (b, t), lp in extensions.items() if lp > -math.inf], k)
        for j in range(k):
            pick = chosen[j] if j < len(chosen) else None
            new_scores[i][j] = pick.log_prob if pick else -math.inf
            new_rows[i * k + j] = i * k + (pick.beam if pick else 0)
            new_tokens[i][j] = pick.token if pick else PAD_ID
            new_states[i * k + j] = pick.state if pick else states[i * k]
    device = log_probs.device
    return (torch.tensor(new_scores, device=device), torch.tensor(new_rows, device=device),
            torch.tensor(new_tokens, device=device), new_states)


def _keep_fallback(fallback: list[tuple[int, Hypothesis]], met: int, hypothesis: Hypothesis, nbest: int) -> None:
    """The nbest hypotheses that met the most phrases, then scored best, most first."""
    bisect.insort(fallback, (met, hypothesis), key=lambda entry: (-entry[0], -entry[1].score))
    del fallback[nbest:]


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


def search(model: EncoderDecoder, src: torch.Tensor, settings: SearchSettings, attention_layer: int | None = None,
           constraints: list[list[Phrase]] | None = None) -> list[list[Hypothesis]]:
    """Beam search, or the faster greedy path when the beam is one, one best is asked and nothing is
    constrained. (Under a length normalization, beam_search with a beam of one can go on past greedy's
    first EOS while a longer output could still score better; a beam of one here means greedy.)
    `attention_layer` (None: no attention) is passed to the model's decode_step; `constraints`, one
    list of phrases per sentence, to beam_search. With `settings.sampling` set, each sentence gets one
    sampled hypothesis (nmt/decoding/sampling.py) whose score and log_prob are the model's own
    log-probabilities of its tokens, before any temperature or truncation."""
    if settings.sampling is not Sampling.none:
        if constraints and any(constraints):
            raise ValueError("sampling cannot honour constraints; they need beam search")
        steps = int(max_output_lengths(src, settings, model.max_positions).max()) + 1  # the EOS at the cap too
        return _one_per_sentence(model, src, settings, attention_layer, TokenSampler(src, settings, steps))
    if settings.beam_size == 1 and settings.nbest == 1 and not (constraints and any(constraints)):
        return greedy_search(model, src, settings, attention_layer)
    return beam_search(model, src, settings, attention_layer, constraints)


def search_corpus(model: EncoderDecoder, sources: list, settings: SearchSettings, max_tokens: int,
                  device: torch.device, attention_layer: int | None = None,
                  on_batch: Callable[[int], None] | None = None,
                  constraints: list[list[Phrase]] | None = None) -> list[list[Hypothesis]]:
    """Search every source (a sequence of ids, without EOS) in batches of at most `max_tokens`
    source tokens, shortest first to keep padding small; results come back in input order.
    `constraints`, when given, holds each source's target phrases."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    # Beams multiply the rows, so the budget counts every beam's copy of the source and its EOS.
    costs = [(len(sources[i]) + 1) * settings.beam_size for i in order]
    results: list[list[Hypothesis]] = [[] for _ in sources]
    for begin, end in fill_budget(costs, max_tokens):
        chunk = order[begin:end]
        src = pad_sources([sources[i] for i in chunk]).to(device)
        chunk_constraints = [constraints[i] for i in chunk] if constraints is not None else None
        for i, hyps in zip(chunk, search(model, src, settings, attention_layer, chunk_constraints)):
            results[i] = hyps
        if on_batch is not None:
            on_batch(len(chunk))
    return results
