"""The training update and loop: schedules, accumulation equals one big batch, non-finite losses
are skipped without advancing anything, and the loop's stopping rules."""

import logging
import math
import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import mean_of

from nmt.choices import AverageUntil, Precision, Schedule, Source, SubwordModel
from nmt.config import GRUConfig, OptimConfig, SearchSettings, TrainerConfig
from nmt.data.batching import collate
from nmt.data.cache import EncodedSplit, VocabSettings, prepare_cache
from nmt.data.cleaning import CleaningRules
from nmt.data.sources import CorpusSpec, open_corpus
from nmt.data.vocab import PAD_ID, UNK_ID, Vocab
from nmt.device import resolve_precision
from nmt.errors import NmtError
from nmt.models import build_model
from nmt.models.checkpoint import load_checkpoint
from nmt.training.distributed import DistInfo
from nmt.training.optim import build_optimizer, lr_factor
from nmt.training.state import TrainingProgress, average_window
from nmt.training.trainer import Trainer
from nmt.training.validation import ValidationSet
from nmt.training.word_dropout import drop_words


def test_inverse_sqrt_schedule_values():
    assert lr_factor(1, Schedule.inverse_sqrt, 4000) == pytest.approx(1 / 4000)
    assert lr_factor(2000, Schedule.inverse_sqrt, 4000) == pytest.approx(0.5)
    assert lr_factor(4000, Schedule.inverse_sqrt, 4000) == pytest.approx(1.0)
    assert lr_factor(16000, Schedule.inverse_sqrt, 4000) == pytest.approx(0.5)
    # The paper's formula: d^-0.5 * min(step^-0.5, step * warmup^-1.5), peak d^-0.5 * warmup^-0.5.
    d, warmup = 512, 4000
    for step in (1, 100, 4000, 10000, 100000):
        paper = d ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert (d ** -0.5 * warmup ** -0.5) * lr_factor(step, Schedule.inverse_sqrt, warmup) == pytest.approx(paper)


def test_constant_schedule_values():
    assert lr_factor(50, Schedule.constant, 100) == pytest.approx(0.5)
    assert lr_factor(100, Schedule.constant, 100) == 1.0 and lr_factor(10 ** 6, Schedule.constant, 100) == 1.0


def test_cosine_schedule_warms_up_then_falls_along_half_a_cosine_to_zero_after_the_last_step():
    warmup, total = 100, 1099  # 1,000 steps after the warmup, then zero at step 1,100
    assert lr_factor(50, Schedule.cosine, warmup, total) == pytest.approx(0.5)
    assert lr_factor(100, Schedule.cosine, warmup, total) == 1.0
    assert lr_factor(600, Schedule.cosine, warmup, total) == pytest.approx(0.5)
    assert lr_factor(350, Schedule.cosine, warmup, total) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    after = [lr_factor(step, Schedule.cosine, warmup, total) for step in range(warmup, total + 1)]
    assert all(a > b for a, b in zip(after, after[1:]))
    assert 0 < after[-1] < 1e-5  # the last update still moves the weights
    assert lr_factor(total + 50, Schedule.cosine, warmup, total) == 0.0  # a run resumed past its budget
    with pytest.raises(ValueError, match="total_steps"):
        build_optimizer(torch.nn.Linear(2, 2), 1e-3, (0.9, 0.98), 1e-9, 0.0, Schedule.cosine, warmup, 0)


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    corpus = open_corpus(CorpusSpec(Source.builtin, "en", "de", builtin_sizes={"train": 200, "valid": 0, "test": 0},
                                    builtin_seed=1))
    return prepare_cache(corpus, "b", CleaningRules(100, 3.0, True, False),
                         VocabSettings(120, SubwordModel.unigram, 10_000, 1.0), root, workers=1)


