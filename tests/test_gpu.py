"""The GPU path: mixed precision agrees with fp32, fp16's scaler skips an overflow, a compiled
model trains and decodes, CUDA decodes as the CPU does, a GPU checkpoint translates on a CPU, and
the blockwise loss equals PyTorch's cross-entropy on CUDA.

Marked `gpu` and skipped (listed in pytest's -ra summary) where no CUDA device is present;
`scripts/gpu_check.sh` runs them on a GPU.
"""

import numpy as np
import pytest
import torch
from conftest import TINY_DATA, TINY_TRAIN, run_cli

from nmt.backends import Translator
from nmt.choices import Precision, Source, SubwordModel
from nmt.config import OptimConfig, SearchSettings, TrainerConfig, TransformerConfig
from nmt.data.builtin import generate_pairs
from nmt.data.cache import EncodedSplit, VocabSettings, prepare_cache
from nmt.data.cleaning import CleaningRules
from nmt.data.sources import CorpusSpec, open_corpus
from nmt.data.vocab import Vocab
from nmt.decoding.search import search
from nmt.models import build_model
from nmt.training.distributed import DistInfo
from nmt.training.trainer import Trainer

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")
TINY_TRANSFORMER = TransformerConfig(name="t", d_model=32, encoder_layers=2, decoder_layers=2, heads=4, ffn_dim=64,
                                     dropout=0.0)
TRANSFORMER_OVERRIDES = ("model=transformer_small", "model.d_model=32", "model.heads=4", "model.ffn_dim=64",
                         "model.encoder_layers=1", "model.decoder_layers=1")


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    corpus = open_corpus(CorpusSpec(Source.builtin, "en", "de", builtin_sizes={"train": 300, "valid": 0, "test": 0},
                                    builtin_seed=1))
    return prepare_cache(corpus, "b", CleaningRules(100, 3.0, True, False), VocabSettings(120, SubwordModel.unigram, 10_000, 1.0),
                         tmp_path_factory.mktemp("cache"), workers=1)


def _make_trainer(cache, run_dir, precision: str) -> Trainer:
    """The one place these tests build a Trainer: the tiny Transformer on CUDA, same weights every time."""
    vocab = Vocab.from_file(str(cache / "spm.model"))
    torch.manual_seed(0)
    model = build_model(TINY_TRANSFORMER, len(vocab)).to(CUDA)
    return Trainer(model=model, model_config=TINY_TRANSFORMER, vocab=vocab, train=EncodedSplit(cache, "train"),
                   valid=None, valid_search=None, settings=TrainerConfig(label_smoothing=0.0, clip_norm=0.0),
                   optim=OptimConfig(lr=1e-3, warmup_steps=1), max_tokens=400, run_dir=run_dir, device=CUDA,
                   precision=Precision(precision), dist=DistInfo())


@pytest.mark.parametrize("precision,tolerance", [("bf16", 3e-2), ("fp16", 5e-3)])
def test_mixed_precision_steps_agree_with_fp32(tiny_cache, tmp_path, precision, tolerance):
    batches = [np.arange(i * 12, (i + 1) * 12) for i in range(5)]
    runs = {}
    for name in ("fp32", precision):
        trainer = _make_trainer(tiny_cache, tmp_path / name, name)
        runs[name] = [trainer.step([b]) for b in batches]
    for reference, mixed in zip(runs["fp32"], runs[precision]):
        assert mixed.finite
        assert mixed.loss == pytest.approx(reference.loss, rel=tolerance)
        assert mixed.grad_norm == pytest.approx(reference.grad_norm, rel=10 * tolerance)


def test_fp16_scaler_skips_an_overflowing_step(tiny_cache, tmp_path):
    trainer = _make_trainer(tiny_cache, tmp_path, "fp16")
    with torch.no_grad():
        trainer.model.embed.weight.mul_(1e6)  # tied output projection: fp16 logits overflow to inf
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    scale = trainer.parts.scaler.get_scale()
    stats = trainer.step([np.arange(12)])
    assert not stats.finite and trainer.progress.skipped_steps == 1 and trainer.progress.step == 0
    assert trainer.parts.scaler.get_scale() < scale
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_a_compiled_model_trains_and_decodes(tmp_path):
    result = run_cli("train", *TINY_DATA, *TRANSFORMER_OVERRIDES, "trainer.compile=true", "trainer.device=cuda",
                     "trainer.max_steps=12", "trainer.valid_every=6", "data.max_tokens=800", "run_dir=run",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    lines = [en for en, _ in generate_pairs(5, 99)]
    (tmp_path / "in.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("translate", "checkpoint=run/checkpoints/last.pt", "input=in.en", "output=out.de",
                     "device=cuda", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert len((tmp_path / "out.de").read_text(encoding="utf-8").splitlines()) == len(lines)


def test_cuda_greedy_search_equals_cpu(transformer_model, gru_model):
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0], [11, 3, 0, 0, 0]])
    greedy = SearchSettings(beam_size=1)
    for model in (transformer_model, gru_model):
        on_cpu = search(model, src, greedy)
        on_cuda = search(model.to(CUDA), src.to(CUDA), greedy)
        assert [h[0].tokens for h in on_cuda] == [h[0].tokens for h in on_cpu]


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu_run")
    result = run_cli("train", *TINY_TRAIN, "trainer.device=cuda", "run_dir=run", cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return work


def test_a_checkpoint_trained_on_gpu_translates_on_cpu_as_on_gpu(gpu_run):
    lines = [en for en, _ in generate_pairs(20, 99)]
    (gpu_run / "in.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli("translate", "checkpoint=run/checkpoints/last.pt", "input=in.en", "output=cpu.de",
                     "device=cpu", "decode.beam_size=1", cwd=gpu_run)
    assert result.returncode == 0, result.stderr.decode()
    on_gpu = Translator.from_checkpoint(gpu_run / "run/checkpoints/last.pt", "cuda")
    expected = on_gpu.translate(lines, SearchSettings(beam_size=1))
    assert (gpu_run / "cpu.de").read_text(encoding="utf-8").splitlines() == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_blockwise_loss_on_cuda_equals_pytorchs_cross_entropy(dtype, monkeypatch):
    from nmt.training import loss as loss_module

    monkeypatch.setattr(loss_module, "CUDA_BLOCK_ELEMENTS", 8 * 500)  # blocks of 8 rows, the last partial
    generator = torch.Generator(device=CUDA).manual_seed(0)
    logits = (torch.randn(61, 500, generator=generator, device=CUDA) * 3).to(dtype)
    targets = torch.randint(0, 500, (61,), generator=generator, device=CUDA)
    targets[::4] = 0
    reference, ours = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    expected = torch.nn.functional.cross_entropy(reference.float(), targets, ignore_index=0, label_smoothing=0.1,
                                                 reduction="sum")
    expected.backward()
    got = loss_module.smoothed_cross_entropy(ours * 1, targets, 0.1, ignore_index=0)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-3)
    torch.testing.assert_close(ours.grad, reference.grad)
