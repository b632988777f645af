"""One optimizer update: forward and backward over `accumulate` micro-batches, clipping, and a
step that is skipped, not taken, when the loss or gradient is not finite.

The summed loss is divided by the target tokens of all micro-batches on all ranks, so an
update equals one big batch's however it is split across micro-batches and ranks.
"""

import contextlib
import math
from dataclasses import dataclass

import torch

from nmt.choices import Precision
from nmt.data.batching import Batch
from nmt.device import autocast
from nmt.errors import NmtError
from nmt.training.distributed import DistInfo, all_reduce_sum
from nmt.training.loss import TrainingLoss, rdrop_cross_entropy, token_cross_entropy
from nmt.training.state import TrainingParts, TrainingProgress
from nmt.training.word_dropout import drop_words


@dataclass(frozen=True)
class UpdateResult:
    loss: float  # per target token, this rank's micro-batches
    tokens: float  # this rank's target tokens
    grad_norm: float  # before clipping
    lr: float  # the rate the update used
    finite: bool  # False: the update was skipped
    rdrop_kl: float = 0.0  # R-Drop's (KL(p||q) + KL(q||p)) / 2 per target token; 0 without R-Drop


@dataclass(frozen=True)
class UpdateSettings:
    label_smoothing: float
    clip_norm: float  # 0: no clipping
    max_bad_steps: int  # non-finite updates in a row that stop the run
    rdrop_alpha: float  # 0: no R-Drop; else each batch runs twice (loss.rdrop_cross_entropy)
    rdrop_from: int  # the first update (progress.step before it) that uses R-Drop
    word_dropout: float  # the rate of training/word_dropout.py; 0: off

    def rdrop_at(self, done: int) -> bool:
        """Whether the update taken after `done` updates uses R-Drop."""
        return self.rdrop_alpha > 0 and done >= self.rdrop_from


class Updater:
    def __init__(self, *, net: torch.nn.Module, parts: TrainingParts, settings: UpdateSettings,
                 precision: Precision, device: torch.device, dist: DistInfo):
        """`net` is the module the forward pass runs through (compiled, DDP-wrapped or the model itself)."""
        self.net, self.parts, self.settings = net, parts, settings
        self.precision, self.device, self.dist = precision, device, dist

    def loss(self, batch: Batch, rdrop: bool) -> TrainingLoss:
        """Label-smoothed cross-entropy (and R-Drop's term, unless `rdrop` is off) summed over the batch's
        target tokens."""
        alpha = self.settings.rdrop_alpha if rdrop else 0.0
        smoothing = self.settings.label_smoothing
        batch = drop_words(batch, self.settings.word_dropout)
        # R-Drop's two passes are one forward over the batch stacked on itself: each row draws its own
        # dropout masks, and the matrix products are those of one batch twice the size.
        src, tgt_in = (batch.src.repeat(2, 1), batch.tgt_in.repeat(2, 1)) if alpha else (batch.src, batch.tgt_in)
        with autocast(self.precision, self.device):
            logits, _ = self.net(src, tgt_in)
        if alpha:
            return rdrop_cross_entropy(logits, batch, smoothing, alpha)
        return TrainingLoss(token_cross_entropy(logits, batch, smoothing), torch.zeros((), device=logits.device))

    def update(self, batches: list[Batch], progress: TrainingProgress) -> UpdateResult:
        """One update from `batches`; progress.step counts it only when it was taken."""
        self.net.train()
        optimizer, scaler = self.parts.optimizer, self.parts.scaler
        tokens = torch.tensor([float(sum(b.target_tokens for b in batches))], device=self.device)
        global_tokens = all_reduce_sum(tokens.clone(), self.dist).item()
        total_loss, total_kl = torch.zeros((), device=self.device), torch.zeros((), device=self.device)
        rdrop = self.settings.rdrop_at(progress.step)
        for i, batch in enumerate(batches):
            # DDP averages gradients over ranks; scaling by world_size turns that into the sum.
            sync = i + 1 == len(batches) or not self.dist.enabled
            with contextlib.nullcontext() if sync else self.net.no_sync():
                loss, kl = self.loss(batch, rdrop)
                scaler.scale(loss * self.dist.world_size / global_tokens).backward()
            total_loss += loss.detach()
            total_kl += kl
        scaler.unscale_(optimizer)
        clip = self.settings.clip_norm if self.settings.clip_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parts.model.parameters(), clip).item()
        finite = math.isfinite(grad_norm)
        lr = self.parts.scheduler.get_last_lr()[0]
        if finite or scaler.is_enabled():
            scaler.step(optimizer)  # fp16: the scaler itself skips a step whose gradients overflowed
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        self._count(finite, global_tokens, progress)
        per_token = 1.0 / max(tokens.item(), 1.0)
        return UpdateResult(total_loss.item() * per_token, tokens.item(), grad_norm, lr, finite,
                            total_kl.item() * per_token)

    def _count(self, finite: bool, global_tokens: float, progress: TrainingProgress) -> None:
        if finite:
            self.parts.scheduler.step()
            progress.step += 1
            progress.target_tokens += round(global_tokens)
            progress.skipped_in_a_row = 0
            return
        progress.skipped_steps += 1
        progress.skipped_in_a_row += 1
        if progress.skipped_in_a_row >= self.settings.max_bad_steps:
            raise NmtError(f"{progress.skipped_in_a_row} optimizer steps in a row had a non-finite loss or "
                           f"gradient (after step {progress.step}); lower optim.lr or check the data. "
                           "No checkpoint was written from them")