def _trainer(cache, tmp_path, model_config=None, precision=Precision.fp32, valid=None, optim=None, **settings):
    vocab = Vocab.from_file(str(cache / "spm.model"))
    config = model_config or GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, len(vocab))
    return Trainer(model=model, model_config=config, vocab=vocab, train=EncodedSplit(cache, "train"), valid=valid,
                   valid_search=SearchSettings(beam_size=1), settings=TrainerConfig(**{"label_smoothing": 0.1} | settings),
                   optim=optim or OptimConfig(lr=1e-2, warmup_steps=1), max_tokens=300, run_dir=tmp_path,
                   device=torch.device("cpu"), precision=precision, dist=DistInfo())


def test_the_cosine_schedule_ends_at_the_runs_max_steps(tiny_cache, tmp_path):
    optim = OptimConfig(lr=1e-2, warmup_steps=2, schedule=Schedule.cosine)
    trainer = _trainer(tiny_cache, tmp_path, optim=optim, max_steps=6)
    used = []
    for _ in range(6):
        used.append(trainer.parts.scheduler.get_last_lr()[0])
        trainer.step([np.arange(4)])
    expected = [1e-2 * lr_factor(step, Schedule.cosine, 2, 6) for step in range(1, 7)]
    assert used == pytest.approx(expected)
    assert used[-1] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 4 / 5)))


def _gradients_at_the_optimizer(trainer, micro_batches):
    """The gradients the optimizer is handed for one update, and the update's result."""
    seen = {}
    trainer.parts.optimizer.step = lambda *a, **k: seen.update(
        {n: p.grad.clone() for n, p in trainer.model.named_parameters()})
    return seen, trainer.step(micro_batches)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_accumulated_micro_batches_give_the_gradient_of_the_mean_token_loss(tiny_cache, tmp_path, smoothing):
    trainer = _trainer(tiny_cache, tmp_path, clip_norm=0.0, label_smoothing=smoothing)
    micro = [np.arange(0, 5), np.arange(5, 9), np.arange(9, 16)]
    # The reference: one forward over all pairs, the summed loss over all target tokens.
    reference = _trainer(tiny_cache, tmp_path / "ref")
    whole = collate([reference.train_data.pair(i) for i in range(16)])
    logits, _ = reference.model(whole.src, whole.tgt_in)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), whole.tgt_out.view(-1), ignore_index=PAD_ID,
                           label_smoothing=smoothing, reduction="sum") / whole.target_tokens
    loss.backward()
    for name, grad in _gradients_at_the_optimizer(trainer, micro)[0].items():
        torch.testing.assert_close(grad, dict(reference.model.named_parameters())[name].grad, atol=1e-7, rtol=1e-5,
                                   msg=name)


def _poison(trainer, value, from_call=1):
    """Make the loss of every update from the `from_call`-th on `value` (nan or inf)."""
    original, calls = trainer.updater.loss, []

    def loss(batch, rdrop):
        calls.append(1)
        objective, kl = original(batch, rdrop)
        return objective * (value if len(calls) >= from_call else 1.0), kl

    trainer.updater.loss = loss


def test_a_non_finite_step_changes_nothing_but_the_skip_counts(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path)
    trainer.step([np.arange(4)])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    lr_before = trainer.parts.scheduler.get_last_lr()
    _poison(trainer, float("nan"))
    result = trainer.step([np.arange(4)])
    assert not result.finite
    assert (trainer.progress.step, trainer.progress.skipped_steps, trainer.progress.skipped_in_a_row) == (1, 1, 1)
    assert trainer.parts.scheduler.get_last_lr() == lr_before
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("precision", [Precision.fp32, Precision.fp16])
def test_repeated_non_finite_steps_stop_the_run(tiny_cache, tmp_path, precision):
    trainer = _trainer(tiny_cache, tmp_path, max_bad_steps=3)
    if precision is Precision.fp16:
        # The fp16 path: a gradient scaler that skips overflowing steps itself (on the CPU here).
        trainer.parts.scaler = trainer.updater.parts.scaler = torch.amp.GradScaler("cpu", enabled=True)
    _poison(trainer, float("inf"))
    trainer.step([np.arange(4)])
    trainer.step([np.arange(4)])
    with pytest.raises(NmtError, match="3 optimizer steps in a row"):
        trainer.step([np.arange(4)])


