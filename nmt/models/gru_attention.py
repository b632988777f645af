"""GRU encoder-decoder with additive attention: Bahdanau, Cho & Bengio (2015)'s encoder and
attention score, in the decoder order this project was designed with.

Encoder: a bidirectional GRU gives h_i = [→h_i; ←h_i]; s_0 = tanh(W_init [→h_n; ←h_1]). Decoder, at each
target step t:
    s_t   = GRU([E y_{t-1}; c_{t-1}], s_{t-1})          the previous embedding and context are fed back
    e_ti  = v^T tanh(W_h h_i + W_s s_t + b)             W_h h_i is computed once per sentence
    α_ti  = softmax_i(e_ti), padding positions masked out
    c_t   = Σ_i α_ti h_i
    y_t   = softmax(W_o [c_t; s_t] + b_o)               or a deep output layer (output_layer=deep):
            softmax(W_o tanh(W_d [c_t; s_t; E y_{t-1}] + b_d) + b_o)

Where this differs from Bahdanau et al.: their attention query is the previous state s_{t-1},
and c_t enters the recurrence that makes s_t = f(s_{t-1}, y_{t-1}, c_t). Here the query is s_t,
the state after the GRU has read y_{t-1} (and c_{t-1}), and c_t goes to the output layer beside
s_t: the order of Luong et al. (2015) with input feeding, with Bahdanau's additive score. Their
deep output is a maxout layer; ours is tanh.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.choices import OutputLayer
from nmt.config.model import GRUConfig
from nmt.data.vocab import PAD_ID
from nmt.models.interface import DecoderState, Step


class BahdanauAttention(nn.Module):
    """e_ti = v^T tanh(W_h h_i + W_s s_t + b); α_t = masked softmax; c_t = Σ α_ti h_i."""

    def __init__(self, key_dim: int, query_dim: int, attention_dim: int):
        super().__init__()
        self.W_h = nn.Linear(key_dim, attention_dim, bias=True)  # its bias is the b of the equation
        self.W_s = nn.Linear(query_dim, attention_dim, bias=False)
        self.v = nn.Linear(attention_dim, 1, bias=False)

    def project_keys(self, h: torch.Tensor) -> torch.Tensor:
        return self.W_h(h)  # (batch, src_len, attention_dim), once per sentence

    def forward(self, keys: torch.Tensor, h: torch.Tensor, src_mask: torch.Tensor,
                s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s may hold several rows per sentence (the beams of beam search): (batch * beams, hidden)."""
        batch = keys.size(0)
        beams = s.size(0) // batch
        query = self.W_s(s).view(batch, beams, 1, -1)  # (batch, beams, 1, attention_dim)
        e = self.v(torch.tanh(keys.unsqueeze(1) + query)).squeeze(3)  # (batch, beams, src_len)
        e = e.masked_fill(~src_mask.unsqueeze(1), float("-inf"))
        alpha = torch.softmax(e, dim=2)
        c = torch.bmm(alpha, h)  # (batch, beams, 2*hidden)
        return c.view(batch * beams, -1), alpha.view(batch * beams, -1)


