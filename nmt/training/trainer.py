"""The training loop: updates epoch after epoch, validation and checkpoints every
`trainer.valid_every` steps, TensorBoard logs, a clean stop on a budget, patience or a signal, and
at the end (not on a signal) the average of the last checkpoints, validated beside the best one.

The pieces it wires: `update.Updater` (one optimizer update), `validation.validate`,
`state` (what a run's checkpoint carries and how it is restored), `data.batching` (the batches).
"""

import logging
import signal
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from nmt.choices import AverageUntil, Precision
from nmt.config import ModelConfig, OptimConfig, SearchSettings, TrainerConfig
from nmt.data.batching import TokenBatchSampler, collate
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import Vocab
from nmt.errors import NmtError
from nmt.models.checkpoint import average_checkpoints, load_model, model_payload, running_averages, save_checkpoint
from nmt.models.interface import EncoderDecoder
from nmt.training.distributed import DistInfo, all_reduce_sum, barrier, broadcast_flag, gather_objects
from nmt.training.optim import build_optimizer
from nmt.training.state import (
    AVERAGE,
    BEST,
    TrainingParts,
    TrainingProgress,
    average_window,
    best_checkpoint_step,
    checkpoint_file_step,
    link_checkpoint,
    periodic_checkpoints,
    restore_training,
    rng_state,
    step_file,
    training_payload,
)
from nmt.training.update import Updater, UpdateResult, UpdateSettings
from nmt.training.validation import ValidationSet, attention_picture, validate

log = logging.getLogger(__name__)


