"""Checkpoints: atomic, self-contained, never able to run code, refused when they do not fit."""

import os
import pickle

import pytest
import torch

from nmt.backends import Translator
from nmt.choices import LinearInit
from nmt.config import GRUConfig, TransformerConfig, plain_fields
from nmt.errors import NmtError
from nmt.models.checkpoint import average_checkpoints, describe_mismatch, load_checkpoint, save_checkpoint

MARKER = "/tmp/nmt-pwned-marker"


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "payload": RunsCode()}, path)
    with pytest.raises(NmtError, match="refused"):
        load_checkpoint(path)
    with pytest.raises(NmtError, match="refused"):
        Translator.from_checkpoint(path)
    assert not os.path.exists(MARKER)


def test_a_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "pickle.pt"
    path.write_bytes(pickle.dumps(RunsCode()))
    with pytest.raises(NmtError):
        load_checkpoint(path)
    assert not os.path.exists(MARKER)


def test_save_is_atomic_when_interrupted(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"format": 1, "model": {"w": torch.ones(2)}})

    class Exploding:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"format": 1, "model": {"w": torch.zeros(2)}, "x": Exploding()})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def _payload(kind, config, vocab=b"v"):
    return {"model_kind": kind, "model_config": plain_fields(config),
            "vocab": torch.frombuffer(bytearray(vocab), dtype=torch.uint8)}


def test_mismatches_say_what_differs():
    gru = GRUConfig(name="g", hidden_dim=64)
    assert describe_mismatch(_payload("gru_attention", gru), gru, b"v") is None
    assert "model type" in describe_mismatch(_payload("gru_attention", gru), TransformerConfig(name="t"), b"v")
    other = GRUConfig(name="g", hidden_dim=128)
    assert "hidden_dim: 64 vs 128" in describe_mismatch(_payload("gru_attention", gru), other, b"v")
    assert "vocabulary" in describe_mismatch(_payload("gru_attention", gru), gru, b"w")


def test_a_checkpoint_from_before_a_field_existed_resumes_with_its_default():
    config = TransformerConfig(name="t")
    older = _payload("transformer", config)
    del older["model_config"]["linear_init"]
    assert describe_mismatch(older, config, b"v") is None
    xavier = TransformerConfig(name="t", linear_init=LinearInit.xavier)
    assert "linear_init: torch vs xavier" in describe_mismatch(older, xavier, b"v")


def test_averaging_is_the_elementwise_mean(tmp_path):
    paths = []
    for i, value in enumerate([1.0, 2.0, 6.0]):
        path = tmp_path / f"step_{i}.pt"
        save_checkpoint(path, {"format": 1, "model_kind": "gru_attention", "model_config": {"a": 1},
                               "vocab": torch.zeros(1, dtype=torch.uint8),
                               "model": {"w": torch.full((2,), value), "n": torch.tensor(i)}})
        paths.append(path)
    averaged = average_checkpoints(paths)
    assert torch.equal(averaged["model"]["w"], torch.full((2,), 3.0))
    assert averaged["model"]["n"].item() == 2  # what cannot be averaged is the newest checkpoint's
