"""Checkpoints: written atomically, loaded with weights_only=True, averaged for the final model.

A checkpoint is self-contained: weights, the model's config and the sentencepiece model,
so translation needs nothing else. Training state (optimizer, schedule, scaler, sampler
position, every rank's RNG and the progress record) rides along so a killed run resumes exactly.
"""

import math
import os
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from nmt.config import ModelConfig, plain_fields
from nmt.errors import NmtError
from nmt.io import atomic_open

# 2 keeps the training counters as one `progress` record; 1 (before it) still loads.
FORMAT = 2
READABLE_FORMATS = (1, 2)


@dataclass
class TrainingProgress:
    """The counters of a run, saved and restored as one object."""

    step: int = 0  # optimizer updates made; skipped (non-finite) ones do not count
    best_score: float = -math.inf  # best validation BLEU (or -loss without BLEU)
    bad_validations: int = 0  # validations in a row without a new best
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient, over the whole run
    skipped_in_a_row: int = 0
    trained_seconds: float = 0.0

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


def checkpoint_step(payload: dict) -> int | None:
    """The training step a checkpoint was written at; None for one made otherwise (an average)."""
    return payload["progress"]["step"] if "progress" in payload else payload.get("step")


def model_payload(model: torch.nn.Module, kind: str, config: ModelConfig, vocab_proto: bytes) -> dict:
    """What translation needs: the weights, the model's kind and sizes, the vocabulary."""
    return {"format": FORMAT, "model_kind": kind, "model_config": plain_fields(config),
            "vocab": vocab_tensor(vocab_proto), "model": model.state_dict()}


def training_payload(parts: TrainingParts, progress: TrainingProgress, batching: dict, rng: list[dict]) -> dict:
    """Everything a resumed run needs beyond model_payload; `rng` holds every rank's generators."""
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


def vocab_tensor(proto: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(proto), dtype=torch.uint8)


def vocab_bytes(payload: dict) -> bytes:
    """The sentencepiece model stored in a checkpoint."""
    return payload["vocab"].numpy().tobytes()


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename: a reader never sees half a checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def link_checkpoint(source: Path, alias: Path) -> None:
    """Point `alias` (last.pt, best.pt) at an already written checkpoint without copying it."""
    tmp = alias.with_name(f".{alias.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, alias)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely: tensors and plain values only, never code."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else "unsupported content"
        raise NmtError(f"checkpoint {path}: refused, it holds objects other than tensors and plain values "
                       f"({reason}); only load checkpoints written by nmt") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:  # torch.load on a damaged file
        raise NmtError(f"checkpoint {path}: not a readable checkpoint ({type(error).__name__}); "
                       "it may be truncated or corrupt, use another one (e.g. last.pt or a step_N.pt)") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise NmtError(f"checkpoint {path}: not an nmt checkpoint")
    if payload.get("format") not in READABLE_FORMATS:
        raise NmtError(f"checkpoint {path}: format {payload.get('format')} is not one this version reads "
                       f"({', '.join(map(str, READABLE_FORMATS))}); translate it with the nmt version that wrote it")
    return payload


def describe_mismatch(payload: dict, model_kind: str, model_config: ModelConfig, vocab_proto: bytes) -> str | None:
    """What differs between a checkpoint and the model about to use it, or None."""
    if payload["model_kind"] != model_kind:
        return f"model type {payload['model_kind']} in the checkpoint, {model_kind} configured"
    stored = payload["model_config"]
    current = plain_fields(model_config)
    diffs = [f"{k}: {stored.get(k)} vs {v}" for k, v in current.items() if stored.get(k) != v]
    if diffs:
        return "model settings differ (checkpoint vs config): " + ", ".join(diffs)
    if vocab_bytes(payload) != vocab_proto:
        return "the sentencepiece vocabulary differs from the prepared data's"
    return None


def periodic_checkpoints(directory: Path) -> list[Path]:
    """The step_N.pt files of a run, oldest first."""
    return sorted(directory.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def average_checkpoints(paths: list[Path]) -> dict:
    """The element-wise mean of the models' parameters (Vaswani et al. 2017, sec. 6.1)."""
    if not paths:
        raise NmtError("no checkpoints to average")
    payloads = [load_checkpoint(p) for p in paths]
    first = payloads[0]
    for path, payload in zip(paths[1:], payloads[1:]):
        if payload["model_config"] != first["model_config"] or payload["model_kind"] != first["model_kind"]:
            raise NmtError(f"checkpoint {path}: a different model from {paths[0]}; only average one run's checkpoints")
    averaged = {}
    for key, value in first["model"].items():
        if value.is_floating_point():
            averaged[key] = sum(p["model"][key].double() for p in payloads).div(len(payloads)).to(value.dtype)
        else:
            averaged[key] = value
    return {key: first[key] for key in ("model_kind", "model_config", "vocab")} | {
        "format": FORMAT, "model": averaged, "averaged_from": [str(p) for p in paths]}
