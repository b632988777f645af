"""A Transformer checkpoint as a CTranslate2 model directory, described with CTranslate2's own
model-spec API.

The directory holds CTranslate2's `model.bin`, `config.json` and vocabulary, plus our `spm.model`
and `nmt_export.json` (languages, model size, the checkpoint's step), so it translates by itself.
An Argos package's copy (nmt/backends/argos_package.py) is also made unable to produce PAD, BOS and UNK.
It is built beside its final path and renamed into place: a failed export leaves nothing half-written.
"""

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nmt.choices import Quantization
from nmt.config.model import TransformerConfig, plain_fields
from nmt.data.vocab import BOS_ID, EOS_ID, UNK_ID, Vocab
from nmt.errors import NmtError
from nmt.models.checkpoint import checkpoint_step, load_checkpoint, payload_config, vocab_bytes
from nmt.models.transformer import sinusoidal_positions

METADATA = "nmt_export.json"
VOCAB_FILE = "spm.model"
# CTranslate2's default max_input_length; its default max_decoding_length, 256, is less. A caller that does
# not cap lengths as we do (Argos Translate) then meets positions the model never trained on, not an error.
CT2_DEFAULT_POSITIONS = 1024
# A logit bias that gives a token probability 0 in float32 and float16 alike.
_NEVER = -1e4
# CTranslate2's name for each of our quantizations; "none" keeps the checkpoint's float32.
_CT2_TYPES = {Quantization.none: "float32", Quantization.int8: "int8", Quantization.int16: "int16",
              Quantization.float16: "float16"}


def _layer_norm(spec, state: dict, prefix: str) -> None:
    spec.gamma, spec.beta = state[f"{prefix}.weight"], state[f"{prefix}.bias"]


def _linear(spec, weight: torch.Tensor, bias: torch.Tensor) -> None:
    spec.weight, spec.bias = weight, bias


def _attention(spec, state: dict, prefix: str, norm: str, self_attention: bool) -> None:
    """Our q_proj and fused kv_proj ([k; v] rows) become CTranslate2's fused [q; k; v] for
    self-attention, or its separate query and fused key-value projections for cross-attention."""
    q = (state[f"{prefix}.q_proj.weight"], state[f"{prefix}.q_proj.bias"])
    kv = (state[f"{prefix}.kv_proj.weight"], state[f"{prefix}.kv_proj.bias"])
    projections = [(torch.cat([q[0], kv[0]]), torch.cat([q[1], kv[1]]))] if self_attention else [q, kv]
    projections.append((state[f"{prefix}.out_proj.weight"], state[f"{prefix}.out_proj.bias"]))
    for linear, (weight, bias) in zip(spec.linear, projections):
        _linear(linear, weight, bias)
    _layer_norm(spec.layer_norm, state, norm)


def _feed_forward(spec, state: dict, prefix: str, norm: str) -> None:
    _linear(spec.linear_0, state[f"{prefix}.0.weight"], state[f"{prefix}.0.bias"])
    _linear(spec.linear_1, state[f"{prefix}.2.weight"], state[f"{prefix}.2.bias"])
    _layer_norm(spec.layer_norm, state, norm)


def transformer_spec(state: dict[str, torch.Tensor], config: TransformerConfig, vocab: Vocab,
                     alignment_layer: int = -1, never_produced: Sequence[int] = ()):
    """Our TransformerModel's weights in a CTranslate2 TransformerSpec; its attention is decoder layer
    `alignment_layer`'s cross-attention averaged over all heads, as our models report it. The tokens
    `never_produced` get a logit bias that leaves them probability 0, for decoders that cannot be told to
    forbid them as ours do; CTranslate2 then renormalizes over the rest, as its disable_unk does."""
    from ctranslate2.specs import transformer_spec as ct2

    encoder = ct2.TransformerEncoderSpec(config.encoder_layers, config.heads, pre_norm=config.pre_norm)
    decoder = ct2.TransformerDecoderSpec(config.decoder_layers, config.heads, pre_norm=config.pre_norm,
                                         alignment_layer=alignment_layer, alignment_heads=config.heads)
    # Our positions interleave sin and cos; CTranslate2's built-in table does not, so it gets ours, as
    # long as CTranslate2's default limits ask for (the first max_positions rows are the model's own).
    positions = sinusoidal_positions(max(config.max_positions, CT2_DEFAULT_POSITIONS), config.d_model)
    # One table serves all three today; each slot is filled on its own (CTranslate2 stores shared
    # tensors once), so the spec stays right if the tables are ever separate.
    encoder.embeddings[0].weight = state["embed.weight"]
    decoder.embeddings.weight = state["embed.weight"]
    decoder.projection.weight = state["embed.weight"]
    if never_produced:
        bias = torch.zeros(len(vocab))
        bias[list(never_produced)] = _NEVER
        decoder.projection.bias = bias
    encoder.position_encodings.encodings = positions
    decoder.position_encodings.encodings = positions
    if config.pre_norm:  # post-norm ends each sublayer with a LayerNorm and has no final one
        _layer_norm(encoder.layer_norm, state, "encoder_norm")
        _layer_norm(decoder.layer_norm, state, "decoder_norm")
    for i, layer in enumerate(encoder.layer):
        p = f"encoder_layers.{i}"
        _attention(layer.self_attention, state, f"{p}.self_attn", f"{p}.self_attn_norm", self_attention=True)
        _feed_forward(layer.ffn, state, f"{p}.ffn", f"{p}.ffn_norm")
    for i, layer in enumerate(decoder.layer):
        p = f"decoder_layers.{i}"
        _attention(layer.self_attention, state, f"{p}.self_attn", f"{p}.self_attn_norm", self_attention=True)
        _attention(layer.attention, state, f"{p}.cross_attn", f"{p}.cross_attn_norm", self_attention=False)
        _feed_forward(layer.ffn, state, f"{p}.ffn", f"{p}.ffn_norm")
    spec = ct2.TransformerSpec(encoder, decoder)
    pieces = vocab.pieces(range(len(vocab)))
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    # Our special ids and conventions: the source ends with EOS, the decoder starts from BOS;
    # torch's LayerNorm epsilon.
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = pieces[UNK_ID], pieces[BOS_ID], pieces[EOS_ID]
    spec.config.decoder_start_token = pieces[BOS_ID]
    spec.config.add_source_eos = True
    spec.config.layer_norm_epsilon = 1e-5
    return spec


