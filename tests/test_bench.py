"""The benchmark scripts keep working: bench_train runs past the end of an epoch, and
gpu_check.sh's CPU dry run goes through every step it runs on a GPU."""

import json
import os
import subprocess
import sys

import torch
from conftest import ROOT

TINY_BUILTIN = ("data.builtin_sizes={train:300,valid:0,test:0}", "data.vocab_size=200", "data.max_tokens=400")


def _run(command: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHON=sys.executable)
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_bench_train_draws_batches_across_epochs_with_either_loss(tmp_path):
    # 300 short pairs at 400 tokens a batch make about 16 batches an epoch; 30 steps need a second one.
    result = _run([sys.executable, str(ROOT / "scripts/bench_train.py"), "--model", "gru_bahdanau", "--steps", "30",
                   "--warmup", "1", "--loss", "blockwise", "autograd", "--data", "builtin", *TINY_BUILTIN,
                   "model.embed_dim=16", "model.hidden_dim=16"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])["results"]
    assert [figures["loss"] for figures in results] == ["blockwise", "autograd"]
    for figures in results:
        assert figures["steps"] == 30 and figures["epoch"] >= 1
        assert figures["tokens_per_second"] > 0 and figures["mfu"] is None  # no peak to compare with on a CPU


def test_gpu_check_cpu_dry_run_reports_every_figure(tmp_path):
    result = _run(["bash", str(ROOT / "scripts/gpu_check.sh"), "--cpu-dry-run", "--work", str(tmp_path / "check")],
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["device"] == ("cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name())
    assert figures["gpu_tests"]["tests"] > 0 and figures["gpu_tests"]["failures"] == 0
    assert [(r["model"], r["loss"]) for r in figures["bench_train"]] == [
        ("transformer_base", "blockwise"), ("transformer_big", "blockwise"), ("transformer_big", "autograd")]
    assert figures["train"]["steps"] == 4 and figures["translate"]["sentences"] == 10
    assert 0 <= figures["test_bleu"] <= 100
