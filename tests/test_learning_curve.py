"""scripts/learning_curve.py: a run's validation figures at fixed update counts, read from its
TensorBoard events, with the target tokens and minutes of training by then."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, TINY_DATA, run_cli

from nmt.models.checkpoint import load_checkpoint

# Validations at steps 2 and 4, and at 5 where the run ends.
RUN = (*TINY_DATA, "model.embed_dim=16", "model.hidden_dim=16", "trainer.valid_every=2", "trainer.log_every=1",
       "data.max_tokens=800", "trainer.threads=1", "run_dir=run")


def _curve(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts/learning_curve.py"), *args], cwd=cwd, check=False,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run stopped at step 2 and resumed to step 5: its events are in two files."""
    work = tmp_path_factory.mktemp("curve")
    for steps in (2, 5):
        result = run_cli("train", *RUN, f"trainer.max_steps={steps}", cwd=work)
        assert result.returncode == 0, result.stderr.decode()
    assert len(list((work / "run/tensorboard").glob("events.*"))) == 2
    return work / "run"


@pytest.fixture(scope="module")
def curve(run):
    result = _curve(str(run), "--steps", "1", "2", "3", "5", "6", cwd=run.parent)
    assert result.returncode == 0, result.stderr
    [figures] = json.loads(result.stdout.strip().splitlines()[-1])["runs"]
    return figures


def test_each_update_count_shows_the_latest_validation_at_or_before_it_once_the_run_got_there(curve):
    assert [p["valid_step"] for p in curve["points"]] == [None, 2, 2, 5, None]
    assert curve["last_valid_step"] == 5


def test_bleu_and_loss_are_the_validations_the_run_logged(run, curve):
    logged = {int(step): (float(loss), float(bleu)) for step, loss, bleu in
              re.findall(r"step (\d+) valid loss ([\d.]+) ppl [\d.]+ bleu ([\d.]+)", (run / "train.log").read_text())}
    for point in curve["points"]:
        if point["valid_step"] is not None:
            loss, bleu = logged[point["valid_step"]]
            assert point["loss"] == pytest.approx(loss, abs=5e-4) and point["bleu"] == pytest.approx(bleu, abs=5e-3)


def test_target_tokens_continue_across_a_resume_and_end_at_the_checkpoints_count(run, curve):
    tokens = {p["valid_step"]: p["target_tokens"] for p in curve["points"] if p["valid_step"]}
    assert 0 < tokens[2] < tokens[5]
    assert tokens[5] == load_checkpoint(run / "checkpoints/last.pt")["progress"]["target_tokens"]


def test_minutes_of_training_grow_with_the_updates(curve):
    minutes = {p["valid_step"]: p["minutes"] for p in curve["points"] if p["valid_step"]}
    assert 0 < minutes[2] < minutes[5]


def test_a_table_comes_first_and_one_json_object_last(run):
    lines = _curve(str(run), cwd=run.parent).stdout.strip().splitlines()
    assert lines[0].startswith(f"{run} (validated up to step 5)") and "valid step" in lines[1]
    assert json.loads(lines[-1])["steps"] == [250, 500, 1000, 2000, 4000, 8000]


def test_a_directory_that_is_not_a_run_is_one_line(tmp_path):
    result = _curve(str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"{tmp_path}: no tensorboard/ directory" in result.stderr
