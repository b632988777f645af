"""Encoder-decoder Transformer (Vaswani et al. 2017) with tied embeddings and cached decoding.

Each layer is written as its equations, in pre-norm (LayerNorm before each sublayer) or the
paper's post-norm. Attention is torch's scaled_dot_product_attention, so GPUs use the flash and
memory-efficient kernels. Decoding computes the encoder's keys and values once per sentence and
shares them across the sentence's beams (CrossAttention); each step appends one position to the
self-attention caches.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from nmt.choices import LinearInit
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
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O, head_i = Attention(Q W^Q_i, K W^K_i, V W^V_i),
    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V (Vaswani et al. 2017, sec. 3.2). W^K and W^V
    are one fused projection, so keys and values come from one matrix product."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.d_head, self.dropout = heads, d_model // heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d_head).transpose(1, 2)  # (batch, heads, len, d_head)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_proj(x).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)  # (batch, heads, len, d_head) each

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                   causal: bool = False) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              dropout_p=self.dropout if self.training else 0.0)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        """x: (rows, len, d_model) gives the queries; k, v: (rows, heads, keys, d_head)."""
        out = self._attention(self.split_heads(self.q_proj(x)), k, v, mask, causal)  # (rows, heads, len, d_head)
        rows, heads, length, d_head = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(rows, length, heads * d_head))


class CrossAttention(MultiHeadAttention):
    """The decoder's attention over the encoder output, whose keys and values TransformerModel.encode
    computes once per sentence.

    In beam search a sentence has several decoder rows (its beams) but still one row of keys and
    values. Here, and only here, the queries of a sentence's beams are stacked as extra query
    positions of that one row, so the encoder output is never copied per beam.
    """

    def _grouped_queries(self, x: torch.Tensor, sentences: int) -> torch.Tensor:
        """(sentences, heads, beams * len, d_head) from x: (sentences * beams, len, d_model)."""
        q = self.split_heads(self.q_proj(x))  # (rows, heads, len, d_head)
        rows, heads, length, d_head = q.shape
        if rows == sentences:
            return q
        beams = rows // sentences
        return q.view(sentences, beams, heads, length, d_head).transpose(1, 2).reshape(
            sentences, heads, beams * length, d_head)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        rows, length = x.shape[:2]
        sentences = k.size(0)
        out = self._attention(self._grouped_queries(x, sentences), k, v, mask)  # (sentences, heads, beams*len, d_head)
        heads, d_head = out.size(1), out.size(3)
        out = out.view(sentences, heads, rows // sentences, length, d_head).permute(0, 2, 3, 1, 4)
        return self.out_proj(out.reshape(rows, length, heads * d_head))

    def weights(self, x: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention probabilities averaged over heads (rows, len, src_len), for inspection only."""
        rows, length = x.shape[:2]
        q = self._grouped_queries(x, k.size(0))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.d_head)
        probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).mean(1)  # (b, beams * len, src)
        return probs.reshape(rows, length, -1)


class FeedForward(nn.Sequential):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2. As in the paper, dropout is applied to the sublayer's
    output only; the hidden activations (4x wider) are left alone, which also saves CPU time."""

    def __init__(self, d_model: int, ffn_dim: int):
        super().__init__(nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, d_model))


class EncoderLayer(nn.Module):
    """Pre-norm:  x = x + Dropout(SelfAttn(LN(x))),  then x = x + Dropout(FFN(LN(x))).
    Post-norm (the paper's): x = LN(x + Dropout(SelfAttn(x))),  then x = LN(x + Dropout(FFN(x)))."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float,
                 pre_norm: bool):
        super().__init__()
        self.pre_norm = pre_norm
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn_dim)
        self.self_attn_norm, self.ffn_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _self_attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.self_attn(x, *self.self_attn.keys_values(x), mask=mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (batch, src_len, d_model); mask: (batch, 1, 1, src_len), True where a token is."""
        if self.pre_norm:
            x = x + self.dropout(self._self_attention(self.self_attn_norm(x), mask))
            return x + self.dropout(self.ffn(self.ffn_norm(x)))
        x = self.self_attn_norm(x + self.dropout(self._self_attention(x, mask)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


KeysValues = tuple[torch.Tensor, torch.Tensor]


class DecoderLayer(nn.Module):
    """Pre-norm:  x = x + Dropout(SelfAttn(LN(x))),  x = x + Dropout(CrossAttn(LN(x), memory)),
              x = x + Dropout(FFN(LN(x))).
    Post-norm: the same three sublayers, each as x = LN(x + Dropout(Sublayer(x)))."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float, attention_dropout: float,
                 pre_norm: bool):
        super().__init__()
        self.pre_norm = pre_norm
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.cross_attn = CrossAttention(d_model, heads, attention_dropout)
        self.ffn = FeedForward(d_model, ffn_dim)
        self.self_attn_norm, self.cross_attn_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _self_attention(self, x: torch.Tensor, cache: KeysValues | None) -> tuple[torch.Tensor, KeysValues]:
        """Masked self-attention and its keys and values so far. `cache` holds those of the earlier
        positions (one new position per decoding step); None is teacher forcing, every position at
        once under a causal mask."""
        k, v = self.self_attn.keys_values(x)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (rows, heads, len, d_head)
        return self.self_attn(x, k, v, causal=cache is None), (k, v)

    def forward(self, x: torch.Tensor, memory: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                cache: KeysValues | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, KeysValues, torch.Tensor | None]:
        """x: (rows, len, d_model). memory: the encoder's cross-attention keys, values and mask.

        Returns the output, the self-attention keys and values including x's positions (the next
        step's cache), and the cross-attention weights averaged over heads when asked for.
        """
        memory_k, memory_v, memory_mask = memory
        if self.pre_norm:
            attended, cache = self._self_attention(self.self_attn_norm(x), cache)
            x = x + self.dropout(attended)
            query = self.cross_attn_norm(x)
            x = x + self.dropout(self.cross_attn(query, memory_k, memory_v, memory_mask))
            x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        else:
            attended, cache = self._self_attention(x, cache)
            x = query = self.self_attn_norm(x + self.dropout(attended))
            x = self.cross_attn_norm(x + self.dropout(self.cross_attn(query, memory_k, memory_v, memory_mask)))
            x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        weights = self.cross_attn.weights(query, memory_k, memory_mask) if need_weights else None
        return x, cache, weights


class TransformerModel(nn.Module):
    def __init__(self, vocab_size: int, d_model: int = 512, encoder_layers: int = 6, decoder_layers: int = 6,
                 heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1, attention_dropout: float = 0.0,
                 pre_norm: bool = True, linear_init: LinearInit = LinearInit.torch, max_positions: int = 1024):
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
        if linear_init is LinearInit.xavier:
            self._init_xavier()

    def _init_xavier(self) -> None:
        """fairseq's initialization: Xavier uniform, biases zero. The query, key and value
        projections take gain 1/sqrt(2), each as its own d_model x d_model matrix (W^K and W^V are
        fused here), so their fan-out is d_model, not 2 d_model."""
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                for matrix in (module.q_proj.weight, *module.kv_proj.weight.data.chunk(2)):
                    nn.init.xavier_uniform_(matrix, gain=2 ** -0.5)
                nn.init.xavier_uniform_(module.out_proj.weight)
            elif isinstance(module, FeedForward):
                for layer in (module[0], module[2]):
                    nn.init.xavier_uniform_(layer.weight)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

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
