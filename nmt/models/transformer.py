"""Encoder-decoder Transformer (Vaswani et al. 2017) with tied embeddings and cached decoding.

Attention is torch's scaled_dot_product_attention, so GPUs use the flash and
memory-efficient kernels. Pre-norm (LayerNorm before each sublayer) or the paper's post-norm.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.vocab import PAD_ID
from nmt.models.interface import DecoderState, Step


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...): (length, d_model)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(position * inv_freq)
    pe[:, 1::2] = torch.cos(position * inv_freq)
    return pe


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W^Q_i, K W^K_i, V W^V_i)."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.d_head, self.dropout = heads, d_model // heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d_head).transpose(1, 2)  # (batch, heads, len, d_head)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_proj(memory).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def queries(self, x: torch.Tensor, memory_rows: int) -> torch.Tensor:
        """Queries grouped by the keys' batch row: x may hold several rows (beams) per memory row,
        which then attend as extra query positions. (memory_rows, heads, rows_each * len, d_head)."""
        q = self.split_heads(self.q_proj(x))  # (rows, heads, len, d_head)
        rows, heads, length, d_head = q.shape
        if rows == memory_rows:
            return q
        group = rows // memory_rows
        return q.view(memory_rows, group, heads, length, d_head).transpose(1, 2).reshape(
            memory_rows, heads, group * length, d_head)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
               causal: bool = False) -> torch.Tensor:
        rows, length = x.shape[:2]
        q = self.queries(x, k.size(0))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        b, heads, grouped, d_head = out.shape
        out = out.view(b, heads, rows // b, length, d_head).transpose(1, 2)  # (b, group, heads, len, d_head)
        return self.out_proj(out.transpose(2, 3).reshape(rows, length, heads * d_head))

    def weights(self, x: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention probabilities averaged over heads (rows, len, src_len), for inspection only."""
        rows, length = x.shape[:2]
        q = self.queries(x, k.size(0))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.d_head)
        probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).mean(1)  # (b, group * len, src)
        return probs.reshape(rows, length, -1)


