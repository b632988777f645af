import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.models.gru_attention import GRUAttentionModel
from nmt.models.transformer import TransformerModel

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def run_cli(stage: str, *overrides: str, cwd: Path, stdin: bytes | None = None, env: dict | None = None,
            timeout: float = 600, module: str | None = None) -> subprocess.CompletedProcess:
    """`python -m nmt.<stage> overrides...` in `cwd`, as a user would run it."""
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", module or f"nmt.{stage}", *overrides], cwd=cwd, input=stdin,
                          capture_output=True, env=environment, timeout=timeout)


@pytest.fixture
def gru_model() -> GRUAttentionModel:
    torch.manual_seed(0)
    return GRUAttentionModel(vocab_size=23, embed_dim=8, hidden_dim=12, dropout=0.0).eval()


@pytest.fixture
def transformer_model() -> TransformerModel:
    torch.manual_seed(0)
    return TransformerModel(vocab_size=23, d_model=16, encoder_layers=2, decoder_layers=2, heads=4, ffn_dim=32,
                            dropout=0.0, max_positions=64).eval()


@pytest.fixture(params=["gru", "transformer"])
def any_model(request, gru_model, transformer_model):
    return gru_model if request.param == "gru" else transformer_model


@pytest.fixture
def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Sources of different lengths (EOS=3, PAD=0) and teacher-forcing inputs (BOS=2)."""
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0], [11, 3, 0, 0, 0]])
    tgt_in = torch.tensor([[2, 12, 13, 14], [2, 15, 16, 0], [2, 17, 0, 0]])
    return src, tgt_in


TINY_DATA = ("data.builtin_sizes={train:400,valid:40,test:30}", "data.vocab_size=200")
TINY_TRAIN = (*TINY_DATA, "model.embed_dim=32", "model.hidden_dim=48", "trainer.max_steps=12",
              "trainer.valid_every=6", "trainer.log_every=3", "data.max_tokens=800", "trainer.threads=1")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A tiny GRU run on the built-in corpus, trained through the CLI; its directory."""
    work = tmp_path_factory.mktemp("run")
    result = run_cli("train", *TINY_TRAIN, "run_dir=run", cwd=work)
    assert result.returncode == 0, result.stderr.decode()
    return work / "run"
