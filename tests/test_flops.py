"""MFU's FLOP counts equal what PyTorch's own counter sees in a forward pass of models composed
the way `bench_train.py` and the command line compose them; the peak table matches device names."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nmt.choices import OutputLayer
from nmt.cli import compose_config
from nmt.config import ModelConfig
from nmt.models import build_model
from nmt.models.flops import forward_flops, peak_flops

VOCAB = 37
BATCH, SRC_LEN, TGT_LEN = 3, 7, 5  # no padding: every sentence has these lengths
SMALL = {
    "transformer": ["model=transformer_small", "model.d_model=16", "model.encoder_layers=2", "model.decoder_layers=3",
                    "model.heads=4", "model.ffn_dim=24", "model.dropout=0"],
    "gru": ["model=gru_bahdanau", "model.embed_dim=8", "model.hidden_dim=12", "model.encoder_layers=2",
            "model.decoder_layers=2", "model.dropout=0"],
    "gru_deep": ["model=gru_bahdanau", "model.embed_dim=8", "model.hidden_dim=12", "model.dropout=0",
                 "model.output_layer=deep", "model.tie_embeddings=true"],
}


def composed_model(overrides: list[str]) -> ModelConfig:
    return OmegaConf.to_object(compose_config("train", overrides)).model


def counted_flops(config: ModelConfig) -> float:
    torch.manual_seed(0)
    model = build_model(config, VOCAB).eval()
    src = torch.randint(4, VOCAB, (BATCH, SRC_LEN))
    tgt_in = torch.randint(4, VOCAB, (BATCH, TGT_LEN))
    # The math kernel of attention is plain matrix products, which the counter sees (fused kernels it may not).
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(src, tgt_in)
    return counter.get_total_flops()


def formula_flops(config: ModelConfig) -> float:
    return forward_flops(config, VOCAB, np.full(BATCH, SRC_LEN), np.full(BATCH, TGT_LEN))


@pytest.mark.parametrize("name", SMALL)
def test_forward_flops_equal_pytorchs_count_of_matrix_products(name):
    config = composed_model(SMALL[name])
    assert formula_flops(config) == pytest.approx(counted_flops(config), rel=1e-9)


def test_deep_output_layer_is_counted_with_its_own_formula():
    deep = composed_model(SMALL["gru_deep"])
    linear = composed_model(SMALL["gru_deep"][:-2])
    assert deep.output_layer is OutputLayer.deep and linear.output_layer is OutputLayer.linear
    assert formula_flops(deep) != formula_flops(linear)
    assert formula_flops(deep) == pytest.approx(counted_flops(deep), rel=1e-9)


def test_peaks_are_found_by_device_name_and_precision():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16")[0] == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bf16")[0] == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp32")[0] == 156e12
    assert peak_flops("NVIDIA H200", "fp16")[1] == "H200 fp16 989 TFLOP/s dense"
    assert peak_flops("cpu", "fp32") is None and peak_flops("Tesla V100-SXM2-16GB", "bf16") is None
