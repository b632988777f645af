"""decode.quantize=int8 on a checkpoint: PyTorch's dynamic int8 for both models' linear and
recurrent layers."""

import pytest
import torch
from conftest import run_cli
from torch.ao.nn.quantized import dynamic as qdynamic

from nmt.backends import Translator
from nmt.backends.pytorch import quantize_dynamic_int8


def test_int8_replaces_the_gru_models_recurrent_and_linear_layers(tiny_gru_checkpoint):
    model = Translator.from_checkpoint(tiny_gru_checkpoint, "cpu", quantize=True).model
    assert isinstance(model.encoder, qdynamic.GRU)
    assert all(isinstance(cell, qdynamic.GRUCell) for cell in model.cells)
    assert isinstance(model.W_o, qdynamic.Linear)


def test_int8_replaces_every_linear_layer_of_the_transformer(transformer_model):
    model = quantize_dynamic_int8(transformer_model)
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert isinstance(model.decoder_layers[0].cross_attn.kv_proj, qdynamic.Linear)


def test_int8_next_token_distributions_stay_close_to_float32(any_model, padded_batch):
    src, _ = padded_batch
    prev = torch.tensor([2, 2, 2])
    expected, _, _ = any_model.decode_step(prev, any_model.encode(src))
    quantized = quantize_dynamic_int8(any_model)
    actual, _, _ = quantized.decode_step(prev, quantized.encode(src))
    assert torch.allclose(actual.exp(), expected.exp(), atol=0.02)
    assert not torch.equal(actual, expected)  # it did run in int8


@pytest.mark.parametrize("trained_transformer", ["pre_norm"], indirect=True)
def test_int8_translations_of_a_trained_transformer_mostly_equal_float32(trained_transformer):
    from nmt.data.builtin import generate_pairs
    lines = [source for source, _ in generate_pairs(50, 99)]
    float32 = Translator.from_checkpoint(trained_transformer, "cpu").translate(lines)
    int8 = Translator.from_checkpoint(trained_transformer, "cpu", quantize=True).translate(lines)
    assert sum(a == b for a, b in zip(float32, int8)) >= 0.6 * len(lines)


def test_translate_with_decode_quantize_int8_gives_one_line_per_input(tiny_gru_checkpoint, tmp_path):
    result = run_cli("translate", f"checkpoint={tiny_gru_checkpoint}", "decode.quantize=int8", "device=cpu",
                     cwd=tmp_path, stdin=b"A dog.\n\nTwo red cars.\n")
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout.decode().split("\n")[:-1]) == 3
    assert result.stderr.decode().strip() == ""


def test_an_unknown_decode_quantize_is_a_one_line_config_error(tiny_gru_checkpoint, tmp_path):
    result = run_cli("translate", f"checkpoint={tiny_gru_checkpoint}", "decode.quantize=int4", cwd=tmp_path,
                     stdin=b"A dog.\n")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "decode.quantize" in lines[0]
