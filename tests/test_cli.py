"""The four stages as a user runs them, on a tiny built-in corpus, and their one-line errors."""

import json
import shutil

import pytest
from conftest import ROOT, TINY_DATA, TINY_TRAIN, run_cli
from omegaconf import OmegaConf

from nmt.choices import LengthNorm
from nmt.cli import compose_config
from nmt.models.checkpoint import FORMAT, load_checkpoint


def _one_line_error(result, *needles):
    err = result.stderr.decode().strip()
    assert result.returncode != 0
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_all_four_stages_end_to_end(tmp_path, trained_run):
    prepared = run_cli("prepare", *TINY_DATA, "data.cache_dir=" + str(trained_run.parent / "data/cache"), cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr.decode()
    cache = prepared.stdout.decode().strip().splitlines()[-1]
    for name in ("config.yaml", "spm.model", "checkpoints/last.pt", "checkpoints/best.pt", "train.log"):
        assert (trained_run / name).exists(), name
    _assert_tensorboard_has(trained_run / "tensorboard", scalars={"train/loss", "train/lr", "train/grad_norm",
                            "train/tokens_per_second", "valid/loss", "valid/ppl", "valid/bleu"},
                            images={"valid/attention"})
    source = f"{cache}/test.src.txt"
    translated = run_cli("translate", f"checkpoint={trained_run}/checkpoints/best.pt", f"input={source}",
                         "output=hyp.de", "decode.beam_size=3", cwd=tmp_path)
    assert translated.returncode == 0, translated.stderr.decode()
    hyps = (tmp_path / "hyp.de").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 30
    evaluated = run_cli("evaluate", "hyp=hyp.de", f"ref={cache}/test.tgt.txt", "report_dir=report",
                        "bootstrap=50", "randomization=50", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    report = json.loads((tmp_path / "report/report.json").read_text())
    assert 0 <= report["bleu"]["score"] <= 100 and report["bleu"]["signature"].startswith("nrefs:1")
    assert "chrf" in report and (tmp_path / "report/report.md").is_file()
    assert evaluated.stdout.decode().strip().splitlines()[-1].endswith("report.json")


def _assert_tensorboard_has(directory, scalars, images):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert scalars <= set(tags["scalars"]), tags
    assert images <= set(tags["images"]), tags


def test_translate_reads_stdin_and_keeps_empty_lines(tmp_path, trained_run):
    text = "A dog sees the cat.\n\nThe big man likes twenty-one books.\n   \nA bird.\n"
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "decode.beam_size=2",
                     cwd=tmp_path, stdin=text.encode())
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 5
    assert lines[1] == "" and lines[3] == ""
    assert lines[0] and lines[2] and lines[4]


def test_nbest_writes_k_translations_with_scores_per_line(tmp_path, trained_run):
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "decode.beam_size=3",
                     "decode.nbest=3", cwd=tmp_path, stdin=b"A dog sees the cat.\nThe girl.\n")
    assert result.returncode == 0, result.stderr.decode()
    for line in result.stdout.decode().splitlines():
        fields = line.split("\t")
        assert len(fields) == 6
        scores = [float(s) for s in fields[1::2]]
        assert scores == sorted(scores, reverse=True)