class GRUAttentionModel(nn.Module):
    max_positions = GRUConfig.max_positions

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, encoder_layers: int = 1,
                 decoder_layers: int = 1, dropout: float = 0.0, output_layer: OutputLayer = OutputLayer.linear,
                 tie_embeddings: bool = False):
        """tie_embeddings needs output_layer=deep (GRUConfig checks it): only that layer's input is
        embed_dim wide."""
        super().__init__()
        deep = output_layer is OutputLayer.deep
        self.hidden_dim, self.decoder_layers = hidden_dim, decoder_layers
        self.src_embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.tgt_embed = self.src_embed if tie_embeddings else nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.encoder = nn.GRU(embed_dim, hidden_dim, encoder_layers, batch_first=True, bidirectional=True,
                              dropout=dropout if encoder_layers > 1 else 0.0)
        self.init_state = nn.Linear(2 * hidden_dim, decoder_layers * hidden_dim)
        self.cells = nn.ModuleList(
            [nn.GRUCell(embed_dim + 2 * hidden_dim if i == 0 else hidden_dim, hidden_dim) for i in range(decoder_layers)])
        self.attention = BahdanauAttention(2 * hidden_dim, hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        if deep:
            self.deep_output = nn.Linear(3 * hidden_dim + embed_dim, embed_dim)
            self.W_o = nn.Linear(embed_dim, vocab_size)
            if tie_embeddings:
                # One table serves as input and output: scale it so initial logits are O(1).
                nn.init.normal_(self.tgt_embed.weight, 0.0, embed_dim ** -0.5)
                self.W_o.weight = self.tgt_embed.weight
        else:
            self.deep_output = None
            self.W_o = nn.Linear(3 * hidden_dim, vocab_size)

    def encode(self, src: torch.Tensor) -> DecoderState:
        """Encode (batch, src_len) ids once; the returned state is all a decoding step needs."""
        src_mask = src != PAD_ID  # (batch, src_len)
        lengths = src_mask.sum(1)
        x = self.dropout(self.src_embed(src))  # (batch, src_len, embed)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_h, final = self.encoder(packed)
        h, _ = pad_packed_sequence(packed_h, batch_first=True, total_length=src.size(1))  # (batch, src_len, 2*hidden)
        last_forward, first_backward = final[-2], final[-1]  # (batch, hidden) each
        s0 = torch.tanh(self.init_state(torch.cat([last_forward, first_backward], dim=1)))
        encoded = {"h": h, "keys": self.attention.project_keys(h), "mask": src_mask}  # keys: (batch, src_len, hidden)
        decoder = {"s": s0.view(-1, self.decoder_layers, self.hidden_dim),  # (batch, layers, hidden)
                   "c": h.new_zeros(h.size(0), 2 * self.hidden_dim)}  # c_0
        return DecoderState(encoded, decoder)

    def _recur(self, y_emb: torch.Tensor, state: DecoderState) -> tuple[DecoderState, torch.Tensor, torch.Tensor]:
        """One decoder recurrence: new state, the [c_t; s_t] features and α_t."""
        encoded, previous = state.per_sentence, state.per_hypothesis
        x = torch.cat([y_emb, previous["c"]], dim=1)
        layers = []
        for i, cell in enumerate(self.cells):
            x = cell(x, previous["s"][:, i])
            layers.append(x)
            x = self.dropout(x) if i + 1 < len(self.cells) else x
        s_t = x  # (hypotheses, hidden), the top layer
        c_t, alpha = self.attention(encoded["keys"], encoded["h"], encoded["mask"], s_t)
        new_state = DecoderState(encoded, {"s": torch.stack(layers, dim=1), "c": c_t})
        return new_state, torch.cat([c_t, s_t], dim=1), alpha

    def _logits(self, features: torch.Tensor, y_emb: torch.Tensor) -> torch.Tensor:
        if self.deep_output is not None:
            features = torch.tanh(self.deep_output(torch.cat([features, y_emb], dim=-1)))
        return self.W_o(self.dropout(features))

    # Under torch.compile (trainer.compile=true) this frame runs in Python and the functions it calls are
    # compiled: traced whole, its time-step loop would unroll into one graph per target length, compiled
    # anew (minutes on a CPU) for every new length until dynamo's recompile limit sends the rest to eager.
    @torch.compiler.disable(recursive=False)
    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (batch, tgt_len, vocab) and attention (batch, tgt_len, src_len)."""
        state = self.encode(src)
        y_emb = self.dropout(self.tgt_embed(tgt_in))  # (batch, tgt_len, embed)
        features, alphas = [], []
        for t in range(tgt_in.size(1)):
            state, f, alpha = self._recur(y_emb[:, t], state)
            features.append(f)
            alphas.append(alpha)
        # The output layer is outside the recurrence, so it runs once over all steps.
        logits = self._logits(torch.stack(features, dim=1), y_emb)
        return logits, torch.stack(alphas, dim=1)

    def decode_step(self, prev_tokens: torch.Tensor, state: DecoderState, attention_layer: int | None = None) -> Step:
        """Next-token log-probabilities (hypotheses, vocab) after `prev_tokens` (hypotheses,); the
        attention, when asked for (any layer number), is α_t: there is one attention."""
        y_emb = self.tgt_embed(prev_tokens)
        state, features, alpha = self._recur(y_emb, state)
        log_probs = F.log_softmax(self._logits(features, y_emb).float(), dim=-1)
        return Step(log_probs, state, alpha if attention_layer is not None else None)
