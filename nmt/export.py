"""`python -m nmt.export checkpoint=PATH output=DIR [quantization=int8] [package=argos]`: a Transformer
checkpoint as a CTranslate2 model directory that translate and serve take like a checkpoint
(nmt.backends.ct2_export), or as an Argos Translate package in DIR (nmt.backends.argos_package)."""

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.backends.argos_package import write_argos_package
from nmt.backends.ct2_export import export_checkpoint, run_languages
from nmt.choices import Package
from nmt.cli import run_stage
from nmt.config import ExportConfig
from nmt.io import setup_logging

log = logging.getLogger("nmt.export")


def export(cfg: DictConfig) -> None:
    setup_logging()
    config: ExportConfig = OmegaConf.to_object(cfg)
    checkpoint = Path(config.checkpoint)
    run_src, run_tgt = run_languages(checkpoint)
    languages = (config.src_lang or run_src, config.tgt_lang or run_tgt)
    if config.package is Package.argos:
        path = write_argos_package(checkpoint, config.output, languages, (config.src_name, config.tgt_name),
                                   config.package_version, config.quantization, config.overwrite,
                                   config.alignment_layer)
        log.info("packaged %s for Argos Translate as %s (%s)", checkpoint, path, config.quantization.value)
        return
    directory = export_checkpoint(checkpoint, config.output, config.quantization, config.overwrite, languages,
                                  config.alignment_layer)
    log.info("exported %s to %s (%s)", checkpoint, directory, config.quantization.value)


def main() -> None:
    run_stage("export", export)


if __name__ == "__main__":
    main()