def test_no_checkpoint_is_written_from_non_finite_steps(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path, max_bad_steps=2, valid_every=1, max_steps=50)
    _poison(trainer, float("nan"), from_call=3)
    with pytest.raises(NmtError, match="non-finite"):
        trainer.fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == [
        "best.pt", "last.pt", "step_1.pt", "step_2.pt"]
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["progress"]["step"] == 2


def test_the_skipped_step_count_survives_a_resume(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path)
    trainer.step([np.arange(4)])
    _poison(trainer, float("nan"))
    trainer.step([np.arange(4)])
    trainer.save(is_best=True)
    resumed = _trainer(tiny_cache, tmp_path / "other")
    resumed.resume(load_checkpoint(tmp_path / "checkpoints/last.pt"))
    assert resumed.progress == trainer.progress and resumed.progress.skipped_steps == 1


def test_loss_is_per_target_token(tiny_cache, tmp_path):
    result = _trainer(tiny_cache, tmp_path).step([np.arange(8)])
    assert math.isfinite(result.loss) and 2 < result.loss < 10  # ~ln(vocab) at the start


@pytest.mark.parametrize("model", ["gru", "transformer"])
def test_a_compiled_step_equals_an_eager_step(tiny_cache, tmp_path, model):
    from nmt.config import TransformerConfig

    config = GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=0.0) if model == "gru" else TransformerConfig(
        name="t", d_model=16, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=32, dropout=0.0)
    eager, compiled = (_trainer(tiny_cache, tmp_path / str(c), model_config=config, compile=c).step([np.arange(6)])
                       for c in (False, True))
    # Loss and gradient norm, not parameters: Adam's first step turns float noise in gradients
    # that are zero in exact arithmetic (the attention key bias) into full-size updates.
    assert compiled.loss == pytest.approx(eager.loss, rel=1e-5)
    assert compiled.grad_norm == pytest.approx(eager.grad_norm, rel=1e-4)


def _scripted_validation(cache, monkeypatch, bleu) -> ValidationSet:
    """A validation set whose validation BLEU is bleu() when asked, instead of a decode."""
    monkeypatch.setattr("nmt.training.trainer.validate", lambda *args: {"loss": 1.0, "ppl": 2.7, "bleu": bleu()})
    monkeypatch.setattr("nmt.training.trainer.attention_picture", lambda *args: None)
    return ValidationSet(EncodedSplit(cache, "train"), [], 64, 300)


def _fitting_trainer(cache, tmp_path, monkeypatch, bleu_scores, **settings):
    scores = iter(bleu_scores)
    valid = _scripted_validation(cache, monkeypatch, lambda: next(scores))
    return _trainer(cache, tmp_path, valid=valid, valid_every=1, log_every=1, **settings)


def test_patience_stops_after_that_many_validations_without_improvement(tiny_cache, tmp_path, monkeypatch):
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 12.0, 11.0, 12.0, 30.0], patience=2,
                               max_steps=100)
    result = trainer.fit()
    assert result["step"] == 4 and "no validation improvement" in result["reason"]
    assert load_checkpoint(tmp_path / "checkpoints/best.pt")["progress"]["step"] == 2


def test_a_run_stopped_by_patience_and_rerun_trains_no_further(tiny_cache, tmp_path, monkeypatch):
    # Validations at steps 1-4, then the average's (11.5).
    first = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 12.0, 11.0, 11.0, 11.5], patience=2,
                             max_steps=100, average_last=2, average_until=AverageUntil.last)
    assert first.fit()["step"] == 4
    # The rerun re-averages (another average_last) without a single update or validation: its one
    # score is the average's, and an update would validate step 5 and leave none for it.
    rerun = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [5.0], patience=2, max_steps=100, average_last=3,
                             average_until=AverageUntil.last)
    rerun.resume(load_checkpoint(tmp_path / "checkpoints/last.pt"))
    result = rerun.fit()
    assert result["step"] == 4 and "no validation improvement" in result["reason"]
    assert result["average"]["steps"] == [2, 3, 4]


