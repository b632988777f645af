"""torchrun with two gloo processes: one step equals a single-process step on both ranks' batches."""


import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import TINY_TRAIN, run_cli
from nmt.checkpoint import load_checkpoint
from nmt.cli import CONFIG_DIR
from nmt.config import register_configs
from nmt.data import prepare_from_config
from nmt.data.cache import EncodedSplit
from nmt.data.vocab import Vocab
from nmt.distributed import DistInfo
from nmt.models import build_model
from nmt.trainer import Trainer

OVERRIDES = [o for o in TINY_TRAIN if not o.startswith(("trainer.max_steps", "trainer.valid_every"))] + [
    "trainer.max_steps=1", "trainer.valid_every=1", "trainer.valid_bleu=false", "model.dropout=0.0"]


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
    trainer = Trainer(model, config.model, vocab, train, None, config.trainer, config.optim, config.data.max_tokens,
                      tmp_path / "single", torch.device("cpu"), "fp32", DistInfo())
    first_batches = [trainer.sampler.__class__(train.src_lengths, train.tgt_lengths, config.data.max_tokens,
                                               config.trainer.seed, rank=r, world_size=2).epoch_batches(0)[0]
                     for r in range(2)]
    trainer.train_step(first_batches)
    # Adam's first moment after one step is 0.1 * the gradient: the all-reduced gradient must
    # equal the single process's. (Parameters are compared loosely: where a gradient is zero in
    # exact arithmetic, Adam turns summation-order noise into a step of +-lr.)
    single_state = trainer.optimizer.state_dict()["state"]
    for index, state in checkpoint["optimizer"]["state"].items():
        torch.testing.assert_close(state["exp_avg"], single_state[index]["exp_avg"], atol=1e-8, rtol=1e-4)
    lr = trainer.scheduler.get_last_lr()[0]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(checkpoint["model"][name], value, atol=2.5 * lr, rtol=0)


def test_only_rank_zero_writes(tmp_path):
    result = run_cli("train", "--standalone", "--nproc_per_node=2", "-m", "nmt.train", *OVERRIDES,
                     "trainer.max_steps=2", "run_dir=run", cwd=tmp_path, module="torch.distributed.run")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    run = tmp_path / "run"
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt", "step_1.pt", "step_2.pt"]
    log_lines = (run / "train.log").read_text().splitlines()
    assert sum("stopped at step 2" in line for line in log_lines) == 1
    stray = [p for p in tmp_path.rglob("*") if p.is_file() and not (p.is_relative_to(run) or p.is_relative_to(tmp_path / "data"))]
    assert stray == []
