"""`python -m nmt.train [experiment=NAME] ...`: prepare the data if needed, train, and keep the run
in one directory. Also the entry point under torchrun: `torchrun --nproc_per_node=N -m nmt.train ...`."""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage
from nmt.config import TrainConfig
from nmt.training.run import run_training


def train(cfg: DictConfig) -> None:
    config: TrainConfig = OmegaConf.to_object(cfg)
    # Under a multirun sweep each job has its own output directory; that is the run directory.
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path(config.run_dir)
    summary = run_training(config, run_dir)
    if summary is not None:  # rank 0
        print(summary)


def main() -> None:
    run_stage("train", train)


if __name__ == "__main__":
    main()
