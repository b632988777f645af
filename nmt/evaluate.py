"""`python -m nmt.evaluate hyp=PATH ref=PATH report_dir=DIR`: sacreBLEU scores of text files,
written as DIR/report.md and DIR/report.json (plus PNG charts when matplotlib is installed).

Several systems (`hyp=[base.txt,new.txt]`) are compared against the first with paired
significance tests; several references (`ref=[r1,r2]`) score each segment against all.
`test=NAME` takes references and sources from a standard test set through sacreBLEU (or from a
local copy, `test_root=DIR`). It loads no model.
"""

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage
from nmt.config import EvaluateConfig
from nmt.evaluation.report import build_report, eval_set_files, paths, render_markdown, write_plots
from nmt.io import atomic_write_text, setup_logging


def evaluate(cfg: DictConfig) -> None:
    setup_logging()
    config: EvaluateConfig = OmegaConf.to_object(cfg)
    refs, src = paths(config.ref), config.src
    if config.test.sacrebleu and not refs:
        refs, test_src = eval_set_files(config.test, config.test_root)
        src = src or test_src
    report = build_report(paths(config.hyp), refs, src, config.bootstrap, config.randomization, config.worst)
    directory = Path(config.report_dir)
    write_plots(report, directory)
    atomic_write_text(directory / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(directory / "report.md", render_markdown(report))
    for s in report["systems"]:
        print(f"{s['name']}: BLEU {s['bleu']['score']:.1f}  chrF {s['chrf']['score']:.1f}  TER {s['ter']['score']:.1f}")
    print(report["bleu"]["signature"])
    print(directory / "report.json")


def main() -> None:
    run_stage("evaluate", evaluate)


if __name__ == "__main__":
    main()
