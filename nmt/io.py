"""Files and the terminal: atomic writes (a reader sees the old file or the new one, never half of
either) and whole-line appends, the one line reader (text exactly as the input has it, one line per line), progress bars
on stderr that stay quiet when stderr is not a terminal (logs, CI), and logging to stderr."""

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, TypeVar

from tqdm import tqdm

from nmt.choices import InvalidLines
from nmt.errors import NmtError

T = TypeVar("T")


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


def append_line(path: str | Path, line: str) -> None:
    """Append `line` and a newline to a log such as a JSONL file, whole or not at all: one write to a
    file opened for appending, cut back if the disk took only part of it, then fsync. Callers that
    append from several threads hold a lock around it."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
        except OSError:
            os.ftruncate(fd, size)
            raise
        if written != len(data):
            os.ftruncate(fd, size)
            raise OSError(f"{path}: only {written} of {len(data)} bytes could be written")
        os.fsync(fd)
    finally:
        os.close(fd)


def write_lines(lines: Iterable[str], output: str | Path | None) -> None:
    """Lines (each ending with its newline) to `output` atomically, or to stdout when it is None."""
    if output is None:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return
    with atomic_open(output, "w") as f:
        f.writelines(lines)


def _decode_line(raw: bytes) -> str | None:
    """One line without its \\n, a trailing \\r dropped; None when it is not UTF-8."""
    try:
        return raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        return None


def _raw_lines(data: bytes) -> list[bytes]:
    """Split on \\n only, so the count matches `wc -l` plus an unterminated last line."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    return raw


def read_lines(data: bytes, name: str, invalid_lines: InvalidLines = InvalidLines.error,
               fix: str = "convert the file to UTF-8") -> tuple[list[str], list[int]]:
    """The UTF-8 lines of a whole file or stream, and the 1-based numbers of those that are not UTF-8.

    Such a line is an error naming it and saying `fix` (InvalidLines.error), or comes back empty
    (InvalidLines.empty), so that the output can still have one line per input line.
    """
    lines, bad = [], []
    for number, raw in enumerate(_raw_lines(data), start=1):
        line = _decode_line(raw)
        if line is None:
            bad.append(number)
        lines.append(line or "")
    if bad and invalid_lines is InvalidLines.error:
        raise NmtError(f"{name}: not valid UTF-8 on line(s) {line_numbers(bad)}; {fix}")
    return lines, bad


def line_numbers(numbers: list[int], shown: int = 10) -> str:
    """Line numbers for a message: the first `shown`, then an ellipsis."""
    return ", ".join(map(str, numbers[:shown])) + (" ..." if len(numbers) > shown else "")


def stream_lines(path: Path) -> Iterator[str]:
    """The lines of a file as a stream, for corpora too large to read whole; not UTF-8 is an error."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = _decode_line(raw)
            if line is None:
                raise NmtError(f"{path}:{number}: not valid UTF-8; convert the file to UTF-8")
            yield line


def progress(iterable: Iterable[T] | None = None, disable: bool = False, **kwargs) -> tqdm:
    return tqdm(iterable, file=sys.stderr, disable=disable or not sys.stderr.isatty(), dynamic_ncols=True, **kwargs)


def setup_logging(log_file: Path | None = None) -> None:
    """Log to stderr (and a file when given); stdout stays free for translations."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s",
                        datefmt="%H:%M:%S", handlers=handlers, force=True)
