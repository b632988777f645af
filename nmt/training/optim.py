"""Adam with a warmup schedule: inverse square root (Vaswani et al. 2017, eq. 3) or constant."""

import math

import torch

from nmt.choices import Schedule


def lr_factor(step: int, schedule: Schedule, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (1-based)."""
    step = max(step, 1)
    warmup = max(warmup_steps, 1)
    if schedule is Schedule.inverse_sqrt:
        return min(step / warmup, math.sqrt(warmup / step))
    return min(1.0, step / warmup)


def build_optimizer(model: torch.nn.Module, lr: float, betas: tuple[float, float], eps: float,
                    weight_decay: float, schedule: Schedule, warmup_steps: int):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    # LambdaLR counts from 0 for the first step; our schedule is 1-based.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda index: lr_factor(index + 1, schedule, warmup_steps))
    return optimizer, scheduler
