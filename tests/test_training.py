"""The training step: schedules, accumulation equals one big batch, non-finite losses are skipped."""

import math

import numpy as np
import pytest
import torch

from nmt.config import GRUConfig, OptimConfig, Source, TrainerConfig
from nmt.data.cache import VocabSettings, prepare_cache, EncodedSplit
from nmt.data.cleaning import CleaningRules
from nmt.data.sources import CorpusSpec, open_corpus
from nmt.data.vocab import Vocab
from nmt.distributed import DistInfo
from nmt.errors import NmtError
from nmt.models import build_model
from nmt.optim import lr_factor
from nmt.checkpoint import load_checkpoint
from nmt.trainer import Trainer


def test_inverse_sqrt_schedule_values():
    assert lr_factor(1, "inverse_sqrt", 4000) == pytest.approx(1 / 4000)
    assert lr_factor(2000, "inverse_sqrt", 4000) == pytest.approx(0.5)
    assert lr_factor(4000, "inverse_sqrt", 4000) == pytest.approx(1.0)
    assert lr_factor(16000, "inverse_sqrt", 4000) == pytest.approx(0.5)
    # The paper's formula: d^-0.5 * min(step^-0.5, step * warmup^-1.5), peak d^-0.5 * warmup^-0.5.
    d, warmup = 512, 4000
    for step in (1, 100, 4000, 10000, 100000):
        paper = d ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)
        assert (d ** -0.5 * warmup ** -0.5) * lr_factor(step, "inverse_sqrt", warmup) == pytest.approx(paper)


def test_constant_schedule_values():
    assert lr_factor(50, "constant", 100) == pytest.approx(0.5)
    assert lr_factor(100, "constant", 100) == 1.0 and lr_factor(10 ** 6, "constant", 100) == 1.0


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    corpus = open_corpus(CorpusSpec(Source.builtin, "en", "de", builtin_sizes={"train": 200, "valid": 0, "test": 0},
                                    builtin_seed=1))
    return prepare_cache(corpus, "b", CleaningRules(100, 3.0, True, False),
                         VocabSettings(120, "unigram", 10_000, 1.0), root, workers=1)


def _trainer(cache, tmp_path, **settings):
    vocab = Vocab.from_file(str(cache / "spm.model"))
    config = GRUConfig(name="g", embed_dim=16, hidden_dim=16, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, len(vocab))
    return Trainer(model, config, vocab, EncodedSplit(cache, "train"), None,
                   TrainerConfig(label_smoothing=0.1, **settings), OptimConfig(lr=1e-2, warmup_steps=1),
                   300, tmp_path, torch.device("cpu"), "fp32", DistInfo())


def test_accumulating_micro_batches_equals_one_big_batch(tiny_cache, tmp_path):
    split = _trainer(tiny_cache, tmp_path / "a")
    whole = _trainer(tiny_cache, tmp_path / "b")
    micro = [np.arange(0, 5), np.arange(5, 9), np.arange(9, 16)]
    split.train_step(micro)
    whole.train_step([np.concatenate(micro)])
    for (name, a), b in zip(split.model.state_dict().items(), whole.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_a_non_finite_step_is_skipped_and_counted(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    original = trainer._loss
    trainer._loss = lambda batch, ls: original(batch, ls) * float("nan")
    stats = trainer.train_step([np.arange(4)])
    assert not stats["finite"] and trainer.skipped_steps == 1
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_repeated_non_finite_steps_stop_the_run(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path, max_bad_steps=3)
    original = trainer._loss
    trainer._loss = lambda batch, ls: original(batch, ls) * float("inf")
    trainer.train_step([np.arange(4)])
    trainer.train_step([np.arange(4)])
    with pytest.raises(NmtError, match="3 optimizer steps in a row"):
        trainer.train_step([np.arange(4)])
    assert not any(tmp_path.glob("checkpoints/*.pt"))


def test_loss_is_per_target_token(tiny_cache, tmp_path):
    trainer = _trainer(tiny_cache, tmp_path)
    stats = trainer.train_step([np.arange(8)])
    assert math.isfinite(stats["loss"]) and 2 < stats["loss"] < 10  # ~ln(vocab) at the start


def test_a_compiled_step_equals_an_eager_step(tiny_cache, tmp_path):
    from nmt.config import TransformerConfig

    vocab = Vocab.from_file(str(tiny_cache / "spm.model"))
    config = TransformerConfig(name="t", d_model=16, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=32,
                               dropout=0.0)
    results = []
    for compile_model in (False, True):
        torch.manual_seed(0)
        model = build_model(config, len(vocab))
        trainer = Trainer(model, config, vocab, EncodedSplit(tiny_cache, "train"), None,
                          TrainerConfig(compile=compile_model), OptimConfig(lr=1e-2, warmup_steps=1), 300,
                          tmp_path / str(compile_model), torch.device("cpu"), "fp32", DistInfo())
        results.append(trainer.train_step([np.arange(6)]))
    # Loss and gradient norm, not parameters: Adam's first step turns float noise in gradients
    # that are zero in exact arithmetic (the attention key bias) into full-size updates.
    eager, compiled = results
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-5)
    assert compiled["grad_norm"] == pytest.approx(eager["grad_norm"], rel=1e-4)


def _fitting_trainer(cache, tmp_path, bleu_scores, **settings):
    from nmt.trainer import ValidationSet

    trainer = _trainer(cache, tmp_path, valid_every=1, log_every=1, **settings)
    trainer.valid = ValidationSet(EncodedSplit(cache, "train"), [])
    scores = iter(bleu_scores)
    trainer.validate = lambda: {"loss": 1.0, "ppl": 2.7, "bleu": next(scores)}
    trainer.attention_picture = lambda: None
    return trainer


def test_patience_stops_after_that_many_validations_without_improvement(tiny_cache, tmp_path):
    trainer = _fitting_trainer(tiny_cache, tmp_path, [10.0, 12.0, 11.0, 12.0, 30.0], patience=2, max_steps=100)
    result = trainer.fit()
    assert result["step"] == 4 and "no validation improvement" in result["reason"]
    assert load_checkpoint(tmp_path / "checkpoints/best.pt")["step"] == 2


def test_max_epochs_stops_at_the_end_of_an_epoch(tiny_cache, tmp_path):
    trainer = _fitting_trainer(tiny_cache, tmp_path, [1.0] * 1000, max_epochs=1)
    batches = len(trainer.sampler.epoch_batches(0))
    result = trainer.fit()
    assert result["step"] == batches and result["reason"] == "reached 1 epochs"
