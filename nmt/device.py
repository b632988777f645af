"""Device and numeric precision: bf16 autocast where the GPU has it, fp16 with a scaler otherwise;
fp32 on a CPU unless bf16 is asked for."""

import contextlib

import torch

from nmt.choices import Precision
from nmt.errors import NmtError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NmtError(f"device={name}: no CUDA device is available; use device=cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise NmtError(f"device={name!r} is unknown: use auto, cpu or cuda")
    return torch.device(name)


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """auto picks bf16 on GPUs that support it, fp16 on older GPUs, fp32 on a CPU; a CPU takes bf16
    when asked for it."""
    if device.type != "cuda":
        return Precision.bf16 if precision is Precision.bf16 else Precision.fp32
    if precision is Precision.auto:
        return Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp16
    return precision


def autocast(precision: Precision, device: torch.device):
    if precision in (Precision.fp32, Precision.auto):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision is Precision.bf16 else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
