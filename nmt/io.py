"""File helpers: atomic writes (a reader sees the old file or the new one, never half of either)
and reading text line by line exactly as the input has it."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def decode_lines(data: bytes) -> tuple[list[str], list[int]]:
    """UTF-8 lines split on \\n only (so the count matches `wc -l` plus an unterminated last line),
    a trailing \\r dropped; lines that are not UTF-8 come back empty, their 1-based numbers listed."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines, bad = [], []
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
            lines.append("")
    return lines, bad
