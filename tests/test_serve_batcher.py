"""The request queue on its own, with a stand-in for the model: how requests are merged and answered."""

import asyncio
import threading

import pytest

from nmt.decoding.search import Hypothesis
from nmt.service.batcher import Batcher, Overloaded


class FakeModel:
    """Translates a line to itself upper-cased; records every batch; can be held to keep a batch in flight."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.constraints: list[list[list[str]] | None] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, lines: list[str], nbest: int, attention: bool,
                 constraints: list[list[str]] | None = None) -> list[list[Hypothesis]]:
        self.release.wait(5)
        self.batches.append(list(lines))
        self.constraints.append(constraints)
        return [[Hypothesis([ord(c) for c in line.upper()], -float(k), -float(k)) for k in range(nbest)]
                for line in lines]


def text(hyp: Hypothesis) -> str:
    return "".join(map(chr, hyp.tokens))


async def _with_batcher(model, coroutine, **limits):
    settings = dict(max_tokens=1000, max_wait=0.05, max_queued_lines=100) | limits
    batcher = Batcher(model, **settings)
    batcher.start()
    try:
        return await coroutine(batcher)
    finally:
        await batcher.stop()


def run(model, coroutine, **limits):
    return asyncio.run(_with_batcher(model, coroutine, **limits))


def test_requests_waiting_together_are_decoded_as_one_batch():
    model = FakeModel()

    async def go(batcher):
        requests = [batcher.translate([f"a{i}", f"b{i}"], [1, 1], 1, False) for i in range(5)]
        return await asyncio.gather(*requests)

    results = run(model, go)
    assert len(model.batches) == 1 and len(model.batches[0]) == 10
    assert [[text(h[0]) for h in r] for r in results] == [[f"A{i}", f"B{i}"] for i in range(5)]


def test_each_request_gets_its_own_nbest_however_many_its_batch_mates_asked_for():
    async def go(batcher):
        return await asyncio.gather(batcher.translate(["x"], [1], 1, False), batcher.translate(["y"], [1], 3, False))

    one, three = run(FakeModel(), go)
    assert [len(h) for h in one] == [1] and [len(h) for h in three] == [3]


def test_the_token_budget_splits_requests_into_batches():
    model = FakeModel()

    async def go(batcher):
        return await asyncio.gather(*[batcher.translate([f"s{i}"], [40], 1, False) for i in range(5)])

    run(model, go, max_tokens=100)
    assert [len(b) for b in model.batches] == [2, 2, 1]
    assert [line for b in model.batches for line in b] == [f"s{i}" for i in range(5)]


def test_a_full_queue_refuses_new_lines_and_accepts_again_once_answered():
    model = FakeModel()
    model.release.clear()

    async def go(batcher):
        first = asyncio.ensure_future(batcher.translate(["a", "b", "c"], [1, 1, 1], 1, False))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await batcher.translate(["d", "e"], [1, 1], 1, False)
        model.release.set()
        await first
        return await batcher.translate(["d", "e"], [1, 1], 1, False)

    assert [text(h[0]) for h in run(model, go, max_queued_lines=4)] == ["D", "E"]


def test_a_failing_batch_fails_its_requests_and_the_queue_goes_on():
    calls = []

    def flaky(lines, nbest, attention, constraints):
        calls.append(lines)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return FakeModel()(lines, nbest, attention)

    async def go(batcher):
        with pytest.raises(RuntimeError):
            await batcher.translate(["a"], [1], 1, False)
        return await batcher.translate(["b"], [1], 1, False)

    assert text(run(flaky, go)[0][0]) == "B"


def test_the_event_loop_keeps_running_while_a_batch_decodes():
    model = FakeModel()
    model.release.clear()

    async def go(batcher):
        pending = asyncio.ensure_future(batcher.translate(["a"], [1], 1, False))
        ticks = 0
        while ticks < 5:  # the loop runs these while the model is held in its thread
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
        model.release.set()
        return await pending

    assert text(run(model, go)[0][0]) == "A"


def test_each_line_keeps_its_own_terms_in_a_merged_batch():
    model = FakeModel()

    async def go(batcher):
        return await asyncio.gather(batcher.translate(["a", "b"], [1, 1], 1, False, [["A1"], []]),
                                    batcher.translate(["c"], [1], 1, False),
                                    batcher.translate(["d"], [1], 1, False, [["D1", "D2"]]))

    run(model, go)
    assert model.batches == [["a", "b", "c", "d"]]
    assert model.constraints == [[["A1"], [], [], ["D1", "D2"]]]


def test_a_batch_without_terms_passes_none():
    model = FakeModel()

    async def go(batcher):
        return await batcher.translate(["a"], [1], 1, False)

    run(model, go)
    assert model.constraints == [None]
