"""HTML translated as whole sentences: the markup is taken off each sentence, the sentence is
translated once, and each inline element is put back on the target words the model's attention
aligns with the source words it covered.

- A *sentence* is the text between block elements (and `<br>`), whatever inline markup it carries.
- `script`, `style`, `pre`, `textarea`, `svg`, `math`, `template` and any element marked
  `translate="no"` are written back exactly as they came; inside a sentence, `code` and inline
  elements marked `translate="no"` keep their place and content while the words around them are
  translated.
- Start tags are written as they came (attributes untouched), text the way HTML reads it (entities
  decoded before translating, `&`, `<` and `>` escaped in the translation). Whatever the input, every
  element that is opened is closed, properly nested: an element left open is closed with its parent,
  an end tag nothing opened is dropped.
"""

import re
from dataclasses import dataclass, field
from html import escape, unescape
from html.parser import HTMLParser

from nmt.decoding.alignment import AlignedUnit
from nmt.service.requests import ApiError

VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# Elements that end a sentence: what they hold is translated apart from what surrounds them.
BLOCK = frozenset((
    "address article aside blockquote body br caption center dd details dialog dir div dl dt fieldset figcaption "
    "figure footer form frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html legend li main menu nav ol optgroup "
    "option p section summary table tbody td tfoot th thead title tr ul").split())
# Code, styles and preformatted text: never prose to translate.
VERBATIM = frozenset("script style pre textarea svg math template".split())
# An open one of these is closed by the next start tag of its kind (HTML's optional end tags).
CLOSED_BY_SIBLING = frozenset("p li dt dd option tr td th".split())
_WHITESPACE = " \t\n\r\f"  # HTML's: a no-break space is text
# Elements open at once, at most: the tree is walked recursively, and real pages nest a few dozen deep.
MAX_DEPTH = 200


@dataclass
class Element:
    tag: str
    start: str  # the start tag as written
    translate: bool = True  # False for translate="no" and everything in it
    children: list["Node"] = field(default_factory=list)

    @property
    def end(self) -> str:
        return "" if self.tag in VOID else f"</{self.tag}>"


@dataclass
class Text:
    raw: str  # as written, entities included

    @property
    def text(self) -> str:
        return unescape(self.raw)


@dataclass
class Verbatim:
    raw: str  # a comment, doctype or processing instruction, as written


Node = Element | Text | Verbatim


def serialize(node: Node) -> str:
    if isinstance(node, Element):
        return node.start + "".join(serialize(child) for child in node.children) + node.end
    return node.raw


class _TreeBuilder(HTMLParser):
    """html.parser's events as a tree; text keeps its raw form, read from the source between events."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.root = Element("", "")
        self.open = [self.root]
        self.text_from: int | None = None  # where the text not yet added began

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def _flush(self, end: int) -> None:
        if self.text_from is not None and end > self.text_from:
            self.open[-1].children.append(Text(self.source[self.text_from:end]))
        self.text_from = None

    def _add(self, node: Node) -> None:
        self._flush(self._offset())
        self.open[-1].children.append(node)

    def handle_data(self, data: str) -> None:
        if self.text_from is None:
            self.text_from = self._offset()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in CLOSED_BY_SIBLING and self.open[-1].tag == tag:
            self._flush(self._offset())
            self.open.pop()
        translate = self.open[-1].translate and dict(attrs).get("translate", "").lower() != "no"
        element = Element(tag, self.get_starttag_text(), translate)
        self._add(element)
        if tag not in VOID:
            if len(self.open) > MAX_DEPTH:
                raise ApiError(400, f"Invalid request: the HTML nests more than {MAX_DEPTH} elements inside each "
                                    "other; send it in parts")
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        start = self.get_starttag_text()
        if tag not in VOID:  # HTML ignores "/>" on other elements; close it here so the output says what it means
            start = start.removesuffix("/>").rstrip() + ">"
        translate = self.open[-1].translate and dict(attrs).get("translate", "").lower() != "no"
        self._add(Element(tag, start, translate))

    def handle_endtag(self, tag: str) -> None:
        self._flush(self._offset())
        if tag in VOID or all(element.tag != tag for element in self.open[1:]):
            return  # nothing opened it
        while self.open.pop().tag != tag:
            pass

    def handle_comment(self, data: str) -> None:
        self._add(Verbatim(f"<!--{data}-->"))

    def handle_decl(self, decl: str) -> None:
        self._add(Verbatim(f"<!{decl}>"))

    def handle_pi(self, data: str) -> None:
        self._add(Verbatim(f"<?{data}>"))

    def unknown_decl(self, data: str) -> None:
        # A marked section, "<![" data "]]>" or "]>" with optional spaces: html.parser hands over the data
        # alone, so the section is copied from the source up to the ">" that closes it.
        start = self._offset()
        end = self.source.index(">", start + len("<![") + len(data)) + 1
        self._add(Verbatim(self.source[start:end]))

    def finish(self) -> Element:
        self.close()
        self._flush(len(self.source))
        return self.root


def parse(source: str) -> Element:
    """The document as a tree under a nameless root."""
    builder = _TreeBuilder(source)
    builder.feed(source)
    return builder.finish()


@dataclass
class Mark:
    """An inline element (or a comment) within a sentence, over the sentence's characters [begin, end)."""

    node: Element | Verbatim
    begin: int
    end: int
    children: list["Mark"] = field(default_factory=list)

    @property
    def opaque(self) -> bool:
        """Written back as it came, in place of the words aligned with it."""
        return not isinstance(self.node, Element) or not self.node.translate or self.node.tag == "code"


