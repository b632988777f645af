"""Token batches: every example once per epoch, within max_tokens, disjoint shards, exact resume."""

import numpy as np
import pytest

from nmt.data.batching import TokenBatchSampler

rng = np.random.default_rng(0)
SRC = rng.integers(1, 60, size=5000)
TGT = np.clip(SRC + rng.integers(-5, 6, size=5000), 1, None)


def _sampler(**kwargs):
    return TokenBatchSampler(SRC, TGT, max_tokens=kwargs.pop("max_tokens", 1000), seed=kwargs.pop("seed", 3),
                             pool_size=kwargs.pop("pool_size", 1000), **kwargs)


def test_every_example_exactly_once_per_epoch():
    for epoch in range(2):
        batches = _sampler().epoch_batches(epoch)
        seen = np.concatenate(batches)
        assert len(seen) == len(SRC) and len(np.unique(seen)) == len(SRC)


def test_batches_respect_max_tokens_with_padding():
    for batch in _sampler(max_tokens=777).epoch_batches(0):
        longest = max(SRC[batch].max(), TGT[batch].max()) + 1  # + EOS / BOS
        assert len(batch) * longest <= 777


def test_length_bucketing_keeps_padding_small():
    padded = real = 0
    for batch in _sampler(max_tokens=4096, pool_size=5000).epoch_batches(0):
        padded += len(batch) * (TGT[batch].max() + 1)
        real += (TGT[batch] + 1).sum()
    assert 1 - real / padded < 0.10


def test_same_seed_and_epoch_give_the_same_batches_and_epochs_differ():
    a, b = _sampler().epoch_batches(4), _sampler().epoch_batches(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
    c = _sampler().epoch_batches(5)
    assert not all(len(x) == len(y) and np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_get_disjoint_equal_shares(world_size):
    shards = [_sampler(rank=r, world_size=world_size).epoch_batches(0) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    examples = [np.concatenate(s) for s in shards]
    for i in range(world_size):
        for j in range(i + 1, world_size):
            assert not set(examples[i]) & set(examples[j])
    total = len(_sampler().epoch_batches(0))
    assert len(shards[0]) == total // world_size


def test_resuming_mid_epoch_gives_the_same_remaining_batches():
    sampler = _sampler()
    uninterrupted = list(sampler)  # a whole epoch
    first = _sampler()
    iterator = iter(first)
    taken = [next(iterator) for _ in range(7)]
    state = first.state_dict()
    resumed = _sampler()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(taken) + len(rest) == len(uninterrupted)
    assert all(np.array_equal(x, y) for x, y in zip(taken + rest, uninterrupted))
    assert resumed.state_dict() == {"epoch": 1, "position": 0}
