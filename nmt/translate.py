"""`python -m nmt.translate checkpoint=PATH [input=FILE] [output=FILE]`: one output line per input line."""

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nmt.cli import run_stage, setup_logging
from nmt.config import TranslateConfig
from nmt.errors import NmtError
from nmt.io import atomic_open
from nmt.progress import progress
from nmt.search import SearchSettings
from nmt.translator import Translator


def read_lines(data: bytes, name: str) -> list[str]:
    """Lines of UTF-8 text, split on \\n only so the count matches the input's."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines, bad = [], []
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise NmtError(f"{name}: not valid UTF-8 on line(s) {shown}; convert the file to UTF-8")
    return lines


def format_hypotheses(hyps, vocab, nbest: int) -> str:
    if nbest <= 1:
        return vocab.decode(hyps[0].tokens)
    # k tab-separated "translation<TAB>score" pairs keep one line per input.
    return "\t".join(f"{vocab.decode(h.tokens)}\t{h.score:.4f}" for h in hyps)


def translate(cfg: DictConfig) -> None:
    setup_logging()
    config: TranslateConfig = OmegaConf.to_object(cfg)
    if config.input is not None:
        path = Path(config.input)
        if not path.is_file():
            raise NmtError(f"input={config.input}: no such file")
        lines = read_lines(path.read_bytes(), str(path))
    else:
        lines = read_lines(sys.stdin.buffer.read(), "stdin")
    translator = Translator.from_checkpoint(config.checkpoint, config.device)
    d = config.decode
    settings = SearchSettings(d.beam_size, d.length_penalty, d.length_norm, d.max_len_a, d.max_len_b,
                              max(d.nbest, 1))
    if d.nbest > d.beam_size:
        raise NmtError(f"decode.nbest={d.nbest} exceeds decode.beam_size={d.beam_size}")
    with progress(total=len(lines), desc="translate", unit="sent", disable=config.input is None) as bar:
        hyps = translator.translate_hypotheses(lines, settings, d.max_tokens, d.precision,
                                               need_attention=config.attention_dir is not None,
                                               on_batch=bar.update)
    outputs = [format_hypotheses(h, translator.vocab, d.nbest) for h in hyps]
    if config.attention_dir is not None:
        from nmt.plots import write_attention_maps
        write_attention_maps(Path(config.attention_dir), lines, hyps, translator, config.attention_count)
    if config.output is None:
        sys.stdout.writelines(line + "\n" for line in outputs)
        sys.stdout.flush()
    else:
        with atomic_open(config.output, "w") as f:
            f.writelines(line + "\n" for line in outputs)


def main() -> None:
    run_stage("translate", translate)


if __name__ == "__main__":
    main()
