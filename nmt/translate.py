"""`python -m nmt.translate checkpoint=PATH [input=FILE] [output=FILE]`: one output line per input line.
PATH is a checkpoint or a directory written by `python -m nmt.export`."""

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage, setup_logging
from nmt.config import DecodeQuantize, InvalidLines, TranslateConfig
from nmt.errors import NmtError
from nmt.io import atomic_open, decode_lines
from nmt.progress import progress
from nmt.search import SearchSettings
from nmt.translator import load_translator

log = logging.getLogger("nmt.translate")


def read_lines(data: bytes, name: str, invalid_lines: InvalidLines = InvalidLines.error) -> list[str]:
    """Lines of UTF-8 text, split on \\n only so the count matches the input's.

    A line that is not UTF-8 is an error naming it, or (invalid_lines="empty") an empty line
    whose number is logged, so the output still has one line per input line.
    """
    lines, bad = decode_lines(data)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        if invalid_lines is InvalidLines.error:
            raise NmtError(f"{name}: not valid UTF-8 on line(s) {shown}; convert the file to UTF-8 "
                           "or pass invalid_lines=empty")
        log.warning("%s: line(s) %s are not valid UTF-8 and are translated as empty lines", name, shown)
    return lines


def format_hypotheses(hyps, vocab, nbest: int) -> str:
    if nbest <= 1:
        return vocab.decode(hyps[0].tokens)
    # k tab-separated "translation<TAB>score" pairs keep one line per input.
    return "\t".join(f"{vocab.decode(h.tokens)}\t{h.score:.4f}" for h in hyps)


def translate(cfg: DictConfig) -> None:
    setup_logging()
    config: TranslateConfig = OmegaConf.to_object(cfg)
    settings = SearchSettings.from_decode(config.decode)
    if config.input is not None:
        path = Path(config.input)
        if not path.is_file():
            raise NmtError(f"input={config.input}: no such file")
        lines = read_lines(path.read_bytes(), str(path), config.invalid_lines)
    else:
        lines = read_lines(sys.stdin.buffer.read(), "stdin", config.invalid_lines)
    d = config.decode
    translator = load_translator(config.checkpoint, config.device, quantize=d.quantize is DecodeQuantize.int8)
    with progress(total=len(lines), desc="translate", unit="sent", disable=config.input is None) as bar:
        hyps = translator.translate_hypotheses(
            lines, settings, d.max_tokens, d.precision,
            attention_layer=config.attention_layer if config.attention_dir is not None else None, on_batch=bar.update)
    if config.attention_dir is not None:
        from nmt.plots import write_attention_maps
        write_attention_maps(Path(config.attention_dir), lines, hyps, translator, config.attention_count)
    outputs = (format_hypotheses(h, translator.vocab, d.nbest) + "\n" for h in hyps)
    if config.output is None:
        sys.stdout.writelines(outputs)
        sys.stdout.flush()
    else:
        with atomic_open(config.output, "w") as f:
            f.writelines(outputs)


def main() -> None:
    run_stage("translate", translate)


if __name__ == "__main__":
    main()
