"""Faults: killed runs resume exactly, signals save, a full disk loses nothing, bad input never crashes."""

import errno
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_DATA, run_cli
from nmt.checkpoint import load_checkpoint
from nmt.errors import NmtError

# Checkpoint at every step so kills land before, during and after checkpoint writes.
RUN = (*TINY_DATA, "model.embed_dim=32", "model.hidden_dim=48", "trainer.valid_every=1", "trainer.valid_bleu=false",
       "trainer.log_every=1", "data.max_tokens=600", "trainer.threads=1", "trainer.keep_last=3")
STEPS = 12


def _train_command(run_dir, steps):
    return [sys.executable, "-m", "nmt.train", *RUN, f"trainer.max_steps={steps}", f"run_dir={run_dir}"]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _all_checkpoints_load(checkpoints):
    for path in checkpoints.glob("*.pt"):
        load_checkpoint(path)  # raises on a half-written file


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    work = tmp_path_factory.mktemp("whole")
    subprocess.run(_train_command("run", STEPS), cwd=work, env=_env(), check=True, capture_output=True)
    return work, load_checkpoint(work / "run/checkpoints/last.pt")


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path):
    work, reference = uninterrupted
    (tmp_path / "data").symlink_to(work / "data")  # the same prepared cache
    checkpoints = tmp_path / "run/checkpoints"
    rng = random.Random(5)
    kills = 0
    for attempt in range(8):
        process = subprocess.Popen(_train_command("run", STEPS), cwd=tmp_path, env=_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Wait for the first checkpoint of this attempt, then kill at a random moment.
        before = len(list(checkpoints.glob("step_*.pt"))) if checkpoints.exists() else 0
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if checkpoints.exists() and len(list(checkpoints.glob("step_*.pt"))) > before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is None:
            process.kill()
            kills += 1
        process.wait()
        _all_checkpoints_load(checkpoints)
        if load_checkpoint(checkpoints / "last.pt")["step"] >= STEPS:
            break
    assert kills >= 2
    final = subprocess.run(_train_command("run", STEPS), cwd=tmp_path, env=_env(), capture_output=True)
    assert final.returncode == 0, final.stderr.decode()
    resumed = load_checkpoint(checkpoints / "last.pt")
    assert resumed["step"] == reference["step"] == STEPS
    for name, value in reference["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    assert resumed["sampler"] == reference["sampler"]
    assert not list(checkpoints.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_and_exits_cleanly(tmp_path, sig):
    process = subprocess.Popen(_train_command("run", 10_000), cwd=tmp_path, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoints = tmp_path / "run/checkpoints"
    deadline = time.monotonic() + 120
    while not (checkpoints / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    assert f"received {sig.name}" in err.decode()
    last = load_checkpoint(checkpoints / "last.pt")
    assert 0 < last["step"] < 10_000


def test_disk_full_is_a_clear_error_and_last_stays_intact(tmp_path, monkeypatch):
    from test_training import _trainer

    cache = _tiny_cache(tmp_path)
    trainer = _trainer(cache, tmp_path / "run")
    trainer.train_step([np.arange(4)])
    trainer.save(is_best=True)
    good = load_checkpoint(tmp_path / "run/checkpoints/last.pt")

    def full_disk(payload, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    trainer.train_step([np.arange(4)])
    with pytest.raises(NmtError, match="No space left on device.*previous last.pt is intact"):
        trainer.save(is_best=False)
    monkeypatch.undo()
    last = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert last["step"] == good["step"] == 1
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["best.pt", "last.pt", "step_1.pt"]


def _tiny_cache(tmp_path):
    from nmt.config import Source
    from nmt.data.cache import VocabSettings, prepare_cache
    from nmt.data.cleaning import CleaningRules
    from nmt.data.sources import CorpusSpec, open_corpus

    corpus = open_corpus(CorpusSpec(Source.builtin, "en", "de", builtin_sizes={"train": 100, "valid": 0, "test": 0}))
    return prepare_cache(corpus, "b", CleaningRules(100, 3.0, True, False), VocabSettings(100, "unigram", 10_000, 1.0),
                         tmp_path / "cache", workers=1)


def test_an_unwritable_run_directory_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("not a directory")
    result = run_cli("train", *RUN, "trainer.max_steps=2", "run_dir=afile/run", cwd=tmp_path)
    err = result.stderr.decode().strip()
    assert result.returncode != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "afile/run" in err


FUZZ = {
    "random_bytes": bytes(random.Random(1).getrandbits(8) for _ in range(3000)),
    "invalid_utf8": b"ok line\n\xc3\x28 broken\nanother ok\n\xff\n",
    "control_chars": "tab\there\x00nul\x07bell\x1b[31mred\rcarriage\n\x0b\x0c\nend\n".encode(),
    "very_long_line": ("word " * 5000 + "\nshort\n").encode(),
    "only_empty_lines": b"\n\n\n\n",
    "zero_bytes": b"",
    "no_final_newline": b"first\nsecond",
}


@pytest.mark.parametrize("name", sorted(FUZZ))
def test_translate_survives_any_input_with_one_line_out_per_line_in(tmp_path, trained_run, name):
    data = FUZZ[name]
    (tmp_path / "in.txt").write_bytes(data)
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "input=in.txt", "output=out.txt",
                     "invalid_lines=empty", "decode.beam_size=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    out = (tmp_path / "out.txt").read_bytes()
    assert out.count(b"\n") == expected
    for number, line in enumerate(data.split(b"\n")[:expected], start=1):
        if not line.strip():
            assert out.split(b"\n")[number - 1] == b""


def test_unreadable_lines_are_named_by_number(tmp_path, trained_run):
    (tmp_path / "in.txt").write_bytes(FUZZ["invalid_utf8"])
    strict = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "input=in.txt", cwd=tmp_path)
    assert strict.returncode == 2 and "line(s) 2, 4" in strict.stderr.decode()
    lenient = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "input=in.txt",
                      "invalid_lines=empty", cwd=tmp_path)
    assert "line(s) 2, 4" in lenient.stderr.decode()
    assert lenient.stdout.decode().split("\n")[1] == "" and lenient.stdout.decode().count("\n") == 4


def test_long_lines_are_truncated_with_a_warning_naming_them(tmp_path, trained_run):
    (tmp_path / "in.txt").write_bytes(FUZZ["very_long_line"])
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "input=in.txt",
                     "output=out.txt", "decode.beam_size=1", cwd=tmp_path)
    assert result.returncode == 0
    assert "truncated: 1" in result.stderr.decode()


@pytest.mark.parametrize("overrides,needle", [
    (["trainer.no_such_key=1"], "no_such_key"),
    (["trainer.max_steps=many"], "max_steps"),
    (["data=text"], "data.train"),
    (["data=multi30k", "data.path=/nonexistent/dir"], "/nonexistent/dir"),
    (["data=text", "data.train=/nonexistent/train"], "/nonexistent/train.en"),
])
def test_config_errors_are_one_line(tmp_path, overrides, needle):
    result = run_cli("train", *overrides, cwd=tmp_path)
    err = result.stderr.decode().strip()
    assert result.returncode != 0 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert needle in err, err


def test_only_the_newest_periodic_checkpoints_are_kept(uninterrupted):
    work, _ = uninterrupted
    names = sorted(p.name for p in (work / "run/checkpoints").iterdir())
    assert names == ["best.pt", "last.pt", "step_10.pt", "step_11.pt", "step_12.pt"]  # keep_last=3
    load_checkpoint(work / "run/checkpoints/best.pt")  # a hard link: loads even if its step was pruned
