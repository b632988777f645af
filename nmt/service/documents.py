"""The files POST /translate_file takes, each as the sentences to translate and the file rebuilt
around their translations: plain text line by line, HTML sentence by sentence with its markup placed
by the attention (nmt.service.markup), SubRip subtitles one subtitle at a time."""

import re
from dataclasses import dataclass
from typing import Protocol

from nmt.decoding.alignment import AlignedUnit
from nmt.service import markup
from nmt.service.requests import ApiError


class Document(Protocol):
    sentences: list[str]  # what to translate, in order
    aligned: bool  # whether render needs each translation cut into aligned units, or only its text

    def render(self, translations: list[list[AlignedUnit]]) -> str:
        """The file with translations[i] in place of sentences[i]."""


def _joined(units: list[AlignedUnit]) -> str:
    return "".join(unit.text for unit in units)


class TextDocument:
    """One translated line per line, empty lines in place (and not decoded)."""

    aligned = False

    def __init__(self, text: str):
        self.sentences = [line.removesuffix("\r") for line in text.split("\n")]
        self.newline = "\r\n" if "\r\n" in text else "\n"

    def render(self, translations: list[list[AlignedUnit]]) -> str:
        return self.newline.join(map(_joined, translations))


class HtmlDocument:
    aligned = True

    def __init__(self, text: str):
        self.document = markup.Document(text)
        self.sentences = [sentence.text for sentence in self.document.sentences]

    def render(self, translations: list[list[AlignedUnit]]) -> str:
        return self.document.render(translations)


@dataclass
class _Subtitle:
    header: list[str]  # its number and timing lines, as they came
    text: list[str]


_TIMING = re.compile(r"-->")


class SubtitleDocument:
    """SubRip (.srt): numbered blocks of a timing line and text lines, separated by blank lines. A
    subtitle's lines are translated together as one sentence and written as one line."""

    aligned = False

    def __init__(self, text: str, name: str):
        self.subtitles: list[_Subtitle] = []
        lines = [line.removesuffix("\r") for line in text.lstrip("\ufeff").split("\n")]
        block: list[tuple[int, str]] = []
        for number, line in [*enumerate(lines, start=1), (len(lines) + 1, "")]:
            if line.strip():
                block.append((number, line))
            elif block:
                self.subtitles.append(self._subtitle(block, name))
                block = []
        self.sentences = [" ".join(line.strip() for line in s.text) for s in self.subtitles]

    @staticmethod
    def _subtitle(block: list[tuple[int, str]], name: str) -> _Subtitle:
        timing = next((i for i, (_, line) in enumerate(block[:2]) if _TIMING.search(line)), None)
        if timing is None:
            raise ApiError(400, f"Invalid request: {name} line {block[0][0]}: a subtitle starts with its number and "
                                "a timing line such as 00:00:01,000 --> 00:00:02,500; send a SubRip (.srt) file")
        return _Subtitle([line for _, line in block[:timing + 1]], [line for _, line in block[timing + 1:]])

    def render(self, translations: list[list[AlignedUnit]]) -> str:
        blocks = ["\n".join(s.header + ([_joined(t)] if s.text else [])) for s, t in zip(self.subtitles, translations)]
        return "\n\n".join(blocks) + "\n"


# The extensions /translate_file takes, as /frontend/settings lists them.
EXTENSIONS = (".txt", ".html", ".htm", ".srt")


def read_document(data: bytes, name: str, extension: str) -> Document:
    """The file's sentences; `extension` is one of EXTENSIONS."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"Invalid request: {name} is not valid UTF-8 (byte {error.start}); "
                            "convert it to UTF-8") from None
    if extension in (".html", ".htm"):
        return HtmlDocument(text)
    if extension == ".srt":
        return SubtitleDocument(text, name)
    return TextDocument(text)
