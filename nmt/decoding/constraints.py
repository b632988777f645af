"""Lexical constraints: target phrases (subword id sequences) that a hypothesis must contain before
it may end, and how far a hypothesis has come in meeting them.

A hypothesis carries a `ConstraintState`: which phrases it has completed, and the phrases whose
beginning matches the tokens it has just written (several at once, as in Hu et al. 2019's trie,
so overlapping phrases are each followed). Its *progress* counts the constraint tokens met, the
quantity dynamic beam allocation groups hypotheses by (Post & Vilar 2018).
"""

from dataclasses import dataclass

Phrase = tuple[int, ...]


@dataclass(frozen=True)
class ConstraintState:
    phrases: tuple[Phrase, ...]
    met: frozenset[int] = frozenset()  # indices of the completed phrases
    partial: tuple[tuple[int, int], ...] = ()  # (phrase index, tokens matched) of phrases under way

    @property
    def all_met(self) -> bool:
        return len(self.met) == len(self.phrases)

    @property
    def progress(self) -> int:
        """Constraint tokens met: the completed phrases' tokens plus the furthest phrase under way."""
        done = sum(len(self.phrases[i]) for i in self.met)
        return done + max((matched for _, matched in self.partial), default=0)

    def next_tokens(self) -> set[int]:
        """The tokens that would advance a phrase: the next one of each phrase under way, and the
        first of each phrase not yet met."""
        tokens = {self.phrases[i][matched] for i, matched in self.partial}
        tokens.update(phrase[0] for i, phrase in enumerate(self.phrases) if i not in self.met)
        return tokens

    def advance(self, token: int) -> "ConstraintState":
        """The state after writing `token`."""
        if self.all_met:
            return self
        met, partial = set(self.met), []
        # Phrases under way go on if this is their next token; any unmet phrase may begin here.
        candidates = [(i, matched) for i, matched in self.partial] + [
            (i, 0) for i in range(len(self.phrases)) if i not in self.met]
        for i, matched in candidates:
            if i in met or self.phrases[i][matched] != token:
                continue
            if matched + 1 == len(self.phrases[i]):
                met.add(i)
            elif (i, matched + 1) not in partial:
                partial.append((i, matched + 1))
        partial = [(i, matched) for i, matched in partial if i not in met]
        return ConstraintState(self.phrases, frozenset(met), tuple(sorted(partial)))


def initial_state(phrases: list[Phrase] | tuple[Phrase, ...]) -> ConstraintState:
    """The state before any token, for the non-empty phrases given."""
    return ConstraintState(tuple(tuple(p) for p in phrases if p))


def contains(tokens: list[int], phrase: Phrase) -> bool:
    """Whether `phrase` occurs in `tokens` as consecutive tokens."""
    n = len(phrase)
    return any(tuple(tokens[i:i + n]) == phrase for i in range(len(tokens) - n + 1))


@dataclass(frozen=True)
class Candidate:
    """A one-token extension of a beam, as dynamic beam allocation weighs it."""

    beam: int  # the beam it extends, 0..k-1 within its sentence
    token: int
    log_prob: float  # of the extended hypothesis
    state: ConstraintState  # after the token


def allocate(candidates: list[Candidate], k: int) -> list[Candidate]:
    """Dynamic beam allocation (Post & Vilar 2018, sec. 3): the candidates are grouped into banks by
    the constraint tokens they have met, and the k beams are dealt round-robin from the bank that has
    met the most down to the one that has met none, each bank giving its best remaining candidate.
    A bank that runs out passes its turn on, so all k beams are used while candidates remain.
    Returns the chosen candidates, best log-probability first."""
    banks: dict[int, list[Candidate]] = {}
    for candidate in sorted(candidates, key=lambda c: -c.log_prob):
        banks.setdefault(candidate.state.progress, []).append(candidate)
    queues = [banks[progress] for progress in sorted(banks, reverse=True)]
    chosen: list[Candidate] = []
    turn = 0
    while len(chosen) < k and any(queues):
        queue = queues[turn % len(queues)]
        if queue:
            chosen.append(queue.pop(0))
        turn += 1
    return sorted(chosen, key=lambda c: -c.log_prob)
