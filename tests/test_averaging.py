"""Averaging as the last step of a run: checkpoints/average.pt is the mean of trainer.average_last
step_N.pt (the newest, or those up to best.pt), validated beside the best one, and translates like any
checkpoint."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY_DATA, mean_of, run_cli

from nmt.config import TrainerConfig
from nmt.errors import NmtError
from nmt.models.checkpoint import checkpoint_step, load_checkpoint, running_averages

# Checkpoints at steps 3, 6, 9 and 12; the last three are averaged.
RUN = (*TINY_DATA, "model.embed_dim=32", "model.hidden_dim=48", "trainer.max_steps=12", "trainer.valid_every=3",
       "trainer.log_every=3", "data.max_tokens=800", "trainer.threads=1", "trainer.keep_last=4",
       "trainer.average_last=3")


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("averaged")
    result = run_cli("train", *RUN, "run_dir=run", cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return work / "run"


def test_a_finished_run_writes_the_mean_of_its_last_checkpoints(averaged_run):
    checkpoints = averaged_run / "checkpoints"
    average = load_checkpoint(checkpoints / "average.pt")
    inputs = [checkpoints / f"step_{n}.pt" for n in (6, 9, 12)]
    assert [Path(p).name for p in average["averaged_from"]] == [p.name for p in inputs]
    torch.testing.assert_close(average["model"], mean_of(inputs), rtol=1e-6, atol=1e-8)
    last = load_checkpoint(checkpoints / "last.pt")["model"]
    assert any(not torch.equal(average["model"][k], last[k]) for k in last)


def test_the_running_averages_are_the_means_of_the_windows_ending_at_the_newest(averaged_run):
    paths = [averaged_run / f"checkpoints/step_{n}.pt" for n in (3, 6, 9, 12)]
    averages = list(running_averages(paths))
    assert len(averages) == 4
    for count, average in enumerate(averages, 1):
        assert average["averaged_from"] == [str(p) for p in paths[-count:]]
        torch.testing.assert_close(average["model"], mean_of(paths[-count:]), rtol=1e-6, atol=1e-8)


def test_a_finished_run_rerun_with_average_select_writes_the_n_validation_chose(averaged_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(averaged_run, run)
    result = run_cli("train", *RUN, "trainer.average_select=true", "run_dir=run",
                     f"data.cache_dir={averaged_run.parent / 'data/cache'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    log = (run / "train.log").read_text()
    for window in ("1 checkpoints (steps 12-12)", "2 checkpoints (steps 9-12)", "3 checkpoints (steps 6-12)"):
        assert f"average of the last {window}: valid loss" in log
    chosen = int(re.search(r"chose the average of (\d) checkpoints on validation \(of 1-3\)", log).group(1))
    averaged_from = load_checkpoint(run / "checkpoints/average.pt")["averaged_from"]
    assert [Path(p).name for p in averaged_from] == [f"step_{n}.pt" for n in (6, 9, 12)][-chosen:]


def test_an_average_has_no_training_step(averaged_run):
    assert checkpoint_step(load_checkpoint(averaged_run / "checkpoints/average.pt")) is None


def test_the_average_translates_one_line_per_input_line(averaged_run, tmp_path):
    (tmp_path / "in.en").write_text("the cat sees the dog .\n\na small bird sings\n")
    result = run_cli("translate", f"checkpoint={averaged_run / 'checkpoints/average.pt'}", "input=in.en",
                     "decode.max_len_a=0.5", "decode.max_len_b=6", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().split("\n")
    assert len(lines) == 4 and lines[-1] == "" and lines[1] == ""


def test_the_average_is_validated_beside_the_best_checkpoint(averaged_run):
    log = (averaged_run / "train.log").read_text()
    assert "average of the last 3 checkpoints (steps 6-12): valid loss" in log
    assert "best single checkpoint: bleu" in log


def test_a_finished_run_rerun_averages_again_without_training(averaged_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(averaged_run, run)
    last = run / "checkpoints/last.pt"
    before = last.stat().st_mtime_ns
    result = run_cli("train", *RUN, "trainer.average_last=2", "run_dir=run",
                     f"data.cache_dir={averaged_run.parent / 'data/cache'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    averaged_from = load_checkpoint(run / "checkpoints/average.pt")["averaged_from"]
    assert [Path(p).name for p in averaged_from] == ["step_9.pt", "step_12.pt"]
    assert last.stat().st_mtime_ns == before  # nothing trained, validated or saved again


def test_a_finished_run_rerun_averages_the_checkpoints_up_to_best(averaged_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(averaged_run, run)
    checkpoints = run / "checkpoints"  # copied without its hard links: best.pt is a file of its own
    # As if validation had ranked step 6 best, whatever the tiny run's own scores were.
    last = load_checkpoint(checkpoints / "last.pt")
    last["progress"]["best_step"] = 6
    torch.save(last, checkpoints / "last.pt")
    result = run_cli("train", *RUN, "trainer.average_last=2", "trainer.average_until=best", "run_dir=run",
                     f"data.cache_dir={averaged_run.parent / 'data/cache'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert [Path(p).name for p in load_checkpoint(checkpoints / "average.pt")["averaged_from"]] == ["step_3.pt",
                                                                                                "step_6.pt"]
    assert "average of the last 2 checkpoints up to best.pt (steps 3-6): valid loss" in (run / "train.log").read_text()
    # The script averages up to best.pt's own step (the tiny run's), as the file says.
    best = checkpoint_step(load_checkpoint(checkpoints / "best.pt"))
    script = subprocess.run([sys.executable, str(ROOT / "scripts/average_checkpoints.py"), str(checkpoints),
                             "--last", "2", "--until", "best", "--output", str(tmp_path / "by_hand.pt")],
                            capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert script.returncode == 0, script.stderr.decode()
    expected = [f"step_{n}.pt" for n in (3, 6, 9, 12) if n <= best][-2:]
    assert [Path(p).name for p in load_checkpoint(tmp_path / "by_hand.pt")["averaged_from"]] == expected


def test_a_misspelt_average_until_is_one_line_naming_the_key(tmp_path):
    result = run_cli("train", *RUN, "trainer.average_until=worst", "run_dir=run", cwd=tmp_path)
    error = result.stderr.decode().strip()
    assert result.returncode != 0 and "average_until" in error and "Traceback" not in error, error


def test_averaging_more_checkpoints_than_are_kept_is_refused():
    with pytest.raises(NmtError, match="trainer.average_last: 6 exceeds trainer.keep_last=5"):
        TrainerConfig(keep_last=5, average_last=6)
    TrainerConfig(keep_last=0, average_last=6)  # 0 keeps every checkpoint

