"""`python -m nmt.train`: prepare the data if needed, train, and keep the run in one directory.

Also the entry point under torchrun: `torchrun --nproc_per_node=N -m nmt.train ...`.
"""

import logging
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nmt.checkpoint import describe_mismatch, load_checkpoint
from nmt.cli import run_stage, setup_logging
from nmt.config import TrainConfig, check_train
from nmt.data import prepare_from_config
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import Vocab
from nmt.distributed import barrier, init_distributed, shutdown
from nmt.errors import NmtError
from nmt.io import atomic_open, atomic_write_text, decode_lines
from nmt.models import build_model, model_kind
from nmt.precision import resolve_device, resolve_precision
from nmt.search import SearchSettings
from nmt.trainer import Trainer
from nmt.validation import ValidationSet

log = logging.getLogger("nmt.train")


def train(cfg: DictConfig) -> None:
    config: TrainConfig = OmegaConf.to_object(cfg)
    check_train(config)
    valid_search = SearchSettings.from_decode(config.decode) if config.trainer.valid_bleu else None
    # Under a multirun sweep each job has its own output directory; that is the run directory.
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(config.run_dir)
    device = resolve_device(config.trainer.device)
    dist_info = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    setup_logging(run_dir / "train.log" if dist_info.is_main else None)
    if config.trainer.threads:
        torch.set_num_threads(config.trainer.threads)
    try:
        summary = _train(config, valid_search, run_dir, device, dist_info)
    finally:
        shutdown(dist_info)
    if dist_info.is_main:
        print(summary)


def _train(config: TrainConfig, valid_search: SearchSettings | None, run_dir: Path, device: torch.device,
           dist_info) -> dict:
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
                      valid_search=valid_search, settings=config.trainer, optim=config.optim,
                      max_tokens=config.data.max_tokens, run_dir=run_dir, device=device, precision=precision,
                      dist=dist_info)
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        payload = load_checkpoint(last)
        mismatch = describe_mismatch(payload, model_kind(config.model), config.model, vocab.proto)
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
    references = decode_lines((cache / "valid.tgt.txt").read_bytes())[0]
    valid = ValidationSet(EncodedSplit(cache, "valid"), references, max_positions, max_tokens)
    if len(references) != len(valid.data):
        raise NmtError(f"{cache}: valid.tgt.txt has {len(references)} lines for {len(valid.data)} pairs; "
                       "delete the cache directory to rebuild it")
    return valid


def main() -> None:
    run_stage("train", train)


if __name__ == "__main__":
    main()
