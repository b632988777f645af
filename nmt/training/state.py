"""What a run's checkpoint carries besides the model, so a killed run resumes exactly: the
optimizer, schedule, scaler, sampler position, every rank's RNG and the run's counters; and the
run's checkpoint files, step_N.pt with last.pt and best.pt linked to them, and average.pt."""

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from nmt.errors import NmtError
from nmt.models.checkpoint import average_checkpoints, checkpoint_step, load_checkpoint, save_checkpoint

AVERAGE = "average.pt"  # in checkpoints/, the mean of (up to) trainer.average_last step_N.pt
BEST = "best.pt"


@dataclass
class TrainingProgress:
    """The counters of a run, saved and restored as one object."""

    step: int = 0  # optimizer updates made; skipped (non-finite) ones do not count
    best_score: float = -math.inf  # best validation BLEU (or -loss without BLEU)
    bad_validations: int = 0  # validations in a row without a new best
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient, over the whole run
    skipped_in_a_row: int = 0
    trained_seconds: float = 0.0  # wall clock from the first update, validations included
    target_tokens: int = 0  # of the updates counted in `step`, summed over all ranks
    best_step: int = 0  # the step of best.pt; 0: none yet, or a checkpoint from before this field

    @classmethod
    def from_payload(cls, payload: dict) -> "TrainingProgress":
        if "progress" in payload:
            return cls(**payload["progress"])
        # Format 1 kept the counters at the top level and did not keep skipped_steps.
        return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})


@dataclass
class TrainingParts:
    """The objects whose state a checkpoint carries besides the weights."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a torch LR scheduler
    scaler: torch.amp.GradScaler
    sampler: Any  # nmt.data.batching.TokenBatchSampler


def training_payload(parts: TrainingParts, progress: TrainingProgress, batching: dict, rng: list[dict]) -> dict:
    """Everything a resumed run needs beyond the model's payload; `rng` holds every rank's generators."""
    return {"optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
            "scaler": parts.scaler.state_dict(), "sampler": parts.sampler.state_dict(), "batching": batching,
            "rng": rng, "progress": asdict(progress)}


def restore_training(payload: dict, parts: TrainingParts, rank: int, device: torch.device) -> TrainingProgress:
    """Load the states of `parts` and this rank's RNG; the sampler's position only where
    `payload["batching"]` still describes it (the caller compares and resets otherwise)."""
    parts.model.load_state_dict(payload["model"])
    parts.optimizer.load_state_dict(payload["optimizer"])
    parts.scheduler.load_state_dict(payload["scheduler"])
    if parts.scaler.is_enabled() and payload["scaler"]:
        parts.scaler.load_state_dict(payload["scaler"])
    parts.sampler.load_state_dict(payload["sampler"])
    rng = payload["rng"]
    own = rng[rank] if rank < len(rng) else rng[0]
    torch.set_rng_state(own["cpu"])
    if device.type == "cuda" and own["cuda"].numel():
        torch.cuda.set_rng_state(own["cuda"])
    return TrainingProgress.from_payload(payload)


def rng_state(device: torch.device) -> dict:
    cuda = torch.cuda.get_rng_state() if device.type == "cuda" else torch.zeros(0, dtype=torch.uint8)
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def link_checkpoint(source: Path, alias: Path) -> None:
    """Point `alias` (last.pt, best.pt) at an already written checkpoint without copying it."""
    tmp = alias.with_name(f".{alias.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, alias)


def periodic_checkpoints(directory: Path) -> list[Path]:
    """The step_N.pt files of a run, oldest first."""
    return sorted(directory.glob("step_*.pt"), key=checkpoint_file_step)


def average_window(directory: Path, count: int, end_step: int | None = None) -> list[Path]:
    """The `count` step_N.pt in `directory` that end at the newest one, or at step_`end_step`.pt
    (best.pt's step, to average up to best), oldest first; fewer where fewer exist."""
    files = periodic_checkpoints(directory)
    if end_step is not None:
        files = [path for path in files if checkpoint_file_step(path) <= end_step]
        if not files or checkpoint_file_step(files[-1]) != end_step:
            raise NmtError(f"{step_file(directory, end_step)}: the best checkpoint's file is missing (rotated "
                           "out); average the newest instead (trainer.average_until=last, or --until last)")
    return files[-count:] if count > 0 else []


def best_checkpoint_step(directory: Path) -> int:
    """The step best.pt in `directory` was written at."""
    step = checkpoint_step(load_checkpoint(directory / BEST))
    if step is None:
        raise NmtError(f"{directory / BEST}: has no training step; it is not a run's best checkpoint")
    return step


def write_average(directory: Path, count: int, output: Path, end_step: int | None = None) -> dict:
    """Write the mean of `average_window`'s step_N.pt to `output`, atomically; its payload
    (`averaged_from` names the files, fewer than `count` where fewer exist)."""
    payload = average_checkpoints(average_window(directory, count, end_step))
    save_checkpoint(output, payload)
    return payload


def step_file(directory: Path, step: int) -> Path:
    """The periodic checkpoint of `step` in `directory`: step_N.pt."""
    return directory / f"step_{step}.pt"


def checkpoint_file_step(path: str | Path) -> int:
    """N of a step_N.pt file name."""
    return int(Path(path).stem.split("_")[1])
