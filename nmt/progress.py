"""Progress bars on stderr that stay quiet when stderr is not a terminal (logs, CI)."""

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, disable: bool = False, **kwargs) -> tqdm:
    return tqdm(iterable, file=sys.stderr, disable=disable or not sys.stderr.isatty(), dynamic_ncols=True, **kwargs)