class FeedForward(nn.Sequential):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2. As in the paper, dropout is applied to the sublayer's
    output only; the hidden activations (4x wider) are left alone, which also saves CPU time."""

    def __init__(self, d_model: int, ffn_dim: int):
        super().__init__(nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, d_model))


class Residual(nn.Module):
    """A sublayer's residual connection: x + Dropout(f(LN(x))) when pre-norm, LN(x + Dropout(f(x)))
    when post-norm (the paper's). `inner` is f's input, `outer` adds f's output back."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(d_model), nn.Dropout(dropout), pre_norm

    def inner(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) if self.pre_norm else x

    def outer(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        y = x + self.dropout(fx)
        return y if self.pre_norm else self.norm(y)


class EncoderLayer(nn.Module):
    def __init__(self, d_model, heads, ffn_dim, dropout, attention_dropout, pre_norm):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn_dim)
        self.attn_block, self.ffn_block = Residual(d_model, dropout, pre_norm), Residual(d_model, dropout, pre_norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.attn_block.inner(x)
        x = self.attn_block.outer(x, self.self_attn.attend(y, *self.self_attn.keys_values(y), mask=mask))
        return self.ffn_block.outer(x, self.ffn(self.ffn_block.inner(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model, heads, ffn_dim, dropout, attention_dropout, pre_norm):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn_dim)
        self.self_block = Residual(d_model, dropout, pre_norm)
        self.cross_block = Residual(d_model, dropout, pre_norm)
        self.ffn_block = Residual(d_model, dropout, pre_norm)

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                cache: tuple[torch.Tensor, torch.Tensor] | None = None, need_weights: bool = False):
        """x: (rows, len, d_model). memory: the encoder's cross-attention keys, values and mask.
        cache: this layer's self-attention keys and values of the earlier positions; None runs
        the full causal pass of teacher forcing.

        Returns the output, the self-attention keys and values including x's positions (the next
        step's cache), and the cross-attention weights averaged over heads when asked for.
        """
        memory_k, memory_v, memory_mask = memory
        y = self.self_block.inner(x)
        k, v = self.self_attn.keys_values(y)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (rows, heads, len, d_head)
        x = self.self_block.outer(x, self.self_attn.attend(y, k, v, causal=cache is None))
        y = self.cross_block.inner(x)
        weights = self.cross_attn.weights(y, memory_k, memory_mask) if need_weights else None
        x = self.cross_block.outer(x, self.cross_attn.attend(y, memory_k, memory_v, mask=memory_mask))
        x = self.ffn_block.outer(x, self.ffn(self.ffn_block.inner(x)))
        return x, (k, v), weights


class TransformerModel(nn.Module):
    def __init__(self, vocab_size: int, d_model: int = 512, encoder_layers: int = 6, decoder_layers: int = 6,
                 heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1, attention_dropout: float = 0.0,
                 pre_norm: bool = True, max_positions: int = 1024):
        super().__init__()
        self.d_model, self.max_positions = d_model, max_positions
        # One table for source, target and output: the vocabulary is joint (paper, sec. 3.4).
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
        nn.init.normal_(self.embed.weight, 0.0, d_model ** -0.5)
        self.register_buffer("positions", sinusoidal_positions(max_positions, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        args = (d_model, heads, ffn_dim, dropout, attention_dropout, pre_norm)
        self.encoder_layers = nn.ModuleList([EncoderLayer(*args) for _ in range(encoder_layers)])
        self.decoder_layers = nn.ModuleList([DecoderLayer(*args) for _ in range(decoder_layers)])
        # Pre-norm leaves the residual stream unnormalized; a last LayerNorm closes each stack.
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()

    def _embed(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = self.embed(tokens) * math.sqrt(self.d_model)
        return self.dropout(x + self.positions[offset:offset + tokens.size(1)])  # (batch, len, d_model)

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.decoder_norm(x), self.embed.weight)  # tied output projection

    def encode(self, src: torch.Tensor) -> DecoderState:
        src_mask = (src != PAD_ID)[:, None, None, :]  # (batch, 1, 1, src_len), True = attend
        x = self._embed(src)
        for layer in self.encoder_layers:
            x = layer(x, src_mask)
        memory = self.encoder_norm(x)  # (batch, src_len, d_model)
        encoded, decoder = {"mask": src_mask}, {}
        heads, d_head = self.decoder_layers[0].self_attn.heads, self.decoder_layers[0].self_attn.d_head
        for i, layer in enumerate(self.decoder_layers):
            # Cross-attention keys and values are computed once per sentence.
            encoded[f"k{i}"], encoded[f"v{i}"] = layer.cross_attn.keys_values(memory)
            decoder[f"k{i}"] = decoder[f"v{i}"] = memory.new_zeros(src.size(0), heads, 0, d_head)
        return DecoderState(encoded, decoder)

    @staticmethod
    def _memory(state: DecoderState, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        encoded = state.per_sentence
        return encoded[f"k{i}"], encoded[f"v{i}"], encoded["mask"]

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Teacher-forced logits (batch, tgt_len, vocab)."""
        state = self.encode(src)
        x = self._embed(tgt_in)
        for i, layer in enumerate(self.decoder_layers):
            x, _, _ = layer(x, self._memory(state, i))
        return self._output(x), None

    def decode_step(self, prev_tokens: torch.Tensor, state: DecoderState, attention_layer: int | None = None) -> Step:
        """Next-token log-probabilities (hypotheses, vocab), extending each layer's self-attention
        cache; with `attention_layer`, that decoder layer's cross-attention (negative counts from the top)."""
        cache = state.per_hypothesis
        x = self._embed(prev_tokens.unsqueeze(1), offset=cache["k0"].size(2))  # (hypotheses, 1, d_model)
        chosen = None if attention_layer is None else attention_layer % len(self.decoder_layers)
        new_cache, attention = {}, None
        for i, layer in enumerate(self.decoder_layers):
            x, (new_cache[f"k{i}"], new_cache[f"v{i}"]), weights = layer(
                x, self._memory(state, i), (cache[f"k{i}"], cache[f"v{i}"]), need_weights=i == chosen)
            if weights is not None:
                attention = weights.squeeze(1)  # (hypotheses, src_len)
        log_probs = F.log_softmax(self._output(x).squeeze(1).float(), dim=-1)
        return Step(log_probs, DecoderState(state.per_sentence, new_cache), attention)
