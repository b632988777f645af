"""Sampling a translation instead of searching for one, as back-translation wants (Edunov et al. 2018):
each next token is drawn from the model's distribution at a temperature, cut down to the top k tokens
(Fan et al. 2018), to the nucleus, the fewest tokens whose probabilities reach p (Holtzman et al. 2020),
or to the tokens of probability at least epsilon (Hewitt et al. 2022).

Search's one-hypothesis-per-sentence loop runs the steps (the same length caps, the same forbidden
special tokens, finished rows dropping out); a `TokenSampler` chooses its tokens. Each sentence draws
from a generator of its own, seeded by decode.seed and the sentence's source ids, so its sample never
depends on which sentences share its batch or where it stands in the input: batched equals one at a
time, and a sentence given twice is sampled the same way twice.
"""

import hashlib

import numpy as np
import torch

from nmt.choices import Sampling
from nmt.config.decode import SearchSettings
from nmt.data.vocab import PAD_ID


def sentence_generator(source: list[int], seed: int) -> torch.Generator:
    """A generator for one sentence, seeded by decode.seed and its source ids (padding ignored).
    A hash, not Python's hash(), so the seed is the same in every process."""
    ids = np.asarray([t for t in source if t != PAD_ID], dtype=np.int64)
    digest = hashlib.blake2b(seed.to_bytes(8, "little") + ids.tobytes(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little"))


def tempered_probabilities(log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / T), in float64. The row's maximum is subtracted first, so a tiny temperature gives
    (nearly) one-hot rows instead of overflowing; forbidden tokens (-inf) stay at 0."""
    shifted = log_probs.double() - log_probs.max(dim=1, keepdim=True).values.double()
    return torch.softmax(shifted / temperature, dim=1)  # (rows, vocab)


def truncate(probs: torch.Tensor, settings: SearchSettings) -> torch.Tensor:
    """The probabilities of the tokens the sampling method keeps, the others set to 0 (not renormalized)."""
    if settings.sampling is Sampling.topk:
        top = probs.topk(min(settings.topk, probs.size(1)), dim=1).indices
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, top, True)
    elif settings.sampling is Sampling.topp:
        ranked, order = probs.sort(dim=1, descending=True)
        above = ranked.cumsum(dim=1) - ranked  # the mass of the tokens ranked above each one
        # A token is in the nucleus while the tokens above it hold less than p; the most probable always is.
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, order, above < settings.topp)
    elif settings.sampling is Sampling.epsilon:
        # The most probable token stays even when it is below epsilon too, so a row is never empty.
        keep = (probs >= settings.epsilon) | (probs == probs.max(dim=1, keepdim=True).values)
    else:
        raise ValueError(f"not a sampling method: {settings.sampling}")
    return probs.masked_fill(~keep, 0.0)


def inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Token i of a row where cdf[i-1] <= u * total < cdf[i]: a draw from the row's distribution (not
    necessarily normalized) for u uniform in [0, 1). A token of probability 0 is never drawn."""
    cdf = probs.cumsum(dim=1)  # (rows, vocab), float64
    total = cdf[:, -1:]
    # u * total rounds up to total once in about 2^53 draws; the value just below it stays on a real token.
    point = torch.minimum(uniforms.unsqueeze(1) * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, point, right=True).squeeze(1)  # (rows,)


class TokenSampler:
    """Chooses the next token of every active sentence by sampling (search's `choose`)."""

    def __init__(self, src: torch.Tensor, settings: SearchSettings, steps: int):
        """`src`: the batch's (batch, src_len) padded sources; `steps`: the most tokens any of its sentences
        may take, EOS included."""
        self.settings = settings
        # One uniform number per sentence and step, drawn now from the sentence's own generator: step t of
        # a sentence always uses its t-th number, whichever rows are active with it.
        self.uniforms = torch.stack([
            torch.rand(steps, generator=sentence_generator(row, settings.seed), dtype=torch.float64)
            for row in src.tolist()]).to(src.device)  # (batch, steps)

    def __call__(self, log_probs: torch.Tensor, sentences: torch.Tensor, step: int) -> torch.Tensor:
        """The tokens (rows,) for the rows of `sentences` (their indices in the batch) at `step`, from
        their log-probabilities (rows, vocab) with the forbidden tokens at -inf. Temperature 0 is the
        limit of ever smaller temperatures: the most probable token, as greedy search takes it."""
        if self.settings.temperature == 0:
            return log_probs.max(dim=1).indices
        probs = truncate(tempered_probabilities(log_probs, self.settings.temperature), self.settings)
        return inverse_cdf(probs, self.uniforms[sentences, step])
