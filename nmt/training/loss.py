"""The training objective: cross-entropy of the reference tokens, summed over a batch's target
tokens (padding excluded), optionally label-smoothed (Szegedy et al. 2016), optionally with R-Drop's
consistency term between two dropout masks (Liang et al. 2021).

The loss and its gradient are computed together, a block of rows at a time, instead of through
autograd's log_softmax, nll and smoothing terms. Autograd's path allocates four or five fresh
(tokens x vocab) tensors an update (the log-probabilities and each term's gradient: 128 MB each
for 4k tokens and an 8k vocabulary). On a CPU, glibc hands blocks that large straight back to the
kernel, so every update page-faults them in again; that, not arithmetic, was a fifth of a
Transformer update's time. Here the gradient overwrites the logits, and the rest stays in blocks
small enough to be reused. (Measured on CPUs only; on a GPU the caching allocator has no such cost,
and larger blocks keep the kernel launches few.)
"""

from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

from nmt.data.batching import Batch
from nmt.data.vocab import PAD_ID

# Rows per block: on a CPU about 4M logits (16 MB in float32) whatever the vocabulary, below glibc's
# largest mmap threshold (32 MB), so once the threshold has risen a block's temporaries come from
# the heap; on a GPU 64M, which bounds the float32 temporaries of half-precision logits.
BLOCK_ELEMENTS = 1 << 22
CUDA_BLOCK_ELEMENTS = 1 << 26


def _block_rows(logits: torch.Tensor) -> int:
    elements = CUDA_BLOCK_ELEMENTS if logits.is_cuda else BLOCK_ELEMENTS
    return max(1, elements // logits.size(1))


class TrainingLoss(NamedTuple):
    """One batch's loss, summed over its target tokens."""
    objective: torch.Tensor  # what backward runs on
    # R-Drop's (KL(p||q) + KL(q||p)) / 2, detached, for the log (fairseq's rdrop_kl_loss); 0 without R-Drop
    rdrop_kl: torch.Tensor


def token_cross_entropy(logits: torch.Tensor, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """logits: (batch, tgt_len, vocab) for batch.tgt_out; computed in float32 whatever autocast chose."""
    return smoothed_cross_entropy(logits.view(-1, logits.size(-1)), batch.tgt_out.reshape(-1), label_smoothing)


def rdrop_cross_entropy(logits: torch.Tensor, batch: Batch, label_smoothing: float, alpha: float) -> TrainingLoss:
    """R-Drop: logits (2 * batch, tgt_len, vocab) for the batch twice over, under two dropout masks.
    Summed over the batch's target tokens: the mean of the two copies' cross-entropies plus
    alpha / 4 * (KL(p||q) + KL(q||p)). That is half of fairseq's rdrop criterion (both copies'
    cross-entropies plus alpha times half the symmetric KL, over the batch's tokens once), with the
    same weight alpha between the terms; halved so that an update's gradient has a plain update's
    scale, and trainer.clip_norm clips as it does without R-Drop."""
    vocab = logits.size(-1)
    targets = batch.tgt_out.reshape(-1)
    cross_entropy = smoothed_cross_entropy(logits.view(-1, vocab), targets.repeat(2), label_smoothing) / 2
    # KL(p||q) + KL(q||p) = sum_v (p - q)(log p - log q), in float32; padding rows contribute nothing.
    # In float32 the log-softmax reads the very logits that the cross-entropy's backward overwrites with
    # their gradient; that is safe because log_softmax's backward uses its output, not its input.
    log_p, log_q = torch.log_softmax(logits.float().view(2, -1, vocab), dim=-1).unbind(0)
    symmetric_kl = ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(-1)
    kl = symmetric_kl.masked_fill(targets == PAD_ID, 0.0).sum() / 2
    return TrainingLoss(cross_entropy + alpha / 2 * kl, kl.detach())


def smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0,
                           ignore_index: int = PAD_ID) -> torch.Tensor:
    """The summed loss of F.cross_entropy(logits, targets, ignore_index=..., label_smoothing=...,
    reduction="sum") and its gradient: logits (rows, vocab), targets (rows,). Backward overwrites
    `logits` with their gradient, so pass a layer's output that nothing reads afterwards."""
    if logits.requires_grad and logits.grad_fn is None:
        logits = logits.clone()  # a leaf's own values must survive its backward
    return _SmoothedCrossEntropy.apply(logits, targets, label_smoothing, ignore_index)


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Per row with target y (ε = label_smoothing, V = vocabulary, z the logits):
    loss = logsumexp(z) - (1 - ε) z_y - (ε / V) Σ_j z_j,  gradient = softmax(z) - (1 - ε) onehot(y) - ε / V;
    rows whose target is ignore_index contribute neither. Backward writes the gradient over the
    logits, which no layer needs after the loss (a linear layer keeps its input, not its output),
    so the update allocates no (rows x vocab) tensor beyond the logits themselves."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float,
                ignore_index: int) -> torch.Tensor:
        rows, vocab = logits.shape
        block = _block_rows(logits)
        kept = targets != ignore_index
        safe_targets = targets.masked_fill(~kept, 0)  # any valid index: those rows are masked out
        lse = torch.empty(rows, dtype=torch.float32, device=logits.device)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, rows, block):
            z, y = logits[start:start + block].float(), safe_targets[start:start + block].unsqueeze(1)
            lse[start:start + block] = torch.logsumexp(z, dim=1)
            loss = (lse[start:start + block].unsqueeze(1) - (1.0 - label_smoothing) * z.gather(1, y)
                    - (label_smoothing / vocab) * z.sum(1, keepdim=True))
            total += loss.squeeze(1).masked_fill(~kept[start:start + block], 0.0).sum()
        ctx.save_for_backward(logits, safe_targets, kept, lse)
        ctx.label_smoothing = label_smoothing
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        logits, targets, kept, lse = ctx.saved_tensors
        rows, vocab = logits.shape
        block = _block_rows(logits)
        smoothing = ctx.label_smoothing
        for start in range(0, rows, block):
            out = logits[start:start + block]
            y = targets[start:start + block].unsqueeze(1)
            g = out.float()  # out itself in float32; a half-precision block is computed in a float32 copy
            g.sub_(lse[start:start + block].unsqueeze(1)).exp_().sub_(smoothing / vocab)
            g.scatter_add_(1, y, g.new_full(y.shape, smoothing - 1.0))
            g.mul_(kept[start:start + block].unsqueeze(1) * grad_output)
            if g.data_ptr() != out.data_ptr():
                out.copy_(g)
        return logits, None, None, None
