"""Training throughput: target tokens per second, peak memory and model FLOPs utilisation (MFU) of
forward, backward and optimizer step on real Multi30k batches, per model, precision and eager or
compiled, on the current device; and the untimed warm-up's seconds, which include compiling.

    python scripts/bench_train.py [--model NAME ...] [--precision fp32 bf16 fp16] [--compile off|on|both]
        [--loss blockwise autograd] [--seconds S | --steps N] [--data multi30k] [--data-path DIR]
        [--profile] [OVERRIDE ...]

--loss autograd times the update with PyTorch's F.cross_entropy in place of the trainer's blockwise
loss (nmt/training/loss.py), the same objective, to measure what the blockwise one saves. Memory is
the process's peak, so compare the two in separate runs.

On a GPU the default measures fp32, bf16 and fp16, each eager and compiled; on a CPU, fp32 eager
(MFU is not applicable: there is no peak to compare with). Batches are drawn across epochs for as
long as the measurement runs. Prints a table, then (last line) one JSON object of the figures.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from itertools import product
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from nmt.choices import Precision
from nmt.cli import compose_config
from nmt.config import TrainConfig
from nmt.data import prepare_from_config
from nmt.data.batching import Batch, TokenBatchSampler
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import PAD_ID, Vocab
from nmt.device import resolve_device, resolve_precision
from nmt.models import build_model
from nmt.models.flops import TRAIN_FACTOR, forward_flops, peak_flops
from nmt.training.distributed import DistInfo
from nmt.training.trainer import Trainer

MODELS = ["gru_bahdanau", "transformer_small", "transformer_base", "transformer_big"]


def load_config(model: str, data: str, data_path: str | None, precision: str, compiled: bool,
                overrides: list[str]) -> TrainConfig:
    chosen = [f"data={data}", f"model={model}", f"trainer.precision={precision}", f"trainer.compile={compiled}"]
    if data_path:
        chosen.append(f"data.path={data_path}")
    return OmegaConf.to_object(compose_config("train", [*chosen, *overrides]))


def _make_trainer(model: torch.nn.Module, config: TrainConfig, vocab: Vocab, train: EncodedSplit, run_dir: Path,
                  device: torch.device, precision: str) -> Trainer:
    """The one place this script builds a Trainer (its construction is the trainer module's to change)."""
    return Trainer(model=model, model_config=config.model, vocab=vocab, train=train, valid=None, valid_search=None,
                   settings=config.trainer, optim=config.optim, max_tokens=config.data.max_tokens, run_dir=run_dir,
                   device=device, precision=Precision(precision), dist=DistInfo())


def endless(sampler: TokenBatchSampler) -> Iterator[np.ndarray]:
    """Batches for as long as they are asked for: each pass over the sampler is its next epoch."""
    while True:
        yield from sampler


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _profile(trainer: Trainer, batches: Iterator[np.ndarray], device: torch.device) -> None:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(5):
            trainer.step([next(batches)])
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=15), file=sys.stderr)


def timed_steps(trainer: Trainer, config: TrainConfig, vocab_size: int, batches: Iterator[np.ndarray],
                device: torch.device, seconds: float, steps: int) -> dict:
    """Train for `steps` steps (or `seconds` when steps is 0); tokens, steps, seconds and FLOPs."""
    train = trainer.train_data
    tokens = flops = 0.0
    done = 0
    passes = 2 if config.trainer.rdrop_alpha else 1  # R-Drop runs the model over each batch twice
    _synchronize(device)
    start = time.perf_counter()
    while (done < steps) if steps else (time.perf_counter() - start < seconds):
        indices = next(batches)
        # Lengths as the batch has them: the source with EOS, the target with BOS (or EOS).
        flops += passes * TRAIN_FACTOR * forward_flops(config.model, vocab_size, train.src_lengths[indices] + 1,
                                                       train.tgt_lengths[indices] + 1)
        tokens += trainer.step([indices]).tokens
        done += 1
    _synchronize(device)
    return {"tokens": tokens, "steps": done, "seconds": time.perf_counter() - start, "flops": flops}


