"""One training run from a composed config: prepare the data if needed, build or resume the
model, train, and keep the run in one directory (config.yaml, spm.model, checkpoints/, tensorboard/).
Under torchrun every rank runs this; rank 0 alone prepares first and writes."""

import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nmt.config import TrainConfig
from nmt.data import prepare_from_config
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import Vocab
from nmt.device import resolve_device, resolve_precision
from nmt.errors import NmtError
from nmt.io import atomic_open, atomic_write_text, read_lines, setup_logging
from nmt.models import build_model
from nmt.models.checkpoint import describe_mismatch, load_checkpoint
from nmt.training.distributed import DistInfo, barrier, init_distributed, shutdown
from nmt.training.trainer import Trainer
from nmt.training.validation import ValidationSet

log = logging.getLogger("nmt.train")


def run_training(config: TrainConfig, run_dir: Path) -> dict | None:
    """Train in `run_dir` (resuming from its last.pt); rank 0 gets the summary of how it stopped."""
    device = resolve_device(config.trainer.device)
    dist_info = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    setup_logging(run_dir / "train.log" if dist_info.is_main else None)
    if config.trainer.threads:
        torch.set_num_threads(config.trainer.threads)
    try:
        summary = _train(config, run_dir, device, dist_info)
    finally:
        shutdown(dist_info)
    return summary if dist_info.is_main else None


def _train(config: TrainConfig, run_dir: Path, device: torch.device, dist_info: DistInfo) -> dict:
    # Rank 0 prepares; the others wait and then find the cache.
    if dist_info.is_main:
        cache = prepare_from_config(config.data)
    barrier(dist_info)
    if not dist_info.is_main:
        cache = prepare_from_config(config.data)
    vocab = Vocab.from_file(str(cache / "spm.model"))
    train_data = EncodedSplit(cache, "train")
    torch.manual_seed(config.trainer.seed)
    model = build_model(config.model, len(vocab)).to(device)
    # Dropout differs per rank; the initial weights are rank 0's (DDP broadcasts them).
    torch.manual_seed(config.trainer.seed + dist_info.rank)
    precision = resolve_precision(config.trainer.precision, device)
    trainer = Trainer(model=model, model_config=config.model, vocab=vocab, train=train_data,
                      valid=_validation_set(cache, model.max_positions, config.data.max_tokens),
                      valid_search=config.decode if config.trainer.valid_bleu else None, settings=config.trainer,
                      optim=config.optim, max_tokens=config.data.max_tokens, run_dir=run_dir, device=device,
                      precision=precision, dist=dist_info)
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        payload = load_checkpoint(last)
        mismatch = describe_mismatch(payload, config.model, vocab.proto)
        if mismatch:
            raise NmtError(f"cannot resume from {last}: {mismatch}; use another run_dir")
        trainer.resume(payload)
        log.info("resumed from %s at step %d", last, trainer.progress.step)
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(config)))
        with atomic_open(run_dir / "spm.model", "wb") as f:
            f.write(vocab.proto)
        parameters = sum(p.numel() for p in model.parameters())
        log.info("model %s: %.1fM parameters, device %s, %s, %d training pairs", config.model.name,
                 parameters / 1e6, device, precision.value, len(train_data))
    return trainer.fit()


def _validation_set(cache: Path, max_positions: int, max_tokens: int) -> ValidationSet | None:
    if not (cache / "valid.src_len.npy").is_file():
        return None
    references, _ = read_lines((cache / "valid.tgt.txt").read_bytes(), str(cache / "valid.tgt.txt"))
    valid = ValidationSet(EncodedSplit(cache, "valid"), references, max_positions, max_tokens)
    if len(references) != len(valid.data):
        raise NmtError(f"{cache}: valid.tgt.txt has {len(references)} lines for {len(valid.data)} pairs; "
                       "delete the cache directory to rebuild it")
    return valid
