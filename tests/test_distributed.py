"""torchrun with two gloo processes: one step equals a single-process step on both ranks' batches."""

import time

import torch
from conftest import TINY_TRAIN, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.choices import Precision
from nmt.cli import CONFIG_DIR
from nmt.config import register_configs
from nmt.data import prepare_from_config
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import Vocab
from nmt.models import build_model
from nmt.models.checkpoint import load_checkpoint
from nmt.training.distributed import DistInfo
from nmt.training.trainer import Trainer

OVERRIDES = [o for o in TINY_TRAIN if not o.startswith(("trainer.max_steps", "trainer.valid_every"))] + [
    "trainer.max_steps=1", "trainer.valid_every=1", "trainer.valid_bleu=false", "model.dropout=0.0",
    # Unclipped, so a wrong gradient scale cannot hide behind the clipping's normalization.
    "trainer.clip_norm=0"]


def test_two_process_step_equals_single_process_step_on_the_union(tmp_path):
    result = run_cli("train", "--standalone", "--nproc_per_node=2", "-m", "nmt.train", *OVERRIDES,
                     "run_dir=run", cwd=tmp_path, module="torch.distributed.run")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    checkpoint = load_checkpoint(tmp_path / "run/checkpoints/step_1.pt")

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = OmegaConf.to_object(compose("train", overrides=OVERRIDES + [f"data.cache_dir={tmp_path}/data/cache"]))
    cache = prepare_from_config(config.data)
    vocab = Vocab.from_file(str(cache / "spm.model"))
    train = EncodedSplit(cache, "train")
    torch.manual_seed(config.trainer.seed)
    model = build_model(config.model, len(vocab))
    trainer = Trainer(model=model, model_config=config.model, vocab=vocab, train=train, valid=None, valid_search=None,
                      settings=config.trainer, optim=config.optim, max_tokens=config.data.max_tokens,
                      run_dir=tmp_path / "single", device=torch.device("cpu"), precision=Precision.fp32,
                      dist=DistInfo())
    first_batches = [trainer.parts.sampler.__class__(train.src_lengths, train.tgt_lengths, config.data.max_tokens,
                                               config.trainer.seed, rank=r, world_size=2).epoch_batches(0)[0]
                     for r in range(2)]
    trainer.step(first_batches)
    # Adam's moments after one step are 0.1 * g and 0.02 * g^2: the all-reduced gradient g must
    # equal the single process's, scale included. (Parameters would not show it: Adam's first
    # step moves each by about lr * sign(g), whatever g's scale.)
    single_state = trainer.parts.optimizer.state_dict()["state"]
    for index, state in checkpoint["optimizer"]["state"].items():
        torch.testing.assert_close(state["exp_avg"], single_state[index]["exp_avg"], atol=1e-8, rtol=1e-4)
        torch.testing.assert_close(state["exp_avg_sq"], single_state[index]["exp_avg_sq"], atol=1e-10, rtol=1e-3)


def test_only_rank_zero_writes(tmp_path):
    result = run_cli("train", "--standalone", "--nproc_per_node=2", "-m", "nmt.train", *OVERRIDES,
                     "trainer.max_steps=2", "trainer.average_last=2", "trainer.average_select=true", "run_dir=run",
                     cwd=tmp_path, module="torch.distributed.run")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    run = tmp_path / "run"
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "average.pt", "best.pt", "last.pt", "step_1.pt", "step_2.pt"]
    log_lines = (run / "train.log").read_text().splitlines()
    assert sum("stopped at step 2" in line for line in log_lines) == 1
    # Rank 0 validated both averages while rank 1 waited at the barrier.
    assert sum("chose the average of" in line for line in log_lines) == 1
    stray = [p for p in tmp_path.rglob("*") if p.is_file() and not (p.is_relative_to(run) or p.is_relative_to(tmp_path / "data"))]
    assert stray == []


def test_a_rank_stops_when_rank_0_does_even_with_time_left_on_its_own_clock(monkeypatch):
    """The ranks' clocks differ: a rank whose own budget has not run out still follows rank 0's stop."""
    from types import SimpleNamespace

    from nmt.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "broadcast_flag", lambda flag, dist, device: True)  # rank 0 says stop
    rank_1 = SimpleNamespace(settings=SimpleNamespace(max_steps=0, max_minutes=60.0), progress=SimpleNamespace(step=3),
                             dist=DistInfo(rank=1, world_size=2), device=None)
    signals = trainer_module.StopSignals()
    assert trainer_module.Trainer._stop_reason(rank_1, signals, started=time.monotonic()) is not None
    monkeypatch.setattr(trainer_module, "broadcast_flag", lambda flag, dist, device: False)  # rank 0 goes on
    assert trainer_module.Trainer._stop_reason(rank_1, signals, started=time.monotonic() - 7200) is None
