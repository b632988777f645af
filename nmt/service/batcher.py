"""The request queue: sentences from every waiting request are decoded together as one batched
beam search in a worker thread, and each request gets its own lines back, in order.

The event loop only queues and hands out results; the model runs in a single worker thread, so
requests keep being accepted (or refused with 429) while a batch decodes. A sentence's result does
not depend on its batch mates: batched search equals one sentence at a time, and a batch decodes
with the largest n-best any of its requests asked for, which leaves every shorter n-best unchanged
(search stops only when no live beam can still enter the n-best), and each line keeps its own
terminology constraints.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from nmt.decoding.search import Hypothesis

log = logging.getLogger("nmt.serve")

# (lines, nbest, need_attention, constraints: per line its target terms, or None for no line) -> per line its n-best
DecodeFn = Callable[[list[str], int, bool, list[list[str]] | None], list[list[Hypothesis]]]


class Overloaded(Exception):
    """More sentences are waiting than the queue holds; the client should retry later."""


@dataclass
class _Job:
    lines: list[str]
    cost: int  # source tokens times beams, what the batch budget counts
    nbest: int
    attention: bool
    constraints: list[list[str]] | None  # per line, target terms its translation must contain
    done: asyncio.Future


class Batcher:
    def __init__(self, decode: DecodeFn, *, max_tokens: int, max_wait: float, max_queued_lines: int):
        self._decode, self.max_tokens, self.max_wait = decode, max_tokens, max_wait
        self.max_queued_lines = max_queued_lines
        self.queued_lines = 0  # accepted and not yet answered
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nmt-decode")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Called after the server has answered its in-flight requests; nothing is waiting any more."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def translate(self, lines: list[str], costs: list[int], nbest: int, attention: bool,
                        constraints: list[list[str]] | None = None) -> list[list[Hypothesis]]:
        """The `nbest` best hypotheses of each line, once its batch has been decoded."""
        if self.queued_lines + len(lines) > self.max_queued_lines:
            raise Overloaded(f"{self.queued_lines} sentences are waiting; the queue holds {self.max_queued_lines}")
        job = _Job(lines, sum(costs), nbest, attention, constraints, asyncio.get_running_loop().create_future())
        self.queued_lines += len(lines)
        self._queue.put_nowait(job)
        try:
            return await job.done
        finally:
            self.queued_lines -= len(lines)

    async def _run(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else await self._queue.get()
            batch, carry = self._take(first)
            if carry is None and self._cost(batch) < self.max_tokens and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)  # room left: let requests arriving now join
                batch, carry = self._take(*batch)
            await self._decode_batch([job for job in batch if not job.done.done()])

    def _take(self, *batch: _Job) -> tuple[list[_Job], _Job | None]:
        """`batch` plus waiting jobs while they fit the token budget; the first that does not is carried."""
        taken, cost = list(batch), self._cost(batch)
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if cost + job.cost > self.max_tokens:
                return taken, job
            taken.append(job)
            cost += job.cost
        return taken, None

    @staticmethod
    def _cost(batch) -> int:
        return sum(job.cost for job in batch)

    async def _decode_batch(self, batch: list[_Job]) -> None:
        if not batch:
            return
        lines = [line for job in batch for line in job.lines]
        nbest, attention = max(job.nbest for job in batch), any(job.attention for job in batch)
        constraints = None
        if any(job.constraints for job in batch):
            constraints = [terms for job in batch for terms in (job.constraints or [[] for _ in job.lines])]
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._executor, self._decode, lines, nbest, attention, constraints)
        except Exception as error:  # a bug, not bad input: these requests fail, the service goes on
            log.exception("decoding a batch of %d sentences failed", len(lines))
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(error)
            return
        start = 0
        for job in batch:
            part = found[start:start + len(job.lines)]
            start += len(job.lines)
            if not job.done.done():  # its client may have gone away
                job.done.set_result([hyps[:job.nbest] for hyps in part])