def test_an_average_after_patience_takes_the_checkpoints_ending_at_best_and_rotation_keeps_them(
        tiny_cache, tmp_path, monkeypatch):
    # Validations at steps 1-7, best at 3, patience ends it at 7; then the average's (12.5). The
    # default, auto, averages up to best because patience ran out.
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 11.0, 13.0, 12.0, 11.0, 11.0, 11.0, 12.5],
                               patience=4, max_steps=100, keep_last=2, average_last=2)
    result = trainer.fit()
    assert result["step"] == 7 and result["average"]["steps"] == [2, 3] and result["average"]["until"] == "best"
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step_*.pt")) == ["step_2.pt", "step_3.pt", "step_6.pt",
                                                                     "step_7.pt"]
    models = [load_checkpoint(checkpoints / f"step_{n}.pt")["model"] for n in (2, 3)]
    average = load_checkpoint(checkpoints / "average.pt")["model"]
    for key, value in average.items():
        torch.testing.assert_close(value, (models[0][key].double() + models[1][key].double()).div(2).float())


@pytest.mark.parametrize(("average_scores", "chosen"), [([11.0, 14.0, 12.0], 2), ([12.0, 12.0, 11.0], 2),
                                                         ([13.0, 12.0, 11.0], 1)])
def test_average_select_writes_the_average_that_validates_best(tiny_cache, tmp_path, monkeypatch, average_scores,
                                                               chosen):
    # Validations at steps 1-4, then the averages of the newest 1, 2 and 3; ties go to the larger N.
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 11.0, 12.0, 13.0, *average_scores],
                               max_steps=4, keep_last=0, average_last=3, average_select=True)
    result = trainer.fit()["average"]
    assert result["chosen_from"] == {1: average_scores[0], 2: average_scores[1], 3: average_scores[2]}
    assert result["checkpoints"] == chosen and result["steps"] == list(range(5 - chosen, 5))
    checkpoints = tmp_path / "checkpoints"
    expected = mean_of([checkpoints / f"step_{n}.pt" for n in result["steps"]])
    torch.testing.assert_close(load_checkpoint(checkpoints / "average.pt")["model"], expected, rtol=1e-6, atol=1e-8)


def test_average_select_chooses_among_the_windows_ending_at_best_after_patience(tiny_cache, tmp_path, monkeypatch):
    # Best at 3, patience ends it at 6; the averages up to best: steps 3 (12.0), 2-3 (12.5), 1-3 (11.0).
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 11.0, 13.0, 12.0, 12.0, 12.0,
                                                                   12.0, 12.5, 11.0],
                               patience=3, max_steps=100, keep_last=3, average_last=3, average_select=True)
    result = trainer.fit()["average"]
    assert result["until"] == "best" and result["steps"] == [2, 3]


def test_average_select_without_validation_data_fails_before_training(tiny_cache, tmp_path):
    with pytest.raises(NmtError, match="trainer.average_select: the run has no validation data"):
        _trainer(tiny_cache, tmp_path, max_steps=2, valid_every=1, average_last=2, average_select=True)
    assert not (tmp_path / "tensorboard").exists()


@pytest.mark.parametrize(("settings", "error"), [
    ({"average_select": True}, "trainer.average_select: needs trainer.average_last"),
    ({"rdrop_from": 100}, "trainer.rdrop_from: is set but R-Drop is off; set trainer.rdrop_alpha too"),
    ({"rdrop_alpha": 5.0, "rdrop_from": -1}, "trainer.rdrop_from: must be >= 0"),
    ({"word_dropout": 1.0}, r"trainer.word_dropout: must be in \[0, 1\)")])
def test_settings_that_would_do_nothing_are_refused(settings, error):
    with pytest.raises(NmtError, match=error):
        TrainerConfig(**settings)


