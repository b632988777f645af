"""MFU's FLOP counts equal what PyTorch's own counter sees in a forward pass; the peak table
matches device names."""

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nmt.config import GRUConfig, TransformerConfig
from nmt.flops import forward_flops, peak_flops
from nmt.models import build_model

VOCAB = 37
CONFIGS = [
    TransformerConfig(name="t", d_model=16, encoder_layers=2, decoder_layers=3, heads=4, ffn_dim=24, dropout=0.0),
    GRUConfig(name="g", embed_dim=8, hidden_dim=12, encoder_layers=2, decoder_layers=2, dropout=0.0),
    GRUConfig(name="g", embed_dim=8, hidden_dim=12, output_layer="deep", tie_embeddings=True, dropout=0.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["transformer", "gru", "gru_deep"])
def test_forward_flops_equal_pytorchs_count_of_matrix_products(config):
    torch.manual_seed(0)
    model = build_model(config, VOCAB).eval()
    batch, src_len, tgt_len = 3, 7, 5  # no padding: every sentence has these lengths
    src = torch.randint(4, VOCAB, (batch, src_len))
    tgt_in = torch.randint(4, VOCAB, (batch, tgt_len))
    # The math kernel of attention is plain matrix products, which the counter sees (fused kernels it may not).
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model(src, tgt_in)
    expected = forward_flops(config, VOCAB, np.full(batch, src_len), np.full(batch, tgt_len))
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-9)


def test_peaks_are_found_by_device_name_and_precision():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16")[0] == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bf16")[0] == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp32")[0] == 156e12
    assert peak_flops("NVIDIA H200", "fp16")[1] == "H200 fp16 989 TFLOP/s dense"
    assert peak_flops("cpu", "fp32") is None and peak_flops("Tesla V100-SXM2-16GB", "bf16") is None