@dataclass
class Sentence:
    text: str  # what is translated: the sentence's text, its whitespace collapsed as HTML renders it
    lead: str  # the whitespace before and after it, written back around the translation
    trail: str
    marks: list[Mark]


def _is_inline(node: Node) -> bool:
    if not isinstance(node, Element):
        return True
    if node.tag in BLOCK or node.tag in VERBATIM:
        return False
    return not node.translate or node.tag == "code" or all(_is_inline(child) for child in node.children)


def _text(node: Node) -> str:
    if isinstance(node, Text):
        return node.text
    if isinstance(node, Element):
        return "".join(_text(child) for child in node.children)
    return ""


class _Joined:
    """The text of a run of nodes joined, and each element's mark at its offsets in it."""

    def __init__(self, nodes: list[Node]):
        self.parts: list[str] = []
        self.length = 0
        self.marks = self._collect(nodes)

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def _collect(self, nodes: list[Node]) -> list[Mark]:
        marks = []
        for node in nodes:
            if isinstance(node, Text):
                self._append(node.text)
                continue
            mark = Mark(node, self.length, self.length)
            if isinstance(node, Element):
                if mark.opaque:
                    self._append(_text(node))
                else:
                    mark.children = self._collect(node.children)
                mark.end = self.length
            marks.append(mark)
        return marks


def _collapse(text: str) -> tuple[str, list[int]]:
    """`text` with each whitespace run made one space, and where each of its characters (and its end) lands."""
    out, position, length = [], [], 0
    for match in re.finditer(r"[ \t\n\r\f]+|[^ \t\n\r\f]+", text):
        chunk = match.group()
        if chunk[0] in _WHITESPACE:
            position += [length] * len(chunk)
            chunk = " "
        else:
            position += range(length, length + len(chunk))
        out.append(chunk)
        length += len(chunk)
    return "".join(out), position + [length]


def _sentence(nodes: list[Node]) -> Sentence:
    """The nodes' text with HTML's whitespace collapsed, and their marks moved onto it."""
    joined = _Joined(nodes)
    raw = "".join(joined.parts)
    body = raw.strip(_WHITESPACE)
    lead = raw[:len(raw) - len(raw.lstrip(_WHITESPACE))]
    trail = raw[len(lead) + len(body):]
    text, position = _collapse(body)
    position = [0] * len(lead) + position[:-1] + [len(text)] * (len(trail) + 1)  # over raw's characters

    def moved(mark: Mark) -> Mark:
        begin, end = position[mark.begin], position[mark.end]
        while begin < end and text[begin] == " ":
            begin += 1
        while end > begin and text[end - 1] == " ":
            end -= 1
        return Mark(mark.node, begin, end, [moved(child) for child in mark.children])

    return Sentence(text, lead, trail, [moved(mark) for mark in joined.marks])