@pytest.mark.parametrize("until, steps", [(AverageUntil.auto, [4, 5]), (AverageUntil.best, [2, 3])])
def test_an_average_at_a_budget_ends_at_the_newest_unless_best_is_asked(tiny_cache, tmp_path, monkeypatch, until,
                                                                        steps):
    # Best at 3, patience (4) not yet over when max_steps stops the run at 5.
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 11.0, 13.0, 12.0, 11.0, 12.5],
                               patience=4, max_steps=5, keep_last=2, average_last=2, average_until=until)
    assert trainer.fit()["average"]["steps"] == steps


def test_a_run_from_before_best_step_rerun_with_average_until_best_finds_best_pt(tiny_cache, tmp_path, monkeypatch):
    # Validations at steps 1-4 (best at 2), then the average's.
    assert _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 12.0, 11.0, 11.0, 11.5], patience=2,
                            max_steps=100, keep_last=0, average_last=2,
                            average_until=AverageUntil.last).fit()["average"]["steps"] == [3, 4]
    payload = load_checkpoint(tmp_path / "checkpoints/last.pt")
    del payload["progress"]["best_step"]  # as written before the field existed
    rerun = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [5.0], patience=2, max_steps=100, keep_last=0,
                             average_last=2, average_until=AverageUntil.best)
    rerun.resume(payload)
    assert rerun.fit()["average"]["steps"] == [1, 2]


def test_a_run_trained_without_averaging_averages_the_newest_when_best_s_file_is_gone(tiny_cache, tmp_path,
                                                                                      monkeypatch, caplog):
    # Best at 2, patience ends it at 4; with no average asked, rotation kept only steps 3 and 4.
    _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 12.0, 11.0, 11.0], patience=2, max_steps=100,
                     keep_last=2).fit()
    payload = load_checkpoint(tmp_path / "checkpoints/last.pt")
    auto = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [5.0], patience=2, max_steps=100, keep_last=2,
                            average_last=2)
    auto.resume(payload)
    with caplog.at_level(logging.WARNING):
        assert auto.fit()["average"]["steps"] == [3, 4]
    assert "best.pt's step_2.pt was rotated out: averaging the newest" in caplog.text
    best = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [5.0], patience=2, max_steps=100, keep_last=2,
                            average_last=2, average_until=AverageUntil.best)
    best.resume(payload)
    with pytest.raises(NmtError, match="step_2.pt: the best checkpoint's file is missing"):
        best.fit()


def test_an_average_window_ends_at_the_step_asked_and_names_its_file_when_missing(tmp_path):
    for step in (1, 2, 3):
        (tmp_path / f"step_{step}.pt").write_bytes(bytes([step]))
    assert [p.name for p in average_window(tmp_path, 5, 2)] == ["step_1.pt", "step_2.pt"]
    assert [p.name for p in average_window(tmp_path, 1)] == ["step_3.pt"]
    (tmp_path / "step_2.pt").unlink()  # rotated out; best.pt keeps the data
    with pytest.raises(NmtError, match="step_2.pt: the best checkpoint's file is missing .*trainer.average_until=last"):
        average_window(tmp_path, 2, 2)


def test_a_run_stopped_by_patience_and_rerun_with_more_patience_trains_on(tiny_cache, tmp_path, monkeypatch):
    assert _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [10.0, 12.0, 11.0, 11.0], patience=2,
                            max_steps=100).fit()["step"] == 4
    rerun = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [11.0], patience=3, max_steps=100)
    rerun.resume(load_checkpoint(tmp_path / "checkpoints/last.pt"))
    result = rerun.fit()
    assert result["step"] == 5 and "no validation improvement in 3" in result["reason"]


def test_max_epochs_stops_at_the_end_of_an_epoch(tiny_cache, tmp_path, monkeypatch):
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [1.0] * 1000, max_epochs=1)
    batches = len(trainer.parts.sampler.epoch_batches(0))
    result = trainer.fit()
    assert result["step"] == batches and result["reason"] == "reached 1 epochs"


