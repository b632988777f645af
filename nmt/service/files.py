"""Translated files waiting for their download (LibreTranslate's POST /translate_file, then GET of the
URL it answers): kept in a private temporary directory under random names, handed out once, and
removed after that download or after their lifetime, whichever comes first.

A client's file name is cleaned and only ever echoed, in the download URL and the name the download
is saved under; a file's path is the directory and a random token, nothing else.
"""

import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def download_name(filename: str, extension: str) -> str:
    """A file name fit to echo: the client's base name in letters, digits, dots, dashes and
    underscores, at most 100 characters, ending with `extension`."""
    base = re.split(r"[/\\]", filename)[-1]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", base[:len(base) - len(extension)]).lstrip(".")
    return (stem or "file")[:100 - len(extension)] + extension


@dataclass(frozen=True)
class _Stored:
    path: Path
    name: str
    expires: float


class FileStore:
    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic):
        self.lifetime_s, self.clock = lifetime_s, clock
        self.directory = Path(tempfile.mkdtemp(prefix="nmt-translated-"))  # readable by this user alone
        self._stored: dict[str, _Stored] = {}

    def put(self, data: bytes, name: str) -> str:
        """Keep `data` for one download; its id, `<token>.<name>`, for the URL."""
        self.sweep()
        token = secrets.token_urlsafe(24)
        path = self.directory / token
        path.write_bytes(data)
        self._stored[token] = _Stored(path, name, self.clock() + self.lifetime_s)
        return f"{token}.{name}"

    def take(self, file_id: str) -> tuple[bytes, str] | None:
        """The file and the name to save it under, removed from the store; None for an unknown, taken or
        expired id."""
        self.sweep()
        token, _, name = file_id.partition(".")
        stored = self._stored.get(token)
        if stored is None or stored.name != name:
            return None
        del self._stored[token]
        data = stored.path.read_bytes()
        stored.path.unlink(missing_ok=True)
        return data, stored.name

    def sweep(self) -> None:
        """Remove the files whose lifetime is over."""
        now = self.clock()
        for token in [token for token, stored in self._stored.items() if stored.expires <= now]:
            self._stored.pop(token).path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self._stored.clear()
