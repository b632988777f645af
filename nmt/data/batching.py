"""Token-bounded batches from length-sorted buckets inside large shuffled pools.

For a given seed and epoch the batches are always the same, so a resumed run picks up
exactly where it stopped; batches are dealt to data-parallel ranks round-robin.
"""

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import NmtError


def token_batches(src_lengths: np.ndarray, tgt_lengths: np.ndarray, max_tokens: int,
                  order: np.ndarray, pool_size: int) -> list[np.ndarray]:
    """Cut `order` into pools, sort each pool by length, and fill batches up to max_tokens.

    A batch's cost is its size times its longest side plus the added BOS/EOS token,
    i.e. the padded token count of the larger of its two tensors.
    """
    cost = np.maximum(src_lengths, tgt_lengths).astype(np.int64) + 1
    if cost.size and cost.max() > max_tokens:
        raise NmtError(f"data.max_tokens={max_tokens} is below the longest pair ({cost.max()} tokens); "
                       "raise it or lower data.max_len")
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool_size):
        pool = order[start:start + pool_size]
        # Sorted by cost first, so a batch's most expensive member is its last one.
        pool = pool[np.lexsort((tgt_lengths[pool], src_lengths[pool], cost[pool]))]
        batches += [pool[begin:end] for begin, end in fill_budget(cost[pool].tolist(), max_tokens)]
    return batches


def fill_budget(costs: Sequence[int], budget: int) -> Iterator[tuple[int, int]]:
    """Cut items sorted by ascending cost into consecutive runs [begin, end) whose size times their
    largest (last) cost fits `budget`: the padded size of a batch. An item over the budget alone
    still gets a run of its own; training refuses such items before, decoding takes them one by one."""
    begin = 0
    while begin < len(costs):
        end = begin + 1
        while end < len(costs) and (end + 1 - begin) * costs[end] <= budget:
            end += 1
        yield begin, end
        begin = end


@dataclass
class SamplerState:
    epoch: int = 0
    position: int = 0  # batches of this rank's epoch already handed out


class TokenBatchSampler:
    """Deterministic, resumable, rank-sharded batches of example indices."""

    def __init__(self, src_lengths: np.ndarray, tgt_lengths: np.ndarray, max_tokens: int, seed: int,
                 shuffle: bool = True, pool_size: int = 100_000, rank: int = 0, world_size: int = 1):
        self.src_lengths, self.tgt_lengths = src_lengths, tgt_lengths
        self.max_tokens, self.seed, self.shuffle = max_tokens, seed, shuffle
        self.pool_size, self.rank, self.world_size = pool_size, rank, world_size
        self.state = SamplerState()

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches for `epoch`: a disjoint, equally sized share of all of them."""
        n = len(self.src_lengths)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool = self.pool_size if self.shuffle else max(n, 1)
        batches = token_batches(self.src_lengths, self.tgt_lengths, self.max_tokens, order, pool)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        # Every rank takes the same number of steps; the few left over wait for the next epoch's shuffle.
        per_rank = len(batches) // self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank::self.world_size][:per_rank]

    def __iter__(self):
        """Batches from the current position to the end of the epoch, then the next epoch begins."""
        batches = self.epoch_batches(self.state.epoch)
        if not batches:
            raise NmtError(f"rank {self.rank} gets no batch: {len(self.src_lengths)} examples make fewer batches than "
                           f"the {self.world_size} ranks; lower data.max_tokens or use fewer processes")
        while self.state.position < len(batches):
            batch = batches[self.state.position]
            self.state.position += 1
            yield batch
        self.state = SamplerState(self.state.epoch + 1, 0)

    def state_dict(self) -> dict:
        return {"epoch": self.state.epoch, "position": self.state.position}

    def load_state_dict(self, state: dict) -> None:
        self.state = SamplerState(int(state["epoch"]), int(state["position"]))


@dataclass
class Batch:
    src: torch.Tensor  # (batch, src_len) ids + EOS, padded
    tgt_in: torch.Tensor  # (batch, tgt_len) BOS + ids, padded
    tgt_out: torch.Tensor  # (batch, tgt_len) ids + EOS, padded
    target_tokens: int

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.src.to(device, non_blocking=True), self.tgt_in.to(device, non_blocking=True),
                     self.tgt_out.to(device, non_blocking=True), self.target_tokens)


def pad_sources(sources: list[np.ndarray]) -> torch.Tensor:
    """Source ids with EOS appended, right-padded: (batch, longest + 1)."""
    src = np.full((len(sources), max((len(s) for s in sources), default=0) + 1), PAD_ID, np.int64)
    for row, ids in enumerate(sources):
        src[row, :len(ids)] = ids
        src[row, len(ids)] = EOS_ID
    return torch.from_numpy(src)


def collate(pairs: list[tuple[np.ndarray, np.ndarray]]) -> Batch:
    tgt_len = max(len(t) for _, t in pairs) + 1
    tgt_in = np.full((len(pairs), tgt_len), PAD_ID, np.int64)
    tgt_out = np.full((len(pairs), tgt_len), PAD_ID, np.int64)
    for row, (_, t) in enumerate(pairs):
        tgt_in[row, 0] = BOS_ID
        tgt_in[row, 1:len(t) + 1] = t
        tgt_out[row, :len(t)] = t
        tgt_out[row, len(t)] = EOS_ID
    return Batch(pad_sources([s for s, _ in pairs]), torch.from_numpy(tgt_in), torch.from_numpy(tgt_out),
                 sum(len(t) + 1 for _, t in pairs))