def test_target_tokens_count_the_updates_taken_and_not_the_skipped(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path)
    taken = trainer.step([np.arange(8)])
    _poison(trainer, float("nan"))
    trainer.step([np.arange(8, 16)])
    assert trainer.progress.target_tokens == taken.tokens > 0


def _sigterm_after(trainer, step) -> None:
    """Make the trainer receive SIGTERM right after update `step` (None: never)."""
    update = trainer.step

    def update_then_signal(micro_batches):
        result = update(micro_batches)
        if trainer.progress.step == step:
            os.kill(os.getpid(), signal.SIGTERM)  # remembered by the loop, which stops after this step
        return result

    trainer.step = update_then_signal


def test_a_run_stopped_by_a_signal_is_not_averaged(tiny_cache, tmp_path, monkeypatch):
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [1.0] * 100, max_steps=100, average_last=2)
    _sigterm_after(trainer, 3)
    result = trainer.fit()
    assert result["reason"] == "received SIGTERM" and "average" not in result
    assert not (tmp_path / "checkpoints/average.pt").exists()


@pytest.mark.parametrize("signal_after", [5, 9])
def test_a_run_interrupted_off_the_validation_steps_and_resumed_ends_as_an_uninterrupted_one(
        tiny_cache, tmp_path, monkeypatch, signal_after):
    # Validation BLEU by step, whenever it is asked. Stopped after step 5, an extra validation there
    # would count towards patience (its score 0.0) and end the rerun 2 updates early; after step 9, a
    # step_9.pt would be averaged with step 10.
    bleu_at = {2: 10.0, 4: 12.0, 6: 11.0, 8: 11.5, 10: 11.0}
    trainers = []
    valid = _scripted_validation(tiny_cache, monkeypatch, lambda: bleu_at.get(trainers[-1].progress.step, 0.0))

    def run(directory, signal_after=None, resume=False):
        trainers.append(_trainer(tiny_cache, directory, valid=valid, valid_every=2, log_every=1, patience=3,
                                 max_steps=100, average_last=2))
        trainer = trainers[-1]
        if resume:
            trainer.resume(load_checkpoint(directory / "checkpoints/last.pt"))
        _sigterm_after(trainer, signal_after)
        return trainer.fit()

    through = run(tmp_path / "through")
    assert run(tmp_path / "stopped", signal_after=signal_after)["reason"] == "received SIGTERM"
    resumed = run(tmp_path / "stopped", resume=True)
    assert through["step"] == resumed["step"] == 10 and "no validation improvement" in resumed["reason"]
    # Patience ran out, so the average ends at best (step 4), which the resumed run knows too.
    assert through["average"]["steps"] == resumed["average"]["steps"] == [2, 4]
    for directory in ("through", "stopped"):
        assert load_checkpoint(tmp_path / directory / "checkpoints/best.pt")["progress"]["step"] == 4


def test_a_run_that_reaches_its_end_is_averaged(tiny_cache, tmp_path, monkeypatch):
    trainer = _fitting_trainer(tiny_cache, tmp_path, monkeypatch, [1.0, 2.0, 3.0, 4.0, 3.5], max_steps=4,
                               average_last=2)
    result = trainer.fit()
    assert result["average"] == {"checkpoints": 2, "steps": [3, 4], "until": "last", "loss": 1.0, "ppl": 2.7,
                                 "bleu": 3.5}
    assert (tmp_path / "checkpoints/average.pt").is_file()


def test_a_checkpoint_from_before_token_counting_resumes_counting_from_zero():
    older = {"progress": {"step": 7, "best_score": 1.0, "bad_validations": 0, "skipped_steps": 0,
                          "skipped_in_a_row": 0, "trained_seconds": 3.0}}
    assert TrainingProgress.from_payload(older) == TrainingProgress(step=7, best_score=1.0, trained_seconds=3.0)


