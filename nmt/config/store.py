"""The schemas Hydra checks the YAML files and overrides against."""

from hydra.core.config_store import ConfigStore

from nmt.config.model import GRUConfig, TransformerConfig
from nmt.config.stages import EvaluateConfig, ExportConfig, PrepareConfig, ScoreConfig, ServeConfig, TranslateConfig
from nmt.config.training import TrainConfig


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="translate_schema", node=TranslateConfig)
    cs.store(name="score_schema", node=ScoreConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(group="model", name="gru_schema", node=GRUConfig)
    cs.store(group="model", name="transformer_schema", node=TransformerConfig)
