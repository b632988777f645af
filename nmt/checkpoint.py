"""Checkpoints: written atomically, loaded with weights_only=True, averaged for the final model.

A checkpoint is self-contained: weights, the model's config and the sentencepiece model,
so translation needs nothing else. Training state (optimizer, schedule, RNG, sampler
position) rides along so a killed run resumes exactly.
"""

import dataclasses
import os
import pickle
from pathlib import Path

import torch

from nmt.config import GRUConfig, ModelConfig, TransformerConfig
from nmt.errors import NmtError
from nmt.io import atomic_open

FORMAT = 1
_CONFIG_TYPES = {"gru_attention": GRUConfig, "transformer": TransformerConfig}


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
    except Exception as error:  # noqa: BLE001 - any failure to parse means a damaged file
        raise NmtError(f"checkpoint {path}: not a readable checkpoint ({type(error).__name__}); "
                       "it may be truncated or corrupt, use another one (e.g. last.pt or a step_N.pt)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "model" not in payload:
        raise NmtError(f"checkpoint {path}: not an nmt checkpoint (format {FORMAT} expected)")
    return payload


def model_config_from(payload: dict) -> ModelConfig:
    return _CONFIG_TYPES[payload["model_kind"]](**payload["model_config"])


def describe_mismatch(payload: dict, model_kind: str, model_config: ModelConfig, vocab_proto: bytes) -> str | None:
    """What differs between a checkpoint and the model about to use it, or None."""
    if payload["model_kind"] != model_kind:
        return f"model type {payload['model_kind']} in the checkpoint, {model_kind} configured"
    stored = payload["model_config"]
    current = {k: v for k, v in dataclasses.asdict(model_config).items() if k != "name"}
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
    return {key: first[key] for key in ("format", "model_kind", "model_config", "vocab")} | {
        "model": averaged, "averaged_from": [str(p) for p in paths]}