def test_a_cpu_computes_in_bf16_only_when_asked():
    cpu = torch.device("cpu")
    assert resolve_precision(Precision.bf16, cpu) is Precision.bf16
    assert resolve_precision(Precision.auto, cpu) is Precision.fp32
    assert resolve_precision(Precision.fp16, cpu) is Precision.fp32  # fp16 matmuls are GPU work


def test_bf16_on_a_cpu_runs_the_layers_in_bf16_and_learns_as_fp32_does(tiny_cache, tmp_path):
    losses, dtypes = {}, []
    for precision in (Precision.fp32, Precision.bf16):
        trainer = _trainer(tiny_cache, tmp_path / precision.value, precision=precision)
        trainer.model.W_o.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        losses[precision] = [trainer.step([np.arange(8)]).loss for _ in range(30)]
    assert dtypes[0] == torch.float32 and dtypes[-1] == torch.bfloat16
    assert losses[Precision.bf16][-1] < 0.8 * losses[Precision.bf16][0]
    assert losses[Precision.bf16][-1] == pytest.approx(losses[Precision.fp32][-1], rel=0.01)


def test_rdrop_from_makes_plain_updates_until_that_step_then_rdrop_ones(tiny_cache, tmp_path):
    config = GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=0.3)
    runs = {"late": {"rdrop_alpha": 5.0, "rdrop_from": 2}, "plain": {}, "rdrop": {"rdrop_alpha": 5.0}}
    results = {}
    for name, settings in runs.items():
        trainer = _trainer(tiny_cache, tmp_path / name, model_config=config, **settings)
        torch.manual_seed(3)  # the same dropout masks while the updates are the same
        results[name] = [trainer.step([np.arange(8 * i, 8 * i + 8)]) for i in range(3)]
    # Steps 0 and 1 (the first two updates) are plain ones: the same losses and parameters as a plain run.
    assert [r.loss for r in results["late"][:2]] == [r.loss for r in results["plain"][:2]]
    assert [r.rdrop_kl for r in results["late"]][:2] == [0.0, 0.0] and results["late"][2].rdrop_kl > 1e-4
    assert results["rdrop"][0].rdrop_kl > 1e-4
    assert results["late"][2].loss != results["plain"][2].loss


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_an_rdrop_update_gives_the_gradient_of_the_criterion_over_the_batch_twice(tiny_cache, tmp_path, dropout):
    config = GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=dropout)
    trainer = _trainer(tiny_cache, tmp_path, model_config=config, clip_norm=0.0, rdrop_alpha=5.0)
    reference = _trainer(tiny_cache, tmp_path / "ref", model_config=config, label_smoothing=0.1)
    indices = np.arange(12)
    whole = collate([reference.train_data.pair(i) for i in indices])
    # The same dropout masks: the same seed before the same forward over the batch stacked on itself.
    torch.manual_seed(7)
    logits, _ = reference.model.train()(whole.src.repeat(2, 1), whole.tgt_in.repeat(2, 1))
    vocab, targets = logits.size(-1), whole.tgt_out.reshape(-1)
    log_p, log_q = F.log_softmax(logits, -1).reshape(2, -1, vocab)
    kept = (targets != PAD_ID).unsqueeze(1)
    kl = (F.kl_div(log_p, log_q, log_target=True, reduction="none") +
          F.kl_div(log_q, log_p, log_target=True, reduction="none")).masked_fill(~kept, 0.0).sum() / 2
    cross_entropy = F.cross_entropy(logits.reshape(-1, vocab), targets.repeat(2), ignore_index=PAD_ID,
                                    label_smoothing=0.1, reduction="sum")
    ((cross_entropy + 5.0 * kl) / (2 * whole.target_tokens)).backward()
    torch.manual_seed(7)
    gradients, result = _gradients_at_the_optimizer(trainer, [indices])
    for name, grad in gradients.items():
        torch.testing.assert_close(grad, dict(reference.model.named_parameters())[name].grad, atol=1e-7, rtol=1e-4,
                                   msg=name)
    # What the log shows: the objective and the KL term, each per target token.
    assert result.loss == pytest.approx(((cross_entropy / 2 + 2.5 * kl) / whole.target_tokens).item(), rel=1e-5)
    assert result.rdrop_kl == pytest.approx((kl / whole.target_tokens).item(), rel=1e-5, abs=1e-9)
    assert (result.rdrop_kl > 1e-4) == (dropout > 0)
    if dropout == 0.0:  # two identical predictions: R-Drop's term and its gradient vanish
        plain = _trainer(tiny_cache, tmp_path / "plain", model_config=config, clip_norm=0.0)
        for name, grad in _gradients_at_the_optimizer(plain, [indices])[0].items():
            torch.testing.assert_close(grad, gradients[name], atol=1e-7, rtol=1e-4, msg=name)