class Document:
    """An HTML text split into what is written back as it came and the sentences to translate."""

    def __init__(self, source: str):
        self.parts: list[str | Sentence] = []
        self._block(parse(source).children)

    @property
    def sentences(self) -> list[Sentence]:
        return [part for part in self.parts if isinstance(part, Sentence)]

    def _block(self, children: list[Node]) -> None:
        run: list[Node] = []
        for child in [*children, None]:
            if child is not None and _is_inline(child):
                run.append(child)
                continue
            if run:
                sentence = _sentence(run)  # one with no word (only no-break spaces, say) is written back as it came
                self.parts.append(sentence if sentence.text.strip() else "".join(map(serialize, run)))
                run = []
            if isinstance(child, Element):
                if child.tag in VERBATIM or not child.translate:
                    self.parts.append(serialize(child))
                else:
                    self.parts.append(child.start)
                    self._block(child.children)
                    self.parts.append(child.end)

    def render(self, translations: list[list[AlignedUnit]]) -> str:
        """The document with sentences[i] replaced by translations[i], its translation cut into aligned units."""
        given = iter(translations)
        return "".join(part if isinstance(part, str) else part.lead + place(part, next(given)) + part.trail
                       for part in self.parts)


@dataclass
class _Placed:
    mark: Mark
    begin: int  # target units [begin, end)
    end: int
    children: list["_Placed"]


def _covers(mark: Mark, unit: AlignedUnit) -> bool:
    """Whether the unit is aligned with a word the mark holds (a mark without text holds none)."""
    begin, end = unit.source
    return mark.begin < mark.end and begin < mark.end and end > mark.begin


def _layout(marks: list[Mark], units: list[AlignedUnit], lo: int, hi: int) -> list["_Placed"]:
    """Each mark on a run of target units within [lo, hi): the run from the first to the last unit
    aligned with its words, or, when none is, the point after the last unit aligned with a word before
    it. Siblings overlapping in the target are cut where the earlier one ends, so the runs nest and
    never cross, and every mark is placed exactly once."""
    wanted = []
    for mark in marks:
        covered = [u for u in range(lo, hi) if _covers(mark, units[u])]
        if covered:
            wanted.append((covered[0], covered[-1] + 1))
        else:
            point = max((u + 1 for u in range(lo, hi) if units[u].source[1] <= mark.begin), default=lo)
            wanted.append((point, point))
    placed, cursor = [], lo
    for i in sorted(range(len(marks)), key=lambda i: (wanted[i][0], wanted[i][1] > wanted[i][0], i)):
        begin = max(wanted[i][0], cursor)
        end = max(begin, wanted[i][1])
        cursor = end
        placed.append(_Placed(marks[i], begin, end, _layout(marks[i].children, units, begin, end)))
    return placed


def _render(units: list[AlignedUnit], placed: list[_Placed], lo: int, hi: int) -> str:
    """Units [lo, hi) with the placed marks around theirs. The space before an element's first word
    is written before its start tag, outside it, as in the source; the space before unit `lo` was
    written by whoever opened this run."""
    out, position, spaced = [], lo, {lo}  # spaced: units whose leading space is written already

    def words(begin: int, end: int) -> None:
        for u in range(begin, end):
            text = units[u].text
            out.append(escape(text[1:] if u in spaced and text.startswith(" ") else text, quote=False))

    for p in placed:
        words(position, p.begin)
        if p.begin < hi and p.begin not in spaced and units[p.begin].text.startswith(" "):
            out.append(" ")
        spaced.add(p.begin)
        node = p.mark.node
        out.append(serialize(node) if p.mark.opaque else
                   node.start + _render(units, p.children, p.begin, p.end) + node.end)
        position = p.end
    words(position, hi)
    return "".join(out)


def place(sentence: Sentence, units: list[AlignedUnit]) -> str:
    """The translation (its units' texts, joined) with the sentence's marks placed on it."""
    return _render(units, _layout(sentence.marks, units, 0, len(units)), 0, len(units))