def test_resuming_from_last_continues_where_it_stopped(tmp_path, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = load_checkpoint(run / "checkpoints/last.pt")
    assert before["progress"]["step"] == 12
    overrides = [o for o in TINY_TRAIN if not o.startswith("trainer.max_steps")]
    result = run_cli("train", *overrides, "trainer.max_steps=18", "run_dir=run",
                     f"data.cache_dir={trained_run.parent}/data/cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "resumed from" in result.stderr.decode() and "at step 12" in result.stderr.decode()
    after = load_checkpoint(run / "checkpoints/last.pt")
    assert after["progress"]["step"] == 18
    assert after["sampler"] != before["sampler"]
    assert after["optimizer"]["state"][0]["step"] == 18  # Adam's own count continued


@pytest.mark.parametrize("model,differs", [(("model.embed_dim=32", "model.hidden_dim=64"), "hidden_dim: 48 vs 64"),
                                           (("model=transformer_small",), "model type gru_attention")])
def test_resuming_a_run_with_another_model_is_refused_saying_what_differs(tmp_path, trained_run, model, differs):
    shutil.copytree(trained_run, tmp_path / "run")
    before = (tmp_path / "run/checkpoints/last.pt").read_bytes()
    same_data = [o for o in TINY_TRAIN if not o.startswith("model.")]
    result = run_cli("train", *same_data, *model, "run_dir=run", f"data.cache_dir={trained_run.parent}/data/cache",
                     cwd=tmp_path)
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("error: cannot resume from") and differs in err.splitlines()[-1], err
    assert (tmp_path / "run/checkpoints/last.pt").read_bytes() == before


def test_validation_decodes_with_the_runs_decode_settings(tmp_path, trained_run):
    """decode.max_len_b=1 allows one output token: validation BLEU must collapse to 0."""
    overrides = [o for o in TINY_TRAIN if not o.startswith("trainer.max_steps")]
    result = run_cli("train", *overrides, "trainer.max_steps=1", "decode.max_len_a=0", "decode.max_len_b=1",
                     "run_dir=run", f"data.cache_dir={trained_run.parent}/data/cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert "bleu 0.00" in result.stderr.decode()


def test_missing_checkpoint_is_one_line(tmp_path):
    _one_line_error(run_cli("translate", "checkpoint=nope.pt", cwd=tmp_path, stdin=b"x\n"), "nope.pt")


def test_corrupt_checkpoint_is_one_line(tmp_path, trained_run):
    broken = tmp_path / "broken.pt"
    broken.write_bytes((trained_run / "checkpoints/last.pt").read_bytes()[:5000])
    _one_line_error(run_cli("translate", f"checkpoint={broken}", cwd=tmp_path, stdin=b"x\n"), "broken.pt")


def test_missing_input_file_is_one_line(tmp_path, trained_run):
    _one_line_error(run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "input=missing.en",
                            cwd=tmp_path), "missing.en")


def test_non_utf8_input_is_one_line_naming_the_line(tmp_path, trained_run):
    (tmp_path / "bad.en").write_bytes(b"fine\nbad \xff\xfe byte\nfine\n")
    result = run_cli("translate", f"checkpoint={trained_run}/checkpoints/last.pt", "input=bad.en",
                     "output=out.de", cwd=tmp_path)
    _one_line_error(result, "bad.en", "line(s) 2")
    assert not (tmp_path / "out.de").exists()


@pytest.mark.parametrize("stage,override,key", [
    ("train", "trainer.max_stepz=3", "max_stepz"),
    ("train", "model.hidden_dim=big", "hidden_dim"),
    ("translate", "decode.beam=4", "beam"),
    ("evaluate", "hyp=a", None),
    # A misspelt choice fails when the config is composed, naming the key and the choices.
    ("train", "model.output_layer=deeep", "expected one of [linear, deep] (key: model.output_layer)"),
    ("train", "optim.schedule=cosin", "expected one of [inverse_sqrt, constant, cosine] (key: optim.schedule)"),
    ("translate", "decode.length_norm=gnmtt", "expected one of [gnmt, average, power, none] (key: decode.length_norm)"),
    ("translate", "invalid_lines=skip", "expected one of [error, empty] (key: invalid_lines)"),
    ("train", "model.tie_embeddings=true", "model.tie_embeddings: needs model.output_layer=deep"),
    ("train", "data.spm_model_type=unigramm", "expected one of [unigram, bpe, char, word] (key: data.spm_model_type)"),
])
def test_config_errors_are_one_line(tmp_path, stage, override, key):
    extra = ["checkpoint=x.pt"] if stage == "translate" else []
    result = run_cli(stage, override, *extra, cwd=tmp_path)
    if key is None:  # evaluate without ref: a missing key of ours, reported by the stage
        _one_line_error(result, "ref")
    else:
        _one_line_error(result, key)


@pytest.mark.parametrize("experiment", sorted(path.stem for path in (ROOT / "configs/experiment").glob("*.yaml")))
def test_every_experiment_composes_and_passes_its_checks(experiment):
    assert compose_config("train", [f"experiment={experiment}"]).name == experiment


# The R-Drop presets use R-Drop from the first update (the Transformer preset from its 2,000th, the GRU
# preset not at all) and keep the peak rate (the GRU's) and the fixed N they were run and chosen at,
# which their bases have since left.
@pytest.mark.parametrize("base,base_rdrop,rdrop_lr", [("multi30k_transformer", (5, 2000), 0.003),
                                                      ("multi30k_gru", (0, 0), 0.003)])
def test_each_rdrop_preset_is_its_base_preset_with_rdrop_and_nothing_else(base, base_rdrop, rdrop_lr):
    preset, rdrop = (OmegaConf.to_container(compose_config("train", [f"experiment={name}"]))
                     for name in (base, f"{base}_rdrop"))
    assert (rdrop["trainer"].pop("rdrop_alpha"), rdrop["trainer"].pop("rdrop_from")) == (5, 0)
    assert (preset["trainer"].pop("rdrop_alpha"), preset["trainer"].pop("rdrop_from")) == base_rdrop
    assert rdrop.pop("name") == f"{base}_rdrop" and preset.pop("name") == base
    assert rdrop["optim"].pop("lr") == rdrop_lr
    assert (rdrop["trainer"].pop("average_last"), rdrop["trainer"].pop("average_select")) == (3, False)
    assert (preset["trainer"].pop("average_last"), preset["trainer"].pop("average_select")) == (10, True)
    preset["optim"].pop("lr")
    assert rdrop == preset


@pytest.mark.parametrize("stage", ["translate", "serve", "score"])
@pytest.mark.parametrize("decode", sorted(path.stem for path in (ROOT / "configs/decode").glob("*.yaml")))
def test_every_decode_group_composes_for_every_decoding_stage(stage, decode):
    inputs = ["src=a.en", "tgt=a.de"] if stage == "score" else []
    compose_config(stage, [f"decode={decode}", "checkpoint=x.pt", *inputs])


def test_the_multi30k_decoding_is_the_default_with_average_normalization():
    default = OmegaConf.to_container(compose_config("translate", ["checkpoint=x.pt"]).decode)
    multi30k = OmegaConf.to_container(compose_config("translate", ["decode=multi30k", "checkpoint=x.pt"]).decode)
    assert multi30k == default | {"length_norm": LengthNorm.average} and default["length_norm"] is LengthNorm.gnmt


@pytest.mark.parametrize("stage,overrides", [
    ("train", ["model=transformer_small", "data.max_len=2000", "model.max_positions=1024"]),
    ("train", ["model=gru_bahdanau", "data.max_len=1024"]),  # the GRU's bound is fixed at 1024
])
def test_a_max_len_the_model_has_no_positions_for_is_one_line_naming_both_keys(tmp_path, stage, overrides):
    result = run_cli(stage, *overrides, cwd=tmp_path)
    _one_line_error(result, "config error: data.max_len", "model.max_positions")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()  # refused before any work


def test_a_cosine_schedule_without_a_step_budget_is_one_line(tmp_path):
    result = run_cli("train", "optim.schedule=cosine", "trainer.max_steps=0", cwd=tmp_path)
    _one_line_error(result, "config error: optim.schedule", "trainer.max_steps")


def test_a_decode_check_fails_at_composition_as_one_config_error_line(tmp_path):
    result = run_cli("translate", "checkpoint=x.pt", "decode.beam_size=2", "decode.nbest=3", cwd=tmp_path)
    _one_line_error(result, "config error: decode.nbest", "decode.beam_size=2")


def test_reference_and_hypothesis_of_different_lengths_is_one_line(tmp_path):
    (tmp_path / "hyp.txt").write_text("a\nb\n")
    (tmp_path / "ref.txt").write_text("a\nb\nc\n")
    _one_line_error(run_cli("evaluate", "hyp=hyp.txt", "ref=ref.txt", cwd=tmp_path), "hyp.txt", "ref.txt")


def test_a_written_checkpoint_holds_only_what_the_weights_only_loader_reads(trained_run):
    """What training writes must load through the project's loader, which refuses anything but
    tensors and plain values (test_checkpoint.py shows it refuses code)."""
    payload = load_checkpoint(trained_run / "checkpoints/last.pt")
    assert payload["format"] == FORMAT and payload["progress"]["step"] == 12


def test_a_multirun_sweep_gives_each_setting_its_own_run_directory(tmp_path, trained_run):
    overrides = [o for o in TINY_TRAIN if not o.startswith("trainer.max_steps")]
    result = run_cli("train", "-m", "optim.lr=0.003,0.001", *overrides, "trainer.max_steps=2",
                     "trainer.max_minutes=5", f"data.cache_dir={trained_run.parent}/data/cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    runs = sorted(p for p in (tmp_path / "runs/gru_bahdanau-sweep").iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["0", "1"]
    for run, lr in zip(runs, ["0.003", "0.001"]):
        assert load_checkpoint(run / "checkpoints/last.pt")["progress"]["step"] == 2
        assert f"lr: {lr}" in (run / "config.yaml").read_text()
