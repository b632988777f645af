"""Checkpoint files: written atomically, loaded with weights_only=True, averaged for the final model.

A checkpoint is self-contained: weights, the model's kind and sizes and the sentencepiece model,
so translation needs nothing else. A training run adds its own state (nmt.training.state).
"""

import pickle
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import torch

from nmt.config.model import ModelConfig, plain_fields
from nmt.data.vocab import Vocab
from nmt.errors import NmtError
from nmt.io import atomic_open
from nmt.models import build_model, config_from, model_kind
from nmt.models.interface import EncoderDecoder

# 3 names each Transformer sublayer's LayerNorm after its sublayer; 2 keeps the training counters as
# one `progress` record. Older formats still load.
FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
# Parameter names of formats 1 and 2 that format 3 renamed (Transformer layers).
_RENAMED_NORMS = {".attn_block.norm.": ".self_attn_norm.", ".self_block.norm.": ".self_attn_norm.",
                  ".cross_block.norm.": ".cross_attn_norm.", ".ffn_block.norm.": ".ffn_norm."}


def checkpoint_step(payload: dict) -> int | None:
    """The training step a checkpoint was written at; None for one made otherwise (an average)."""
    return payload["progress"]["step"] if "progress" in payload else payload.get("step")


def model_payload(model: torch.nn.Module, config: ModelConfig, vocab_proto: bytes) -> dict:
    """What translation needs: the weights, the model's kind and sizes, the vocabulary."""
    return {"format": FORMAT, "model_kind": model_kind(config), "model_config": plain_fields(config),
            "vocab": vocab_tensor(vocab_proto), "model": model.state_dict()}


def vocab_tensor(proto: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(proto), dtype=torch.uint8)


def vocab_bytes(payload: dict) -> bytes:
    """The sentencepiece model stored in a checkpoint."""
    return payload["vocab"].numpy().tobytes()


def payload_config(payload: dict) -> ModelConfig:
    return config_from(payload["model_kind"], payload["model_config"])


def load_model(payload: dict) -> tuple[EncoderDecoder, Vocab]:
    """The model a checkpoint holds, with its weights, on the CPU, and its vocabulary."""
    vocab = Vocab(vocab_bytes(payload))
    model = build_model(payload_config(payload), len(vocab))
    model.load_state_dict(payload["model"])
    return model, vocab


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename: a reader never sees half a checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


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
    if payload["format"] < 3:
        payload["model"] = {_renamed(key): value for key, value in payload["model"].items()}
    return payload


def _renamed(key: str) -> str:
    for old, new in _RENAMED_NORMS.items():
        key = key.replace(old, new)
    return key


def describe_mismatch(payload: dict, config: ModelConfig, vocab_proto: bytes) -> str | None:
    """What differs between a checkpoint and the model about to use it, or None."""
    if payload["model_kind"] != model_kind(config):
        return f"model type {payload['model_kind']} in the checkpoint, {model_kind(config)} configured"
    # Through the config type, so a checkpoint from before a field existed reads as its default.
    stored = plain_fields(config_from(payload["model_kind"], payload["model_config"]))
    diffs = [f"{k}: {stored.get(k)} vs {v}" for k, v in plain_fields(config).items() if stored.get(k) != v]
    if diffs:
        return "model settings differ (checkpoint vs config): " + ", ".join(diffs)
    if vocab_bytes(payload) != vocab_proto:
        return "the sentencepiece vocabulary differs from the prepared data's"
    return None


def average_checkpoints(paths: list[Path]) -> dict:
    """The element-wise mean of the models' parameters (Vaswani et al. 2017, sec. 6.1). One checkpoint
    is held at a time beside the running sums and the newest mean, however many are averaged."""
    return deque(running_averages(paths), maxlen=1).pop()


def running_averages(paths: list[Path]) -> Iterator[dict]:
    """The means of the newest 1, 2, ... len(paths) of `paths` (oldest first), every window ending at
    the newest, so choosing how many to average on validation loads each checkpoint once. One
    checkpoint is held at a time beside the running sums; what is not floating point (a counter) is
    the newest checkpoint's."""
    if not paths:
        raise NmtError("no checkpoints to average")
    newest = load_checkpoint(paths[-1])
    model = newest.pop("model")
    kept = {key: newest[key] for key in ("model_kind", "model_config", "vocab")}
    del newest  # a training checkpoint also holds the optimizer's state
    sums = {key: value.double() for key, value in model.items() if value.is_floating_point()}

    def mean(count: int) -> dict:
        averaged = {key: sums[key].div(count).to(value.dtype) if key in sums else value
                    for key, value in model.items()}
        return kept | {"format": FORMAT, "model": averaged, "averaged_from": [str(p) for p in paths[-count:]]}

    yield mean(1)
    for count in range(2, len(paths) + 1):
        path = paths[-count]
        payload = load_checkpoint(path)
        if payload["model_config"] != kept["model_config"] or payload["model_kind"] != kept["model_kind"]:
            raise NmtError(f"checkpoint {path}: a different model from {paths[-1]}; only average one run's checkpoints")
        for key, total in sums.items():
            total += payload["model"][key].double()
        del payload
        yield mean(count)