class StopSignals:
    """While active, SIGTERM and SIGINT are remembered instead of ending the process, so the
    loop can write a checkpoint and exit cleanly."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._remember) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _remember(self, signum, frame) -> None:
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def validation_score(result: dict) -> float:
    """What ranks validations, higher is better: BLEU, or minus the loss when validation has no BLEU."""
    return result.get("bleu", -result["loss"])


class Trainer:
    def __init__(self, *, model: EncoderDecoder, model_config: ModelConfig, vocab: Vocab, train: EncodedSplit,
                 valid: ValidationSet | None, valid_search: SearchSettings | None, settings: TrainerConfig,
                 optim: OptimConfig, max_tokens: int, run_dir: Path, device: torch.device, precision: Precision,
                 dist: DistInfo):
        """`valid_search`: how validation BLEU decodes (None: no BLEU, checkpoints ranked by loss)."""
        self.model, self.model_config, self.vocab, self.train_data = model, model_config, vocab, train
        self.valid, self.valid_search, self.settings = valid, valid_search, settings
        self.device, self.precision, self.dist = device, precision, dist
        self.checkpoints = run_dir / "checkpoints"
        # Checked on every rank before training, not hours later on rank 0 alone.
        if settings.average_select and valid is None:
            raise NmtError("trainer.average_select: the run has no validation data to choose N on; "
                           "give data a validation split or set trainer.average_select=false")
        optimizer, scheduler = build_optimizer(model, optim.lr, optim.betas, optim.eps, optim.weight_decay,
                                               optim.schedule, optim.warmup_steps, settings.max_steps)
        sampler = TokenBatchSampler(train.src_lengths, train.tgt_lengths, max_tokens, settings.seed,
                                    rank=dist.rank, world_size=dist.world_size)
        self.parts = TrainingParts(model, optimizer, scheduler,
                                   torch.amp.GradScaler(device.type, enabled=precision is Precision.fp16), sampler)
        self.progress = TrainingProgress()
        net = torch.compile(model) if settings.compile else model
        net = DistributedDataParallel(net) if dist.enabled else net
        self.updater = Updater(net=net, parts=self.parts, precision=precision, device=device, dist=dist,
                               settings=UpdateSettings(settings.label_smoothing, settings.clip_norm,
                                                       settings.max_bad_steps, settings.rdrop_alpha,
                                                       settings.rdrop_from, settings.word_dropout))
        self.validated_step = -1
        self.writer = None
        if dist.is_main:
            # A run killed while writing leaves its temporary files (dot-names) behind; never checkpoints.
            for stale in self.checkpoints.glob(".*"):
                stale.unlink()
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    # ---- checkpoints -------------------------------------------------------------------
    def batching(self) -> dict:
        """What the sampler's position means; a resume with other values cannot reuse it."""
        sampler = self.parts.sampler
        return {"max_tokens": sampler.max_tokens, "seed": sampler.seed, "world_size": self.dist.world_size}

    def resume(self, payload: dict) -> None:
        self.progress = restore_training(payload, self.parts, self.dist.rank, self.device)
        # The checkpoint resumed from is never written or validated again: a finished run's was
        # validated, and a resume point (a signal's) stays last.pt until the next validation.
        self.validated_step = self.progress.step
        # A checkpoint from before best_step: best.pt knows its own step (rank 0 alone rotates and averages).
        if (self.dist.is_main and self._may_average_to_best() and not self.progress.best_step
                and (self.checkpoints / BEST).exists()):
            self.progress.best_step = best_checkpoint_step(self.checkpoints)
        if payload["batching"] != self.batching():
            log.warning("batching changed since the checkpoint (%s, now %s): the current epoch starts over",
                        payload["batching"], self.batching())
            self.parts.sampler.load_state_dict({"epoch": payload["sampler"]["epoch"], "position": 0})

    def save(self, is_best: bool, resume_point: bool = False) -> None:
        """step_N.pt is written once; last.pt and best.pt are links to it. A resume point is last.pt
        alone: no step_N.pt, so it is never best, averaged or rotated. Called on every rank."""
        rng_states = gather_objects(rng_state(self.device), self.dist)
        if not self.dist.is_main:
            return
        last = self.checkpoints / "last.pt"
        path = last if resume_point else step_file(self.checkpoints, self.progress.step)
        payload = model_payload(self.model, self.model_config, self.vocab.proto)
        try:
            save_checkpoint(path, payload | training_payload(self.parts, self.progress, self.batching(), rng_states))
            if not resume_point:
                link_checkpoint(path, last)
            if is_best:
                link_checkpoint(path, self.checkpoints / BEST)
        except OSError as error:
            raise NmtError(f"cannot write checkpoint {path}: {error.strerror}; "
                           "free space or fix permissions, the previous last.pt is intact") from None
        self._rotate()

    def _may_average_to_best(self) -> bool:
        """Whether the run's average may end at best.pt's step (`best`, or `auto` once patience runs out)."""
        return bool(self.settings.average_last) and self.settings.average_until is not AverageUntil.last

    def _average_end(self) -> int | None:
        """Where the average's window ends: None for the newest step_N.pt, or best.pt's step."""
        until, best = self.settings.average_until, self.progress.best_step
        if until is AverageUntil.best:
            if not best:
                raise NmtError(f"{self.checkpoints / BEST}: the run has no best checkpoint to average up to; "
                               "average with trainer.average_until=last")
            return best
        if until is AverageUntil.last or not 0 < self.settings.patience <= self.progress.bad_validations:
            return None
        if not step_file(self.checkpoints, best).exists():
            # A run trained without averaging, or before best's window was kept, rerun to average.
            log.warning("patience ran out, but best.pt's step_%d.pt was rotated out: averaging the newest "
                        "checkpoints instead", best)
            return None
        return best

    def _rotate(self) -> None:
        """Delete the periodic checkpoints past the newest `keep_last`, except those the run's average
        will take; last.pt / best.pt are hard links and keep their data."""
        s = self.settings
        if s.keep_last == 0:
            return
        files = periodic_checkpoints(self.checkpoints)
        kept = set(files[-s.keep_last:])
        # auto keeps best's window too, for the case that patience ends the run. A run resumed with
        # `best` after best's step_N.pt was rotated out has no window to keep; its average says so.
        best = self.progress.best_step
        if self._may_average_to_best() and step_file(self.checkpoints, best).exists():
            kept |= set(average_window(self.checkpoints, s.average_last, best))
        for old in files:
            if old not in kept:
                old.unlink()

    # ---- the loop -----------------------------------------------------------------------
    def fit(self) -> dict:
        s, progress = self.settings, self.progress
        started = time.monotonic() - progress.trained_seconds
        window = {"loss": 0.0, "rdrop_kl": 0.0, "tokens": 0.0, "time": time.monotonic()}
        last_valid: dict = {}
        with StopSignals() as signals:
            # A resumed run may already be done: rerunning a finished run (to re-average it with
            # another trainer.average_last) must not train past where it stopped.
            reason = self._stop_reason(signals, started) or self._patience_over()
            for micro_batches in self._update_batches() if reason is None else ():
                result = self.step(micro_batches)
                progress.trained_seconds = time.monotonic() - started
                window["loss"] += result.loss * result.tokens
                window["rdrop_kl"] += result.rdrop_kl * result.tokens
                window["tokens"] += result.tokens
                if result.finite and progress.step % s.log_every == 0:
                    self._log_train(result, window)
                reason = self._stop_reason(signals, started)
                if result.finite and progress.step % s.valid_every == 0:
                    last_valid = self._validate_and_save()
                    reason = reason or self._patience_over()
                if reason:
                    break
            else:
                reason = reason or f"reached {s.max_epochs} epochs"
            # A signal interrupts a run that its rerun resumes and ends. Its checkpoint is a resume
            # point, neither validated nor counted towards best or patience, so the rerun ends where an
            # uninterrupted run would, and a scheduler's grace period before SIGKILL is not spent on
            # validation. Every other stop (steps, budget, epochs) ends the run with a validated one.
            interrupted = broadcast_flag(signals.received is not None, self.dist, self.device)
            if self.validated_step != progress.step:
                if interrupted:
                    self.save(is_best=False, resume_point=True)
                else:
                    last_valid = self._validate_and_save()
        average = self._average() if s.average_last and not interrupted else {}
        if self.writer:
            self.writer.flush()
        log.info("stopped at step %d: %s", progress.step, reason)
        return {"step": progress.step, "reason": reason, "valid": last_valid, "best": progress.best_score,
                "skipped_steps": progress.skipped_steps} | ({"average": average} if average else {})

    def step(self, micro_batches: list[np.ndarray]) -> UpdateResult:
        """One optimizer update from micro-batches of example indices."""
        batches = [collate([self.train_data.pair(int(i)) for i in indices]).to(self.device)
                   for indices in micro_batches]
        return self.updater.update(batches, self.progress)

    def _update_batches(self) -> Iterator[list[np.ndarray]]:
        """Groups of `accumulate` micro-batches (example indices), epoch after epoch, until max_epochs."""
        s, sampler, micro = self.settings, self.parts.sampler, []
        while not (s.max_epochs and sampler.state.epoch >= s.max_epochs):
            for indices in sampler:
                micro.append(indices)
                if len(micro) == s.accumulate:
                    yield micro
                    micro = []

    def _stop_reason(self, signals: StopSignals, started: float) -> str | None:
        s = self.settings
        reason = None
        if signals.received is not None:
            reason = f"received {signal.Signals(signals.received).name}"
        elif s.max_steps and self.progress.step >= s.max_steps:
            reason = f"reached {s.max_steps} steps"
        elif s.max_minutes and time.monotonic() - started >= s.max_minutes * 60:
            reason = f"reached the {s.max_minutes} minute budget"
        # Every rank must stop at the same step, whatever its own clock says: rank 0's decision holds.
        if not broadcast_flag(reason is not None, self.dist, self.device):
            return None
        return reason or "rank 0 stopped the run"

    def _patience_over(self) -> str | None:
        patience = self.settings.patience
        over = patience > 0 and self.progress.bad_validations >= patience
        return f"no validation improvement in {patience} validations" if broadcast_flag(
            over, self.dist, self.device) else None

    def _validate_and_save(self) -> dict:
        result: dict = {}
        is_best = self.dist.is_main
        if self.dist.is_main:
            self._log_progress()
        if self.dist.is_main and self.valid is not None:
            result = validate(self.model, self.valid, self.vocab, self.valid_search, self.device, self.precision)
            is_best = self._record(result)
        if is_best:
            self.progress.best_step = self.progress.step
        self.save(is_best)
        self.validated_step = self.progress.step
        barrier(self.dist)
        return result

    def _record(self, result: dict) -> bool:
        """Track the best score and write the validation to the log and TensorBoard; True if best."""
        progress, score = self.progress, validation_score(result)
        is_best = score > progress.best_score
        progress.best_score = max(score, progress.best_score)
        progress.bad_validations = 0 if is_best else progress.bad_validations + 1
        log.info("step %d valid loss %.3f ppl %.2f%s", progress.step, result["loss"], result["ppl"],
                 f" bleu {result['bleu']:.2f}" if "bleu" in result else "")
        for key, value in result.items():
            self.writer.add_scalar(f"valid/{key}", value, progress.step)
        figure = attention_picture(self.model, self.valid, self.vocab, self.device, f"step {progress.step}")
        if figure is not None:
            self.writer.add_figure("valid/attention", figure, progress.step)
        return is_best

    def _average(self) -> dict:
        """Rank 0 writes average.pt from `average_last` checkpoints (the newest, or those up to best.pt's),
        or from as many of them as validate best, and validates it; the files averaged and the
        validation (a collective: every rank calls it)."""
        result: dict = {}
        s = self.settings
        if self.dist.is_main:
            end = self._average_end()
            window = average_window(self.checkpoints, s.average_last, end)
            if len(window) < s.average_last and not s.average_select:  # a bound when selecting
                log.warning("only %d checkpoints to average, not trainer.average_last=%d", len(window),
                            s.average_last)
            chosen, scores = None, {}
            for payload in running_averages(window) if s.average_select else [average_checkpoints(window)]:
                steps = [checkpoint_file_step(path) for path in payload["averaged_from"]]
                candidate = {"checkpoints": len(steps), "steps": steps, "until": "last" if end is None else "best"}
                if self.valid is not None:
                    model, _ = load_model(payload)  # as translate and serve load it
                    candidate |= validate(model.to(self.device), self.valid, self.vocab, self.valid_search,
                                          self.device, self.precision)
                    del model  # one candidate on the device at a time
                    self._record_average(candidate)
                    scores[len(steps)] = validation_score(candidate)
                # Ties go to the larger N, the smoother average.
                if chosen is None or scores[len(steps)] >= max(scores.values()):
                    chosen, result = payload, candidate
            save_checkpoint(self.checkpoints / AVERAGE, chosen)
            if s.average_select:
                result["chosen_from"] = scores
                log.info("chose the average of %d checkpoints on validation (of 1-%d)", result["checkpoints"],
                         len(window))
                self.writer.add_scalar("average/chosen_n", result["checkpoints"], self.progress.step)
            log.info("wrote %s", self.checkpoints / AVERAGE)
        barrier(self.dist)
        return result

    def _record_average(self, result: dict) -> None:
        """The average's validation beside the best single checkpoint's, in the log and TensorBoard.
        Tags carry N and the window's end, so the finished run rerun with other values draws each as its
        own series."""
        n, best = result["checkpoints"], self.progress.best_score
        first, last = result["steps"][0], result["steps"][-1]
        to_best = result["until"] == "best"
        # best_score is the best BLEU, or minus the best loss when validation has no BLEU.
        best_name, best_value = ("bleu", best) if "bleu" in result else ("loss", -best)
        log.info("average of the last %d checkpoints%s (steps %d-%d): valid loss %.3f ppl %.2f%s; "
                 "best single checkpoint: %s %.3f", n, " up to best.pt" if to_best else "", first, last,
                 result["loss"], result["ppl"], f" bleu {result['bleu']:.3f}" if "bleu" in result else "",
                 best_name, best_value)
        for key in ("loss", "ppl", "bleu"):
            if key in result:
                self.writer.add_scalar(f"average/{key}_last_{n}{'_to_best' if to_best else ''}", result[key],
                                       self.progress.step)
        self.writer.add_scalar(f"average/best_single_{best_name}", best_value, self.progress.step)

    def _log_progress(self) -> None:
        """What a learning curve puts beside each validation: target tokens trained on and minutes."""
        progress = self.progress
        self.writer.add_scalar("train/target_tokens", progress.target_tokens, progress.step)
        self.writer.add_scalar("train/minutes", progress.trained_seconds / 60, progress.step)

    def _log_train(self, result: UpdateResult, window: dict) -> None:
        """Loss and throughput summed over all ranks (a collective: every rank calls it)."""
        now = time.monotonic()
        loss_sum, kl_sum, tokens = all_reduce_sum(torch.tensor(
            [window["loss"], window["rdrop_kl"], window["tokens"]], dtype=torch.float64, device=self.device),
            self.dist).tolist()
        tokens_per_second = tokens / max(now - window["time"], 1e-9)
        loss, kl = loss_sum / max(tokens, 1), kl_sum / max(tokens, 1)
        # The KL is logged once the window's last update used R-Drop (none before trainer.rdrop_from).
        rdrop = self.updater.settings.rdrop_at(self.progress.step - 1)
        if self.writer:
            scalars = [("loss", loss), ("lr", result.lr), ("grad_norm", result.grad_norm),
                       ("tokens_per_second", tokens_per_second)] + ([("rdrop_kl", kl)] if rdrop else [])
            for key, value in scalars:
                self.writer.add_scalar(f"train/{key}", value, self.progress.step)
            log.info("step %d loss %.3f%s lr %.2e gnorm %.2f %.0f tok/s", self.progress.step, loss,
                     f" rdrop_kl {kl:.4f}" if rdrop else "", result.lr, result.grad_norm, tokens_per_second)
        window.update(loss=0.0, rdrop_kl=0.0, tokens=0.0, time=now)
