"""Adam with a warmup schedule: inverse square root (Vaswani et al. 2017, eq. 3), constant, or cosine
decay over a fixed number of updates (Loshchilov & Hutter 2017, without restarts)."""

import math

import torch

from nmt.choices import Schedule


def lr_factor(step: int, schedule: Schedule, warmup_steps: int, total_steps: int = 0) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (1-based); `total_steps` is the
    run's last step, which only cosine needs."""
    step = max(step, 1)
    warmup = max(warmup_steps, 1)
    if step < warmup:
        return step / warmup
    if schedule is Schedule.inverse_sqrt:
        return math.sqrt(warmup / step)
    if schedule is Schedule.cosine:
        # Zero one step after the last, so that the last update still moves the weights.
        progress = min((step - warmup) / (total_steps + 1 - warmup), 1.0)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def build_optimizer(model: torch.nn.Module, lr: float, betas: tuple[float, float], eps: float,
                    weight_decay: float, schedule: Schedule, warmup_steps: int, total_steps: int = 0):
    if schedule is Schedule.cosine and total_steps <= warmup_steps:
        # The config checks this for the CLI; Python callers get the same rule.
        raise ValueError(f"cosine needs total_steps ({total_steps}) above warmup_steps ({warmup_steps})")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    # LambdaLR counts from 0 for the first step; our schedule is 1-based.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda index: lr_factor(index + 1, schedule, warmup_steps, total_steps))
    return optimizer, scheduler
