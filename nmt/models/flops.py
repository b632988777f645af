"""Model FLOPs utilisation (MFU): the matrix-product FLOPs a training step of each model needs,
counted from its sizes, and the peak dense FLOP/s of known accelerators per precision.

MFU = (FLOPs per step) / (step seconds x peak). Only matrix products count (element-wise work,
softmax and norms are a few percent), and a training step is 3x the forward pass: the backward
computes gradients with respect to both activations and weights, each as large as the forward.
"""

import numpy as np

from nmt.choices import OutputLayer
from nmt.config.model import GRUConfig, ModelConfig, TransformerConfig

TRAIN_FACTOR = 3

# Dense (not 2:4 sparse) tensor-core peaks in TFLOP/s from the vendors' data sheets: bf16 and fp16
# are equal; fp32 means TF32 tensor cores, which PyTorch uses for fp32 matmuls when allowed.
# Keyed by a substring of torch.cuda.get_device_name(); the first match wins, so longer names first.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "fp32": 378.0},
    "H100": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0},  # SXM
    "H200": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0},
    "H800": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0},
    "GH200": {"bf16": 989.0, "fp16": 989.0, "fp32": 494.0},
    "B200": {"bf16": 2250.0, "fp16": 2250.0, "fp32": 1100.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0},
    "A800": {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0},
    "L40S": {"bf16": 362.0, "fp16": 362.0, "fp32": 183.0},
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 60.0},
    "V100": {"fp16": 125.0, "fp32": 15.7},
    "T4": {"fp16": 65.0, "fp32": 8.1},
}


def peak_flops(device_name: str, precision: str) -> tuple[float, str] | None:
    """Peak FLOP/s of the device for this precision and the table entry it came from; None if unknown."""
    for key, peaks in PEAK_TFLOPS.items():
        if key in device_name and precision in peaks:
            return peaks[precision] * 1e12, f"{key} {precision} {peaks[precision]:g} TFLOP/s dense"
    return None


def forward_flops(config: ModelConfig, vocab_size: int, src_lengths: np.ndarray, tgt_lengths: np.ndarray) -> float:
    """Matrix-product FLOPs of one teacher-forced forward pass over sentences of these token
    lengths (source with EOS, target with BOS); 2 FLOPs per multiply-add."""
    s = np.asarray(src_lengths, np.float64)
    t = np.asarray(tgt_lengths, np.float64)
    if isinstance(config, TransformerConfig):
        return _transformer(config, vocab_size, s, t)
    if isinstance(config, GRUConfig):
        return _gru(config, vocab_size, s, t)
    raise TypeError(f"no FLOP count for {type(config).__name__}")


def _transformer(c: TransformerConfig, vocab: int, s: np.ndarray, t: np.ndarray) -> float:
    d, f = c.d_model, c.ffn_dim
    # Per layer: Q, K, V and output projections 4 * 2d^2 per token; QK^T and AV 2 * 2 * keys * d
    # per query; the FFN's two layers 2 * 2df per token.
    encoder = c.encoder_layers * (s * (8 * d * d + 4 * d * f) + 4 * s * s * d).sum()
    self_attention = t * 8 * d * d + 4 * t * t * d
    # Cross-attention: Q and output on the target, K and V on the source, then QK^T and AV.
    cross_attention = t * 4 * d * d + s * 4 * d * d + 4 * t * s * d
    decoder = c.decoder_layers * (self_attention + cross_attention + t * 4 * d * f).sum()
    return float(encoder + decoder + 2 * d * vocab * t.sum())


def _gru(c: GRUConfig, vocab: int, s: np.ndarray, t: np.ndarray) -> float:
    e, h = c.embed_dim, c.hidden_dim
    # A GRU layer: three gates, each an input and a recurrent product: 6h(in + h) per token.
    gru = lambda inp: 6 * h * (inp + h)  # noqa: E731
    encoder = 2 * (gru(e) + (c.encoder_layers - 1) * gru(2 * h)) * s.sum()  # two directions
    init_state = 2 * 2 * h * c.decoder_layers * h * len(s)
    keys = 2 * 2 * h * h * s.sum()  # W_h h_i once per source token
    cells = (gru(e + 2 * h) + (c.decoder_layers - 1) * gru(h)) * t.sum()
    # Per target step: W_s s_t, then v^T over every source position, then the context Σ α_ti h_i.
    attention = 2 * h * h * t.sum() + (2 * h + 4 * h) * (t * s).sum()
    if c.output_layer is OutputLayer.deep:
        output = (2 * (3 * h + e) * e + 2 * e * vocab) * t.sum()
    else:
        output = 2 * 3 * h * vocab * t.sum()
    return float(encoder + init_state + keys + cells + attention + output)
