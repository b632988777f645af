"""Typed configuration for every stage, registered with Hydra's ConfigStore.

The YAML files under `configs/` fill these dataclasses. A key that is not a field, a value of the
wrong type, or a combination no stage can run fails when the config is composed, with one line:
each dataclass checks its own fields in `__post_init__`, which OmegaConf.to_object calls.
"""

from nmt.config.data import DataConfig
from nmt.config.decode import DecodeConfig, SearchSettings
from nmt.config.model import GRUConfig, ModelConfig, TransformerConfig, from_plain_fields, plain_fields
from nmt.config.stages import (
    EvalSetConfig,
    EvaluateConfig,
    ExportConfig,
    PrepareConfig,
    ScoreConfig,
    ServeConfig,
    TranslateConfig,
)
from nmt.config.store import register_configs
from nmt.config.training import OptimConfig, TrainConfig, TrainerConfig

__all__ = ["DataConfig", "DecodeConfig", "SearchSettings", "GRUConfig", "ModelConfig", "TransformerConfig",
           "from_plain_fields", "plain_fields", "EvalSetConfig", "EvaluateConfig", "ExportConfig", "PrepareConfig",
           "ScoreConfig", "ServeConfig", "TranslateConfig", "register_configs", "OptimConfig", "TrainConfig",
           "TrainerConfig"]