def test_a_word_dropout_update_gives_the_gradient_over_the_inputs_it_drew_and_every_label(tiny_cache, tmp_path):
    config = GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=0.0)  # word dropout the only draw
    trainer = _trainer(tiny_cache, tmp_path, model_config=config, clip_norm=0.0, word_dropout=0.3)
    reference = _trainer(tiny_cache, tmp_path / "ref", model_config=config)
    indices = np.arange(12)
    whole = collate([reference.train_data.pair(i) for i in indices])
    torch.manual_seed(7)
    dropped = drop_words(whole, 0.3)
    assert (dropped.src == UNK_ID).any() and torch.equal(dropped.tgt_out, whole.tgt_out)
    logits, _ = reference.model.train()(dropped.src, dropped.tgt_in)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), whole.tgt_out.reshape(-1), ignore_index=PAD_ID,
                           label_smoothing=0.1, reduction="sum")
    (loss / whole.target_tokens).backward()
    torch.manual_seed(7)
    gradients, result = _gradients_at_the_optimizer(trainer, [indices])
    for name, grad in gradients.items():
        torch.testing.assert_close(grad, dict(reference.model.named_parameters())[name].grad, atol=1e-7, rtol=1e-4,
                                   msg=name)
    assert result.loss == pytest.approx((loss / whole.target_tokens).item(), rel=1e-5)
    # The untrained model's loss hardly moves, but its gradient does: an update without word dropout differs.
    plain = _trainer(tiny_cache, tmp_path / "plain", model_config=config, clip_norm=0.0)
    torch.manual_seed(7)
    plain_grad = _gradients_at_the_optimizer(plain, [indices])[0]["src_embed.weight"]
    assert (plain_grad - gradients["src_embed.weight"]).abs().max() > 0.1 * plain_grad.abs().max()


# Three updates: with R-Drop from the first (rdrop_from 0) or from the second; never without R-Drop.
@pytest.mark.parametrize(("alpha", "rdrop_from", "logged_steps"), [(0.0, 0, []), (5.0, 0, [1, 2, 3]),
                                                                   (5.0, 1, [2, 3])])
def test_the_rdrop_kl_is_logged_beside_the_loss_only_with_rdrop(tiny_cache, tmp_path, alpha, rdrop_from,
                                                                logged_steps, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=0.3)
    trainer = _trainer(tiny_cache, tmp_path, model_config=config, rdrop_alpha=alpha, rdrop_from=rdrop_from,
                       max_steps=3, log_every=1, valid_every=3)
    with caplog.at_level(logging.INFO, logger="nmt.training.trainer"):
        trainer.fit()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    logged = events.Scalars("train/rdrop_kl") if logged_steps else []
    assert ("train/rdrop_kl" in events.Tags()["scalars"]) == bool(logged_steps)
    assert [event.step for event in logged] == logged_steps and all(event.value > 0 for event in logged)
    # The trainer's step lines only: other loggers' messages may name the test's directory.
    messages = [record.getMessage() for record in caplog.records if record.name == "nmt.training.trainer"]
    step_lines = [line for line in messages if " loss " in line and "valid" not in line]
    assert [" rdrop_kl " in line for line in step_lines] == [step in logged_steps for step in (1, 2, 3)]

