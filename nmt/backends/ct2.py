"""Translation with a CTranslate2 export (`python -m nmt.export`): the Translator API and behaviour
(n-best with scores, our length caps, no UNK) with CTranslate2's beam search doing the work.

Our decoding settings map onto CTranslate2's where it can express them, and are refused where not:
- length_norm=average (score / |Y|, |Y| counting the EOS) is CTranslate2's length_penalty=1 with the
  end token kept in the hypothesis, so its length counts the EOS too; length_norm=power (score / |Y|^alpha)
  is length_penalty=alpha, the setting Argos Translate decodes with (alpha 0.2); length_norm=none is
  length_penalty=0; gnmt's ((5 + |Y|) / 6)^alpha has no counterpart, and the nearest, |Y|^alpha
  (CTranslate2's length_penalty=alpha), searches in its place, said in one log line; the hypotheses it
  returns are scored with GNMT's normalizer and ranked by that, so scores mean what ours mean.
- the cap a * source_length + b is per sentence, CTranslate2's max_decoding_length per call: sentences
  are grouped by their cap, one call per group. At the cap we force EOS; CTranslate2 ends the beam
  with its best token instead, which is cut off, so no output is longer than ours may be.
- sampling: topk and topp are its sampling_topk and sampling_topp (sampling_topk=0: the whole vocabulary),
  temperature its sampling_temperature; epsilon has no counterpart and is refused. CTranslate2 seeds a
  worker thread's generator when the thread starts (its issue #1757), so a sampling call loads the model
  again after seeding with decode.seed: the same lines and seed give the same samples, but a sentence's
  sample depends on its batch. Samples are rescored (below), so their scores mean what ours mean.
- scoring a given target is its score_batch: log_softmax over the whole vocabulary, the EOS counted,
  as ours; the length normalization is ours, so gnmt works there.
"""

import functools
import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch

from nmt.backends.base import LineTranslator
from nmt.backends.ct2_export import METADATA, VOCAB_FILE
from nmt.choices import LengthNorm, Precision, Sampling
from nmt.config.decode import SearchSettings
from nmt.data.batching import pad_sources
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, Vocab
from nmt.decoding.constraints import Phrase
from nmt.decoding.scoring import scored_hypothesis
from nmt.decoding.search import Hypothesis, length_normalizer, max_output_lengths
from nmt.device import resolve_device
from nmt.errors import NmtError

log = logging.getLogger("nmt.translate")


def ct2_length_penalty(settings: SearchSettings) -> float:
    """CTranslate2 divides a hypothesis' log-probability by length ** length_penalty."""
    if settings.length_norm is LengthNorm.average:
        return 1.0
    if settings.length_norm is LengthNorm.none:
        return 0.0
    if settings.length_norm is LengthNorm.power:
        return settings.length_penalty
    _say_gnmt_is_approximated(settings.length_penalty)
    return settings.length_penalty


@functools.cache
def _say_gnmt_is_approximated(alpha: float) -> None:
    """Once per process and alpha: a service decodes many batches, and one line says it all."""
    log.warning("decode.length_norm=gnmt: CTranslate2 cannot express ((5 + length) / 6) ** %g, so the export "
                "searches with the nearest, length ** %g (its length_penalty=%g), and scores with GNMT's; "
                "decode.length_norm=average or none search exactly as the checkpoint does", alpha, alpha, alpha)


def ct2_sampling(settings: SearchSettings) -> dict[str, Any]:
    """CTranslate2's translate_batch options that sample as `settings` asks."""
    if settings.sampling is Sampling.epsilon:
        raise NmtError("decode.sampling=epsilon: CTranslate2 samples from the top k tokens or the nucleus only; "
                       "with an export use decode.sampling=topk or topp, or sample from the checkpoint")
    if settings.temperature == 0:
        return {"sampling_topk": 1}  # the most probable token, as ours at temperature 0
    if settings.sampling is Sampling.topk:
        return {"sampling_topk": settings.topk, "sampling_temperature": settings.temperature}
    return {"sampling_topk": 0, "sampling_topp": settings.topp, "sampling_temperature": settings.temperature}


