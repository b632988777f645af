"""The training loop: token-bucketed batches, accumulation, mixed precision, DDP, validation
by loss and BLEU, checkpoints that resume exactly, and TensorBoard logs."""

import contextlib
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sacrebleu
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from nmt.checkpoint import FORMAT, link_checkpoint, periodic_checkpoints, save_checkpoint, vocab_tensor
from nmt.config import ModelConfig, OptimConfig, TrainerConfig
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import PAD_ID, Vocab
from nmt.distributed import DistInfo, all_reduce_sum, barrier, broadcast_flag, gather_objects
from nmt.errors import NmtError
from nmt.models import model_kind
from nmt.optim import build_optimizer
from nmt.plots import attention_figure
from nmt.precision import autocast
from nmt.search import SearchSettings, search_corpus

log = logging.getLogger(__name__)


@dataclass
class ValidationSet:
    data: EncodedSplit
    references: list[str]


class Trainer:
    def __init__(self, model: torch.nn.Module, model_config: ModelConfig, vocab: Vocab, train: EncodedSplit,
                 valid: ValidationSet | None, settings: TrainerConfig, optim: OptimConfig, max_tokens: int,
                 run_dir: Path, device: torch.device, precision: str, dist_info: DistInfo):
        self.model, self.model_config, self.vocab = model, model_config, vocab
        self.train_data, self.valid = train, valid
        self.settings, self.device, self.precision, self.dist = settings, device, precision, dist_info
        self.run_dir, self.checkpoints = run_dir, run_dir / "checkpoints"
        self.optimizer, self.scheduler = build_optimizer(model, optim.lr, optim.betas, optim.eps,
                                                         optim.weight_decay, optim.schedule, optim.warmup_steps)
        self.scaler = torch.amp.GradScaler(enabled=precision == "fp16")
        self.sampler = TokenBatchSampler(train.src_lengths, train.tgt_lengths, max_tokens, settings.seed,
                                         rank=dist_info.rank, world_size=dist_info.world_size)
        self.valid_settings = SearchSettings(beam_size=settings.valid_beam_size, length_penalty=0.6)
        # Validation is never filtered: its pairs are cut to the model's positions and batched
        # with room for the longest.
        self.valid_limit = model.max_positions - 1
        longest = int(max(valid.data.src_lengths.max(), valid.data.tgt_lengths.max())) if valid and len(valid.data) else 0
        self.valid_max_tokens = max(max_tokens * 2, min(longest, self.valid_limit) + 2)
        self.step = 0
        self.best_score = -math.inf
        self.bad_validations = 0
        self.skipped_steps = 0
        self.skipped_in_a_row = 0
        self.validated_step = -1
        self.stop_signal: int | None = None
        self.trained_seconds = 0.0
        net = torch.compile(model) if settings.compile else model
        self.net = DistributedDataParallel(net) if dist_info.enabled else net
        self.writer = None
        if dist_info.is_main:
            # A run killed while writing leaves its temporary files (dot-names) behind; never checkpoints.
            for stale in self.checkpoints.glob(".*"):
                stale.unlink()
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    # ---- checkpoints -------------------------------------------------------------------
    def state_payload(self, rng_states: list[dict]) -> dict:
        """Everything a resumed run needs; rng_states holds every rank's generators."""
        return {
            "format": FORMAT, "model_kind": model_kind(self.model_config),
            "model_config": {k: v for k, v in asdict(self.model_config).items() if k != "name"},
            "vocab": vocab_tensor(self.vocab.proto), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "sampler": self.sampler.state_dict(),
            "batching": self._batching(), "rng": rng_states,
            "step": self.step, "best_score": self.best_score, "bad_validations": self.bad_validations,
            "trained_seconds": self.trained_seconds, "skipped_in_a_row": self.skipped_in_a_row,
        }

    def _batching(self) -> dict:
        """What the sampler's position means; a resume with other values cannot reuse it."""
        return {"max_tokens": self.sampler.max_tokens, "seed": self.sampler.seed,
                "world_size": self.dist.world_size}

    def _rng_state(self) -> dict:
        cuda = torch.cuda.get_rng_state() if self.device.type == "cuda" else torch.zeros(0, dtype=torch.uint8)
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def load_state(self, payload: dict) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler.is_enabled() and payload["scaler"]:
            self.scaler.load_state_dict(payload["scaler"])
        self.sampler.load_state_dict(payload["sampler"])
        if payload["batching"] != self._batching():
            log.warning("batching changed since the checkpoint (%s, now %s): the current epoch starts over",
                        payload["batching"], self._batching())
            self.sampler.load_state_dict({"epoch": payload["sampler"]["epoch"], "position": 0})
        rng = payload["rng"]
        own = rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0]
        torch.set_rng_state(own["cpu"])
        if self.device.type == "cuda" and own["cuda"].numel():
            torch.cuda.set_rng_state(own["cuda"])
        self.step, self.best_score = int(payload["step"]), float(payload["best_score"])
        self.bad_validations = int(payload["bad_validations"])
        self.trained_seconds = float(payload["trained_seconds"])
        self.skipped_in_a_row = int(payload["skipped_in_a_row"])

    def save(self, is_best: bool) -> None:
        """step_N.pt is written once; last.pt and best.pt are links to it. Called on every rank."""
        rng_states = gather_objects(self._rng_state(), self.dist)
        if not self.dist.is_main:
            return
        path = self.checkpoints / f"step_{self.step}.pt"
        try:
            save_checkpoint(path, self.state_payload(rng_states))
            link_checkpoint(path, self.checkpoints / "last.pt")
            if is_best:
                link_checkpoint(path, self.checkpoints / "best.pt")
        except OSError as error:
            raise NmtError(f"cannot write checkpoint {path}: {error.strerror}; "
                           "free space or fix permissions, the previous last.pt is intact") from None
        periodic = periodic_checkpoints(self.checkpoints)
        for old in periodic[:-self.settings.keep_last] if self.settings.keep_last > 0 else []:
            old.unlink()  # last.pt / best.pt are hard links and keep their data

    # ---- one optimizer step -------------------------------------------------------------
    def _loss(self, batch, label_smoothing: float) -> torch.Tensor:
        with autocast(self.precision, self.device):
            logits, _ = self.net(batch.src, batch.tgt_in)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.tgt_out.view(-1),
                               ignore_index=PAD_ID, label_smoothing=label_smoothing, reduction="sum")

    def train_step(self, micro_batches: list[np.ndarray]) -> dict:
        """Forward and backward over `accumulate` micro-batches, then one update.

        The summed loss is divided by the target tokens of all micro-batches on all ranks,
        so the update equals one big batch's, however it is split.
        """
        self.net.train()
        batches = [collate([self.train_data.pair(int(i)) for i in indices]).to(self.device)
                   for indices in micro_batches]
        tokens = torch.tensor([float(sum(b.target_tokens for b in batches))], device=self.device)
        global_tokens = all_reduce_sum(tokens.clone(), self.dist).item()
        total_loss = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            sync = i + 1 == len(batches) or not self.dist.enabled
            context = contextlib.nullcontext() if sync else self.net.no_sync()
            with context:
                loss = self._loss(batch, self.settings.label_smoothing)
                self.scaler.scale(loss * self.dist.world_size / global_tokens).backward()
            total_loss += loss.detach()
        self.scaler.unscale_(self.optimizer)
        clip = self.settings.clip_norm if self.settings.clip_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip).item()
        if math.isfinite(grad_norm):
            self.scaler.step(self.optimizer)
            self.skipped_in_a_row = 0
        else:
            self.skipped_steps += 1
            self.skipped_in_a_row += 1
            if self.precision == "fp16":
                self.scaler.step(self.optimizer)  # the scaler skips the step and lowers its scale
            elif self.skipped_in_a_row >= self.settings.max_bad_steps:
                raise NmtError(f"{self.skipped_in_a_row} optimizer steps in a row had a non-finite loss or "
                               f"gradient (step {self.step}); lower optim.lr or check the data. "
                               "No checkpoint was written from them")
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        return {"loss": total_loss.item() / tokens.item(), "tokens": tokens.item(), "grad_norm": grad_norm,
                "lr": self.scheduler.get_last_lr()[0], "finite": math.isfinite(grad_norm)}

    # ---- validation ---------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        data, limit = self.valid.data, self.valid_limit
        pairs = [tuple(side[:limit] for side in data.pair(i)) for i in range(len(data))]
        total, tokens = 0.0, 0
        sampler = TokenBatchSampler(np.minimum(data.src_lengths, limit), np.minimum(data.tgt_lengths, limit),
                                    self.valid_max_tokens, 0, shuffle=False)
        for indices in sampler.epoch_batches(0):
            batch = collate([pairs[int(i)] for i in indices]).to(self.device)
            with autocast(self.precision, self.device):
                logits, _ = self.model(batch.src, batch.tgt_in)
            total += F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.tgt_out.view(-1),
                                     ignore_index=PAD_ID, reduction="sum").item()
            tokens += batch.target_tokens
        result = {"loss": total / max(tokens, 1), "ppl": math.exp(min(total / max(tokens, 1), 50))}
        if self.settings.valid_bleu:
            sources = [src for src, _ in pairs]
            with autocast(self.precision, self.device):
                hyps = search_corpus(self.model, sources, self.valid_settings, self.valid_max_tokens, self.device)
            outputs = [self.vocab.decode(h[0].tokens) for h in hyps]
            result["bleu"] = sacrebleu.corpus_bleu(outputs, [self.valid.references]).score
        return result

    @torch.no_grad()
    def attention_picture(self):
        """The attention of the first validation sentence, as a figure for TensorBoard."""
        source = self.valid.data.pair(0)[0][:self.valid_limit]
        hyp = search_corpus(self.model, [source], SearchSettings(beam_size=1), self.valid_max_tokens, self.device,
                            need_attention=True)[0][0]
        if hyp.attention is None:
            return None
        src_pieces = self.vocab.pieces(source.tolist()) + ["</s>"]
        tgt_pieces = self.vocab.pieces(hyp.tokens) + ["</s>"]
        return attention_figure(hyp.attention.float().numpy(), src_pieces, tgt_pieces, f"step {self.step}")

    # ---- the loop -----------------------------------------------------------------------
    def _handle_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def fit(self) -> dict:
        s = self.settings
        previous = {sig: signal.signal(sig, self._handle_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        started = time.monotonic() - self.trained_seconds
        window = {"loss": 0.0, "tokens": 0.0, "time": time.monotonic()}
        micro: list[np.ndarray] = []
        last_valid: dict = {}
        reason = self._stop_reason(started)  # a resumed run may already be done
        try:
            while reason is None:
                epoch = self.sampler.state.epoch
                if s.max_epochs and epoch >= s.max_epochs:
                    reason = f"reached {s.max_epochs} epochs"
                    break
                for indices in self.sampler:
                    micro.append(indices)
                    if len(micro) < s.accumulate:
                        continue
                    stats = self.train_step(micro)
                    micro = []
                    self.trained_seconds = time.monotonic() - started
                    window["loss"] += stats["loss"] * stats["tokens"]
                    window["tokens"] += stats["tokens"]
                    if self.step % s.log_every == 0:
                        self._log_train(stats, window)
                    reason = self._stop_reason(started)
                    if self.step % s.valid_every == 0 or reason:
                        last_valid = self._validate_and_save()
                        patience_over = s.patience > 0 and self.bad_validations >= s.patience
                        if broadcast_flag(patience_over, self.dist, self.device):
                            reason = reason or f"no validation improvement in {s.patience} validations"
                    if reason:
                        break
            if self.validated_step != self.step:
                last_valid = self._validate_and_save()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.writer:
                self.writer.flush()
        log.info("stopped at step %d: %s", self.step, reason)
        return {"step": self.step, "reason": reason, "valid": last_valid, "best": self.best_score,
                "skipped_steps": self.skipped_steps}

    def _stop_reason(self, started: float) -> str | None:
        s = self.settings
        reason = None
        if self.stop_signal is not None:
            reason = f"received {signal.Signals(self.stop_signal).name}"
        elif s.max_steps and self.step >= s.max_steps:
            reason = f"reached {s.max_steps} steps"
        elif s.max_minutes and time.monotonic() - started >= s.max_minutes * 60:
            reason = f"reached the {s.max_minutes} minute budget"
        # Every rank must stop at the same step, whatever its own clock says.
        return reason if broadcast_flag(reason is not None, self.dist, self.device) else None

    def _validate_and_save(self) -> dict:
        result: dict = {}
        is_best = False
        if self.dist.is_main and self.valid is not None:
            result = self.validate()
            score = result.get("bleu", -result["loss"])
            is_best = score > self.best_score
            if is_best:
                self.best_score = score
                self.bad_validations = 0
            else:
                self.bad_validations += 1
            log.info("step %d valid loss %.3f ppl %.2f%s", self.step, result["loss"], result["ppl"],
                     f" bleu {result['bleu']:.2f}" if "bleu" in result else "")
            for key, value in result.items():
                self.writer.add_scalar(f"valid/{key}", value, self.step)
            figure = self.attention_picture()
            if figure is not None:
                self.writer.add_figure("valid/attention", figure, self.step)
        elif self.dist.is_main:
            is_best = True
        self.save(is_best)
        self.validated_step = self.step
        barrier(self.dist)
        return result

    def _log_train(self, stats: dict, window: dict) -> None:
        """Loss and throughput summed over all ranks (a collective: every rank calls it)."""
        now = time.monotonic()
        totals = all_reduce_sum(torch.tensor([window["loss"], window["tokens"]], dtype=torch.float64,
                                             device=self.device), self.dist).tolist()
        tokens_per_second = totals[1] / max(now - window["time"], 1e-9)
        loss = totals[0] / max(totals[1], 1)
        if self.writer:
            self.writer.add_scalar("train/loss", loss, self.step)
            self.writer.add_scalar("train/lr", stats["lr"], self.step)
            self.writer.add_scalar("train/grad_norm", stats["grad_norm"], self.step)
            self.writer.add_scalar("train/tokens_per_second", tokens_per_second, self.step)
            log.info("step %d loss %.3f lr %.2e gnorm %.2f %.0f tok/s", self.step, loss, stats["lr"],
                     stats["grad_norm"], tokens_per_second)
        window.update(loss=0.0, tokens=0.0, time=now)
