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

from nmt.choices import SubwordModel
from nmt.errors import NmtError
from nmt.models.checkpoint import load_checkpoint

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


def _kill_while_writing(process, checkpoints) -> bool:
    """Kill as soon as a checkpoint's temporary file appears; True if one was left half-written."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if checkpoints.exists() and any(name.endswith(".tmp") for name in os.listdir(checkpoints)):
            process.kill()
            process.wait()
            return any(name.endswith(".tmp") for name in os.listdir(checkpoints))
    return False


def _kill_after_a_new_checkpoint(process, checkpoints, delay: float) -> None:
    """Kill `delay` seconds after last.pt points at a checkpoint this process wrote."""
    last = checkpoints / "last.pt"
    before = last.stat().st_ino if last.exists() else None
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if last.exists() and last.stat().st_ino != before:
            break
        time.sleep(0.01)
    time.sleep(delay)
    process.kill()
    process.wait()


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path):
    work, reference = uninterrupted
    (tmp_path / "data").symlink_to(work / "data")  # the same prepared cache
    checkpoints = tmp_path / "run/checkpoints"
    rng = random.Random(5)
    kills = kills_mid_write = 0
    for attempt in range(10):
        process = subprocess.Popen(_train_command("run", STEPS), cwd=tmp_path, env=_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt % 2 == 0:
            kills_mid_write += _kill_while_writing(process, checkpoints)
        else:
            _kill_after_a_new_checkpoint(process, checkpoints, rng.uniform(0.0, 0.5))
        kills += process.returncode == -signal.SIGKILL
        _all_checkpoints_load(checkpoints)
        last = checkpoints / "last.pt"  # absent when the first checkpoint's write was killed
        if last.exists() and load_checkpoint(last)["progress"]["step"] >= STEPS:
            break
    assert kills >= 3 and kills_mid_write >= 1, (kills, kills_mid_write)
    final = subprocess.run(_train_command("run", STEPS), cwd=tmp_path, env=_env(), capture_output=True)
    assert final.returncode == 0, final.stderr.decode()
    resumed = load_checkpoint(checkpoints / "last.pt")
    assert resumed["progress"]["step"] == reference["progress"]["step"] == STEPS
    _assert_same_training_state(resumed, reference)
    assert not list(checkpoints.glob(".*"))  # no temporary files left behind


def _assert_same_training_state(resumed: dict, reference: dict) -> None:
    """Bit for bit: weights, optimizer moments, schedule, scaler, sampler, every rank's RNG, counters."""
    torch.testing.assert_close(resumed["model"], reference["model"], rtol=0, atol=0)
    torch.testing.assert_close(resumed["optimizer"], reference["optimizer"], rtol=0, atol=0)
    torch.testing.assert_close(resumed["rng"], reference["rng"], rtol=0, atol=0)
    for key in ("scheduler", "scaler", "sampler", "batching"):
        assert resumed[key] == reference[key], key
    without_clock = [{k: v for k, v in c["progress"].items() if k != "trained_seconds"} for c in (resumed, reference)]
    assert without_clock[0] == without_clock[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_writes_a_checkpoint_and_exits_cleanly(tmp_path, sig):
    # No periodic checkpoints: only the signal handling can write one.
    process = subprocess.Popen(_train_command("run", 10_000) + ["trainer.valid_every=1000000"], cwd=tmp_path,
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in process.stderr:  # training has made 3 updates
        seen.append(line)
        if b"step 3 loss" in line:
            break
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    err = b"".join(seen).decode() + err.decode()
    assert process.returncode == 0, err
    assert f"received {sig.name}" in err
    checkpoints = tmp_path / "run/checkpoints"
    last = load_checkpoint(checkpoints / "last.pt")
    assert 3 <= last["progress"]["step"] < 10_000
    # A resume point, not a validation checkpoint: nothing to rotate, average or call best.
    assert not list(checkpoints.glob("step_*.pt")) and not (checkpoints / "best.pt").exists()


def test_disk_full_is_a_clear_error_and_last_stays_intact(tmp_path, monkeypatch):
    from test_training import _trainer

    cache = _tiny_cache(tmp_path)
    trainer = _trainer(cache, tmp_path / "run")
    trainer.step([np.arange(4)])
    trainer.save(is_best=True)
    good = load_checkpoint(tmp_path / "run/checkpoints/last.pt")

    def full_disk(payload, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    trainer.step([np.arange(4)])
    with pytest.raises(NmtError, match="No space left on device.*previous last.pt is intact"):
        trainer.save(is_best=False)
    monkeypatch.undo()
    last = load_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert last["progress"]["step"] == good["progress"]["step"] == 1
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["best.pt", "last.pt", "step_1.pt"]


def _tiny_cache(tmp_path):
    from nmt.choices import Source
    from nmt.data.cache import VocabSettings, prepare_cache
    from nmt.data.cleaning import CleaningRules
    from nmt.data.sources import CorpusSpec, open_corpus

    corpus = open_corpus(CorpusSpec(Source.builtin, "en", "de", builtin_sizes={"train": 100, "valid": 0, "test": 0}))
    return prepare_cache(corpus, "b", CleaningRules(100, 3.0, True, False), VocabSettings(100, SubwordModel.unigram, 10_000, 1.0),
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


def test_a_killed_prepare_leaves_nothing_that_looks_complete_and_the_next_one_cleans_up(tmp_path):
    command = [sys.executable, "-m", "nmt.prepare", "data.builtin_sizes={train:40000,valid:10,test:10}",
               "data.vocab_size=300", "data.workers=1", "data.cache_dir=cache"]
    process = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # Kill once the vocabulary is written, while the splits are being encoded.
    while not list(tmp_path.glob("cache/.*building*/spm.model")) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()
    process.wait()
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    assert left and all(name.startswith(".") and ".building-" in name for name in left), left
    result = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    names = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(names) == 1 and names[0].startswith("builtin-"), names
    assert (tmp_path / "cache" / names[0] / "meta.json").is_file()


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


def test_a_translation_that_fails_while_writing_leaves_the_previous_output_intact(tmp_path, trained_run,
                                                                                   monkeypatch):
    from hydra import compose, initialize_config_dir

    import nmt.translate
    from nmt.cli import CONFIG_DIR
    from nmt.config import register_configs

    (tmp_path / "in.en").write_text("A dog.\nThe cat sees the dog.\nA girl.\nTwo men.\n")
    (tmp_path / "out.de").write_text("the previous translation\n")
    written = []
    real_format = nmt.translate.format_hypotheses

    def fail_on_the_third_line(*args):
        written.append(1)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return real_format(*args)

    monkeypatch.setattr(nmt.translate, "format_hypotheses", fail_on_the_third_line)
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose("translate", overrides=[f"checkpoint={trained_run}/checkpoints/last.pt",
                                              f"input={tmp_path / 'in.en'}", f"output={tmp_path / 'out.de'}"])
    with pytest.raises(OSError):
        nmt.translate.translate(cfg)
    assert len(written) == 3  # the failure came while the output was being written
    assert (tmp_path / "out.de").read_text() == "the previous translation\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.en", "out.de"]