class CT2Translator(LineTranslator):
    """An exported Transformer decoded by CTranslate2."""

    # GNMT, the checkpoint Translator's default, is refused here; average is the nearest CTranslate2 has.
    default_settings = SearchSettings(length_norm=LengthNorm.average)

    def __init__(self, load_engine: Callable[[], Any], vocab: Vocab, device: torch.device, max_positions: int,
                 alignment_layer: int):
        """load_engine: a new ctranslate2.Translator of the export (sampling loads one per call, seeded)."""
        self.engine, self._load_engine = load_engine(), load_engine
        self.vocab, self.device, self.max_positions = vocab, device, max_positions
        self.alignment_layer = alignment_layer  # the decoder layer whose attention the export returns
        self._piece_ids = {piece: i for i, piece in enumerate(vocab.pieces(range(len(vocab))))}
        # We never produce PAD or BOS (nor UNK, which disable_unk forbids): one-token sequences to
        # suppress. CTranslate2 renormalizes over what is left, so its scores are higher than ours
        # by the forbidden tokens' probability mass; the rankings rarely differ for it.
        self._forbidden = [[piece] for piece in vocab.pieces([PAD_ID, BOS_ID])]

    @classmethod
    def from_directory(cls, path: str | Path, device: str = "auto", quantize: bool = False,
                       threads: int = 0) -> "CT2Translator":
        """quantize: CTranslate2's int8 computation whatever the export's type; threads: 0 uses as
        many as torch does, so both backends compare on the same footing."""
        import ctranslate2

        directory = Path(path)
        if not (directory / METADATA).is_file() or not (directory / "model.bin").is_file():
            raise NmtError(f"checkpoint {directory}: a directory but not an nmt export (no {METADATA} or "
                           "model.bin); pass a checkpoint file or a directory written by python -m nmt.export")
        metadata = json.loads((directory / METADATA).read_text(encoding="utf-8"))
        vocab = Vocab.from_file(str(directory / VOCAB_FILE))
        resolved = resolve_device(device)

        def load_engine() -> ctranslate2.Translator:
            try:
                return ctranslate2.Translator(str(directory), device=resolved.type,
                                              device_index=resolved.index or 0,
                                              compute_type="int8" if quantize else "default",
                                              intra_threads=threads or torch.get_num_threads(), inter_threads=1)
            except (RuntimeError, ValueError) as error:
                raise NmtError(f"checkpoint {directory}: CTranslate2 cannot load it ({str(error)[:200]}); "
                               "export it again with python -m nmt.export") from None

        # Exports written before the choice existed hold CTranslate2's default: the last layer (its first head).
        return cls(load_engine, vocab, resolved, int(metadata["model_config"]["max_positions"]),
                   int(metadata.get("alignment_layer", -1)))

    def search_ids(self, sources: list[list[int]], settings: SearchSettings, max_tokens: int, precision: Precision,
                   attention_layer: int | None, on_batch: Callable[[int], None] | None,
                   constraints: list[list[Phrase]] | None = None) -> list[list[Hypothesis]]:
        if constraints:
            raise NmtError("decode.glossary / decode.constraints: CTranslate2 has no constrained search, so an "
                           "export cannot keep terminology; translate with the checkpoint instead")
        if attention_layer is not None and attention_layer != self.alignment_layer:
            raise NmtError(f"attention_layer={attention_layer}: this export returns the attention of decoder layer "
                           f"{self.alignment_layer}, fixed when it was exported; pass attention_layer="
                           f"{self.alignment_layer} or export again with alignment_layer={attention_layer}")
        _require_fp32(precision)
        sampling = settings.sampling is not Sampling.none
        if sampling:
            import ctranslate2

            options, penalty = ct2_sampling(settings), 0.0  # the samples are rescored below
            ctranslate2.set_random_seed(settings.seed)
            engine = self._load_engine()
        else:
            penalty = ct2_length_penalty(settings)
            options = {"length_penalty": penalty}
            engine = self.engine
        limits = max_output_lengths(pad_sources(sources), settings, self.max_positions).tolist() if sources else []
        groups: dict[int, list[int]] = {}
        for i, limit in enumerate(limits):
            groups.setdefault(limit, []).append(i)
        results: list[list[Hypothesis]] = [[] for _ in sources]
        for limit, members in sorted(groups.items()):
            found = engine.translate_batch(
                [self.vocab.pieces(sources[i]) for i in members], beam_size=settings.beam_size,
                num_hypotheses=settings.nbest, **options, return_scores=True,
                # One step more than the cap leaves room for the EOS; return_end_token makes the
                # length that divides the score count it, as ours does.
                max_decoding_length=limit + 1, min_decoding_length=0, return_end_token=True,
                disable_unk=True, suppress_sequences=self._forbidden,
                max_input_length=0, max_batch_size=max(1, max_tokens // settings.beam_size), batch_type="tokens",
                return_attention=attention_layer is not None)
            for i, result in zip(members, found):
                attention = result.attention or [None] * len(result.hypotheses)
                results[i] = [self._hypothesis(tokens, score, limit, penalty, rows, settings)
                              for tokens, score, rows in zip(result.hypotheses, result.scores, attention)]
                if settings.length_norm is LengthNorm.gnmt:  # ranked by the score it reports
                    results[i].sort(key=lambda h: -h.score)
            if sampling:  # CTranslate2's scores of samples are not the model's log-probabilities: ours are
                rescored = self.score_ids([sources[i] for i in members], [results[i][0].tokens for i in members],
                                          settings, max_tokens, precision, None)
                for i, hypothesis in zip(members, rescored):
                    hypothesis.attention = results[i][0].attention
                    results[i] = [hypothesis]
            if on_batch is not None:
                on_batch(len(members))
        return results

    def score_ids(self, sources: list[list[int]], targets: list[list[int]], settings: SearchSettings,
                  max_tokens: int, precision: Precision,
                  on_batch: Callable[[int], None] | None) -> list[Hypothesis]:
        _require_fp32(precision)
        if not sources:
            return []
        found = self.engine.score_batch([self.vocab.pieces(s) for s in sources],
                                        [self.vocab.pieces(t) for t in targets],
                                        max_batch_size=max_tokens, batch_type="tokens", max_input_length=0)
        if on_batch is not None:
            on_batch(len(sources))
        return [scored_hypothesis(target, result.log_probs, settings) for target, result in zip(targets, found)]

    def _hypothesis(self, pieces: list[str], score: float, limit: int, penalty: float,
                    rows: list[list[float]] | None, settings: SearchSettings) -> Hypothesis:
        ids = [self._piece_ids[p] for p in pieces]
        length = len(ids)  # what CTranslate2 divided by, the EOS or the cut-off token included
        tokens = ids[:-1] if ids and ids[-1] == EOS_ID else ids[:limit]
        log_prob = score * length ** penalty
        if settings.length_norm is LengthNorm.gnmt:  # searched with length ** alpha; scored as ours
            score = log_prob / length_normalizer(length, settings)
        return Hypothesis(tokens, score, log_prob, _with_eos_column(rows) if rows else None)


def _with_eos_column(rows: list[list[float]]) -> torch.Tensor:
    """CTranslate2's attention rows leave out the source's EOS; its weight is what the row lacks of 1,
    so the rows come out as ours do: (target tokens with the EOS, source tokens with the EOS)."""
    attention = torch.tensor(rows)  # (target tokens, source tokens)
    return torch.cat([attention, (1 - attention.sum(1, keepdim=True)).clamp(min=0)], 1)


def _require_fp32(precision: Precision) -> None:
    if precision is not Precision.fp32:
        raise NmtError(f"decode.precision={precision.value}: an export computes in the type it was exported with; "
                       "choose it with python -m nmt.export quantization=... or decode.quantize=int8")
