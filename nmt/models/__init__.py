"""The two translation models, the one registry that names them, and the function that builds one.

Both offer the `EncoderDecoder` interface of `interface.py`: encode once, step the decoder,
reorder the state by its rows; and a teacher-forced forward pass for training.
"""

from dataclasses import dataclass

from torch import nn

from nmt.config.model import GRUConfig, ModelConfig, TransformerConfig, from_plain_fields, model_arguments
from nmt.errors import NmtError
from nmt.models.gru_attention import GRUAttentionModel
from nmt.models.interface import EncoderDecoder
from nmt.models.transformer import TransformerModel


@dataclass(frozen=True)
class ModelType:
    model_class: type[nn.Module]
    config_type: type[ModelConfig]


# The kind names are stored in checkpoints: never rename one.
MODEL_TYPES = {
    "gru_attention": ModelType(GRUAttentionModel, GRUConfig),
    "transformer": ModelType(TransformerModel, TransformerConfig),
}


def model_kind(config: ModelConfig) -> str:
    return next(kind for kind, t in MODEL_TYPES.items() if isinstance(config, t.config_type))


def build_model(config: ModelConfig, vocab_size: int) -> EncoderDecoder:
    return MODEL_TYPES[model_kind(config)].model_class(vocab_size, **model_arguments(config))


def config_from(kind: str, values: dict) -> ModelConfig:
    """The model config stored in a checkpoint (its kind and plain field values)."""
    if kind not in MODEL_TYPES:
        raise NmtError(f"model type {kind!r} is unknown to this version (known: {', '.join(MODEL_TYPES)})")
    return from_plain_fields(MODEL_TYPES[kind].config_type, values)