def autograd_cross_entropy(logits: torch.Tensor, batch: Batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """The baseline for --loss autograd: the objective through PyTorch's log_softmax, nll and smoothing."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), batch.tgt_out.view(-1), ignore_index=PAD_ID,
                           label_smoothing=label_smoothing, reduction="sum")


def measure(model_name: str, precision: str, compiled: bool, loss: str, args: argparse.Namespace) -> dict | None:
    if loss == "autograd":
        with mock.patch("nmt.training.update.token_cross_entropy", autograd_cross_entropy):
            result = measure(model_name, precision, compiled, "blockwise", args)
        return None if result is None else result | {"loss": loss}
    config = load_config(model_name, args.data, args.data_path, precision, compiled, args.overrides)
    device = resolve_device(config.trainer.device)
    if resolve_precision(Precision(precision), device) is not Precision(precision):
        print(f"skipped {model_name} {precision}: not available on {device}", file=sys.stderr)
        return None
    cache = prepare_from_config(config.data)
    vocab = Vocab.from_file(str(cache / "spm.model"))
    torch.manual_seed(0)
    if device.type == "cuda":
        torch._dynamo.reset()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = build_model(config.model, len(vocab)).to(device)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = _make_trainer(model, config, vocab, EncodedSplit(cache, "train"), Path(run_dir), device, precision)
        batches = endless(trainer.parts.sampler)
        # Warm-up: allocator, kernels; compiled, also the recompiles for the first few batch shapes.
        # Its time is reported: compilation counts against a training budget.
        warmup_start = time.perf_counter()
        for _ in range(args.warmup * (4 if compiled else 1)):
            trainer.step([next(batches)])
        _synchronize(device)
        warmup_seconds = time.perf_counter() - warmup_start
        if args.profile:
            _profile(trainer, batches, device)
        timed = timed_steps(trainer, config, len(vocab), batches, device, args.seconds, args.steps)
        epoch = trainer.parts.sampler.state.epoch  # 0-based, of the last batch drawn
    peak = peak_flops(device_name(device), precision) if device.type == "cuda" else None
    achieved = timed["flops"] / timed["seconds"]
    return {"model": model_name, "precision": precision, "compiled": compiled, "loss": loss,
            "parameters": sum(p.numel() for p in model.parameters()),
            "tokens_per_second": timed["tokens"] / timed["seconds"], "steps": timed["steps"],
            "warmup_seconds": warmup_seconds,
            "epoch": epoch, "tokens_per_step": timed["tokens"] / max(timed["steps"], 1),
            "peak_memory_mib": _peak_memory_mib(device), "achieved_tflops": achieved / 1e12,
            "mfu": achieved / peak[0] if peak else None, "peak": peak[1] if peak else None}


def print_table(device: torch.device, results: list[dict]) -> None:
    memory = "peak CUDA memory allocated" if device.type == "cuda" else "peak process RSS"
    print(f"device: {device_name(device)}; memory: {memory}; MFU against the listed dense peak")
    print(f"{'model':<18} {'params':>8} {'prec':>5} {'compiled':>8} {'loss':>9} {'tok/step':>9} {'steps':>6} {'epoch':>6} "
          f"{'tok/s':>9} {'warmup s':>8} {'MiB':>7} {'TFLOP/s':>8} {'MFU':>6}  peak")
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"{r['model']:<18} {r['parameters'] / 1e6:>7.1f}M {r['precision']:>5} {str(r['compiled']):>8} "
              f"{r['loss']:>9} {r['tokens_per_step']:>9.0f} {r['steps']:>6} {r['epoch']:>6} {r['tokens_per_second']:>9.0f} "
              f"{r['warmup_seconds']:>8.1f} "
              f"{r['peak_memory_mib']:>7.0f} {r['achieved_tflops']:>8.3f} {mfu:>6}  {r['peak'] or 'n/a (no GPU)'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=MODELS, help="model configs to measure")
    parser.add_argument("--precision", nargs="*", choices=["fp32", "bf16", "fp16"],
                        help="default: all three on a GPU, fp32 on a CPU")
    parser.add_argument("--compile", choices=["off", "on", "both"], help="default: both on a GPU, off on a CPU")
    parser.add_argument("--loss", nargs="*", choices=["blockwise", "autograd"], default=["blockwise"],
                        help="the trainer's blockwise loss, or PyTorch's F.cross_entropy to compare with")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed seconds per configuration")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per configuration instead of --seconds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (4x as many when compiled)")
    parser.add_argument("--data", default="multi30k", help="data config (configs/data/)")
    parser.add_argument("--data-path", help="data.path: the hub id by default, or a local copy of its layout")
    parser.add_argument("--profile", action="store_true", help="print the top operators of 5 steps")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.max_tokens=8192")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = resolve_device("auto")
    gpu = device.type == "cuda"
    precisions = args.precision or (["fp32", "bf16", "fp16"] if gpu else ["fp32"])
    compile_choice = args.compile or ("both" if gpu else "off")
    compiles = {"off": [False], "on": [True], "both": [False, True]}[compile_choice]
    results = [r for name, precision, compiled, loss in product(args.model, precisions, compiles, args.loss)
               if (r := measure(name, precision, compiled, loss, args)) is not None]
    print_table(device, results)
    rounded = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in results]
    print(json.dumps({"device": device_name(device), "results": rounded}))


if __name__ == "__main__":
    main()