def run_languages(checkpoint: Path) -> tuple[str | None, str | None]:
    """The languages of the run a checkpoint came from (run/config.yaml beside checkpoints/), if known."""
    run_config = checkpoint.resolve().parent.parent / "config.yaml"
    data = OmegaConf.load(run_config).get("data", {}) if run_config.is_file() else {}
    return data.get("src_lang"), data.get("tgt_lang")


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise NmtError(f"output={output}: a file is in the way; choose a directory path")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise NmtError(f"output={output}: the directory is not empty; pass overwrite=true to replace it "
                       "or choose another output")


def _replace_directory(built: Path, output: Path) -> None:
    """Put the complete `built` at `output`; an old `output` goes only after the new one is in place."""
    old = output.with_name(f".{output.name}.old-{os.getpid()}")
    if output.exists():
        os.replace(output, old)
    os.replace(built, output)
    shutil.rmtree(old, ignore_errors=True)


def export_checkpoint(checkpoint: str | Path, output: str | Path, quantization: Quantization = Quantization.none,
                      overwrite: bool = False, languages: tuple[str | None, str | None] = (None, None),
                      alignment_layer: int = -1, never_produced: Sequence[int] = ()) -> Path:
    """Write a CTranslate2 directory for a Transformer checkpoint; returns the directory.
    never_produced: token ids the model is made unable to produce (see transformer_spec)."""
    checkpoint, output = Path(checkpoint), Path(output)
    _check_output(output, overwrite)
    payload = load_checkpoint(checkpoint)
    config = payload_config(payload)
    if not isinstance(config, TransformerConfig):
        raise NmtError(f"checkpoint {checkpoint}: a {payload['model_kind']} (GRU) model has no CTranslate2 "
                       "counterpart; translate it from its checkpoint with python -m nmt.translate "
                       "(decode.quantize=int8 is its fast CPU path)")
    if not -config.decoder_layers <= alignment_layer < config.decoder_layers:
        raise NmtError(f"alignment_layer={alignment_layer}: the model has {config.decoder_layers} decoder layers; "
                       f"choose one of {-config.decoder_layers}..{config.decoder_layers - 1}")
    vocab = Vocab(vocab_bytes(payload))
    spec = transformer_spec(payload["model"], config, vocab, alignment_layer, never_produced)
    spec.validate()
    spec.optimize(quantization=_CT2_TYPES[quantization])
    output.parent.mkdir(parents=True, exist_ok=True)
    built = output.with_name(f".{output.name}.export-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    try:
        built.mkdir()
        spec.save(str(built))
        (built / VOCAB_FILE).write_bytes(vocab.proto)
        metadata = {"source_checkpoint": str(checkpoint), "step": checkpoint_step(payload),
                    "src_lang": languages[0], "tgt_lang": languages[1], "quantization": quantization.value,
                    "model_kind": payload["model_kind"], "alignment_layer": alignment_layer,
                    "never_produced": list(never_produced),
                    "model_config": plain_fields(config),
                    "parameters": sum(t.numel() for t in payload["model"].values()), "vocab_size": len(vocab)}
        (built / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        _replace_directory(built, output)
    finally:
        shutil.rmtree(built, ignore_errors=True)
    return output


