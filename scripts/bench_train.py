"""Training throughput: target tokens per second of forward, backward and optimizer step on
real Multi30k batches, for each model on the current device.

    python scripts/bench_train.py [--model NAME ...] [--seconds S] [--profile]

Prints a table, then (last line) one JSON object {model name: tokens per second}.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nmt.cli import CONFIG_DIR  # noqa: E402
from nmt.config import register_configs  # noqa: E402
from nmt.data import prepare_from_config  # noqa: E402
from nmt.data.cache import EncodedSplit  # noqa: E402
from nmt.data.vocab import Vocab  # noqa: E402
from nmt.distributed import DistInfo  # noqa: E402
from nmt.models import build_model  # noqa: E402
from nmt.precision import resolve_device, resolve_precision  # noqa: E402
from nmt.trainer import Trainer  # noqa: E402

MODELS = ["gru_bahdanau", "transformer_small", "transformer_base", "transformer_big"]


def load_config(model: str, overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose("train", overrides=["data=multi30k", f"model={model}", *overrides])
    return OmegaConf.to_object(cfg)


def measure(model_name: str, seconds: float, overrides: list[str], profile: bool) -> dict:
    config = load_config(model_name, overrides)
    device = resolve_device(config.trainer.device)
    precision = resolve_precision(config.trainer.precision, device)
    cache = prepare_from_config(config.data)
    vocab = Vocab.from_file(str(cache / "spm.model"))
    torch.manual_seed(0)
    model = build_model(config.model, len(vocab)).to(device)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model=model, model_config=config.model, vocab=vocab, train=EncodedSplit(cache, "train"),
                          valid=None, valid_search=None, settings=config.trainer, optim=config.optim,
                          max_tokens=config.data.max_tokens, run_dir=Path(run_dir), device=device,
                          precision=precision, dist=DistInfo())
        batches = iter(trainer.parts.sampler)
        for _ in range(3):  # warm-up: allocator, kernels, compile
            trainer.step([next(batches)])
        if profile:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]
                                        + ([torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])) as prof:
                for _ in range(5):
                    trainer.step([next(batches)])
            sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
            print(prof.key_averages().table(sort_by=sort, row_limit=15), file=sys.stderr)
        tokens, steps = 0.0, 0
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            tokens += trainer.step([next(batches)]).tokens
            steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())
    return {"tokens_per_second": tokens / elapsed, "steps": steps, "seconds": elapsed, "parameters": parameters,
            "device": str(device), "precision": precision.value, "tokens_per_step": tokens / max(steps, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=MODELS, help="model configs to measure")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per model")
    parser.add_argument("--profile", action="store_true", help="print the top operators of 5 steps")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. trainer.precision=bf16")
    args = parser.parse_args()
    results = {name: measure(name, args.seconds, args.overrides, args.profile) for name in args.model}
    print(f"{'model':<20} {'params':>8} {'device':>7} {'prec':>5} {'tok/step':>9} {'steps':>6} {'tok/s':>9}")
    for name, r in results.items():
        print(f"{name:<20} {r['parameters'] / 1e6:>7.1f}M {r['device']:>7} {r['precision']:>5} "
              f"{r['tokens_per_step']:>9.0f} {r['steps']:>6} {r['tokens_per_second']:>9.0f}")
    print(json.dumps({name: round(r["tokens_per_second"], 1) for name, r in results.items()}))


if __name__ == "__main__":
    main()
