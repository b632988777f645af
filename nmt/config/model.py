"""The two models' sizes. A model constructor takes these fields as arguments (never the config
tree); a checkpoint stores them as plain values, since a weights-only load reads no Enum."""

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, TypeVar

from omegaconf import MISSING

from nmt.choices import LinearInit, OutputLayer
from nmt.config.checks import require


@dataclass
class ModelConfig:
    # The model's name: the config file it came from, used for run names.
    name: str = MISSING
    # Each type also has max_positions, the longest source or output in tokens, EOS included.


@dataclass
class GRUConfig(ModelConfig):
    # A recurrent model has no position table; this only bounds input and output lengths.
    max_positions: ClassVar[int] = 1024
    embed_dim: int = 256
    hidden_dim: int = 256
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.2
    # linear: y_t = softmax(W_o [c_t; s_t] + b_o); deep: a tanh layer over [c_t; s_t; E y_{t-1}]
    # down to embed_dim first, which also makes tying the output to the target embeddings possible.
    output_layer: OutputLayer = OutputLayer.linear
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        require(not self.tie_embeddings or self.output_layer is OutputLayer.deep, "model.tie_embeddings",
                "needs model.output_layer=deep (the linear output layer's input is not embed_dim wide)")


@dataclass
class TransformerConfig(ModelConfig):
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    # Pre-norm trains stably without a long warmup; post-norm is the paper's layout.
    pre_norm: bool = True
    linear_init: LinearInit = LinearInit.torch
    max_positions: int = 1024  # rows of the sinusoidal position table

    def __post_init__(self) -> None:
        require(self.d_model % self.heads == 0, "model.heads", f"must divide model.d_model={self.d_model}")
        require(self.max_positions >= 2, "model.max_positions", "must be at least 2 (one token and the EOS)")


C = TypeVar("C", bound=ModelConfig)


def model_arguments(config: ModelConfig) -> dict[str, Any]:
    """The constructor arguments of the model a config describes: every field but its name."""
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name != "name"}


def plain_fields(config: ModelConfig) -> dict[str, Any]:
    """model_arguments as a checkpoint stores them: Enums as their strings."""
    return {k: v.value if isinstance(v, Enum) else v for k, v in model_arguments(config).items()}


def from_plain_fields(config_type: type[C], values: dict[str, Any]) -> C:
    """The inverse of plain_fields: strings become the Enum members the fields declare."""
    enums = {f.name: f.type for f in fields(config_type) if isinstance(f.type, type) and issubclass(f.type, Enum)}
    return config_type(**{k: enums[k](v) if k in enums else v for k, v in values.items()})
