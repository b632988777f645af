"""HTML through /translate (format=html): each sentence translated once, as a whole; each inline
element on the target words the attention aligns with its source words; the output well-formed,
with the input's elements. Placement is checked by hand against WordByWord, a translator whose
alignment is known (conftest.py); the properties also on the tiny trained GRU's real attention."""

import re
from collections import Counter
from html.parser import HTMLParser

import pytest
from conftest import SHORT_OUTPUTS
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmt.config import DecodeConfig, ServeConfig
from nmt.service.app import create_app
from nmt.service.engine import Engine
from nmt.service.markup import VOID


class Tags(HTMLParser):
    """The start tags of a text, and whether its elements close in order (a void element never closes)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.started: Counter = Counter()
        self.open: list[str] = []
        self.well_formed = True
        self.text = ""
        self.feed(html)
        self.close()
        self.well_formed = self.well_formed and not self.open

    def handle_starttag(self, tag, attrs):
        self.started[tag] += 1
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.started[tag] += 1
        self.well_formed = self.well_formed and tag in VOID  # "<b/>" opens a b that never closes

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        self.well_formed = self.well_formed and bool(self.open) and self.open.pop() == tag

    def handle_data(self, data):
        self.text += data


class RecordingEngine(Engine):
    """The engine, remembering every line it decodes."""

    def __init__(self, translator):
        super().__init__(translator, DecodeConfig(**SHORT_OUTPUTS))
        self.lines: list[str] = []

    def decode(self, lines, nbest, need_attention, constraints=None):
        self.lines += lines
        return super().decode(lines, nbest, need_attention, constraints)


@pytest.fixture(scope="module")
def engine(word_by_word) -> RecordingEngine:
    return RecordingEngine(word_by_word)


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, ServeConfig(checkpoint="unused", max_lines=200, max_chars=2000))) as c:
        yield c


def html(client, q):
    response = client.post("/translate", json={"q": q, "source": "en", "target": "de", "format": "html"})
    assert response.status_code == 200, response.text
    return response.json()["translatedText"]


def text(client, q):
    return client.post("/translate", json={"q": q, "source": "en", "target": "de"}).json()["translatedText"]


# Read by hand: WordByWord translates word by word and puts an adjective behind its noun.
HAND_CHECKED = {
    "one word": ("<p>A <b>black</b> dog runs in the <i>snow</i>.</p>",
                 "<p>Ein Hund <b>schwarz</b> rennt in der <i>Schnee</i>.</p>"),
    "attributes kept": ('<p>Two <a href="/k?a=1&amp;b=2" class="x">children</a> play with a <em>red</em> ball.</p>',
                        '<p>Zwei <a href="/k?a=1&amp;b=2" class="x">Kinder</a> spielen mit ein Ball <em>rot</em>.</p>'),
    "nested": ("<p>The <b>old <i>man</i></b> reads.</p>", "<p>Der <b><i>Mann</i> alt</b> liest.</p>"),
    "siblings swap": ("<p>A <b>black</b> <i>dog</i> runs.</p>", "<p>Ein <i>Hund</i> <b>schwarz</b> rennt.</p>"),
    "two words": ("<p>A <b>black dog</b> runs.</p>", "<p>Ein <b>Hund schwarz</b> rennt.</p>"),
    # b's words came apart around i's: b keeps its run whole, i comes after it, empty.
    "a sibling inside another's run": ("<p>A <b>small black</b> <i>dog</i> runs.</p>",
                                       "<p>Ein <b>klein Hund schwarz</b> <i></i>rennt.</p>"),
    "a word that moves": ("<p>The <u>man</u> sees a <b>small</b> cat.</p>",
                          "<p>Der <u>Mann</u> sieht ein Katze <b>klein</b>.</p>"),
    "punctuation alone": ("A dog runs<b>.</b>", "Ein Hund rennt<b>.</b>"),
    "an entity in the text": ("The &#100;og <b>sees</b> the cat", "Der Hund <b>sieht</b> der Katze"),
    "a void element": ('A <img src="d.png" alt="a dog"> dog runs.', 'Ein <img src="d.png" alt="a dog">Hund rennt.'),
    "code kept in its sentence": ("The dog sees <code>x &lt; y</code>.", "Der Hund sieht <code>x &lt; y</code>."),
    "translate=no kept in its sentence": ('The <span translate="no">dog</span> runs.',
                                          'Der <span translate="no">dog</span> rennt.'),
}


@pytest.mark.parametrize("name", HAND_CHECKED)
def test_an_inline_element_lands_on_the_translation_of_its_words(client, name):
    source, expected = HAND_CHECKED[name]
    assert html(client, source) == expected


def test_a_sentence_is_translated_once_as_a_whole(client, engine):
    engine.lines.clear()
    html(client, "<p>A <b>black</b> dog runs in the <i>snow</i>.</p>")
    assert engine.lines == ["A black dog runs in the snow."]


def test_block_elements_and_br_separate_sentences(client, engine):
    engine.lines.clear()
    html(client, "<div>A dog<p>runs <b>in</b> the snow</p>two children<br>play</div><ul><li>a<li>cat</ul>")
    assert engine.lines == ["A dog", "runs in the snow", "two children", "play", "a", "cat"]


VERBATIM = ('<script>if (a < b) { run("the dog"); }</script><style>p > b { color: red }</style>'
            '<pre>  the   dog\n runs </pre><p translate="no">the <b>dog</b> &amp; cat</p><textarea>the dog</textarea>'
            "<!-- the dog --><!DOCTYPE html>")


def test_code_styles_and_untranslatable_parts_pass_through_unchanged_and_undecoded(client, engine):
    engine.lines.clear()
    assert html(client, VERBATIM + "<p>the dog</p>") == VERBATIM + "<p>der Hund</p>"
    assert engine.lines == ["the dog"]


def test_a_text_of_markup_alone_comes_back_as_it_was(client):
    assert html(client, '<p><img src="a.png"></p> <br><p>&nbsp;</p>') == '<p><img src="a.png"></p> <br><p>&nbsp;</p>'


@pytest.mark.parametrize("section", ["<![CDATA[x]]>", "<![CDATA[a]b] ]>", "<![if !IE]>"])
def test_a_marked_section_comes_back_as_it_was_written(client, section):
    # html.parser hands over "CDATA[x" alone; rebuilding it as "<![CDATA[x]>" left the section open, so that
    # it swallowed the markup after it.
    source = f"{section}<a href='{section}'>"
    out = html(client, source)
    assert out == source + "</a>"
    assert Tags(out).well_formed


def test_markup_in_a_list_of_texts_gives_a_list(client):
    response = client.post("/translate", json={"q": ["<b>a</b> dog", "the <i>cat</i>"], "source": "auto",
                                               "target": "de", "format": "html"}).json()
    assert response["translatedText"] == ["<b>ein</b> Hund", "der <i>Katze</i>"]
    assert [d["language"] for d in response["detectedLanguage"]] == ["en", "en"]


def test_a_broken_text_is_written_back_well_formed(client):
    out = html(client, "<p>the <b>dog <i>runs</p> a cat</b></i> </span> <b/>red<p>ball")
    assert Tags(out).well_formed
    assert Tags(out).started == Counter({"p": 2, "b": 2, "i": 1})


WORD = st.sampled_from(["a", "the", "black", "dog", "runs", "in", "snow", "two", "children", "play", "red", "ball",
                        "old", "man", "reads", "cat", "sees", "small", ".", ",", "&amp;", "&lt;", "&quot;", "x"])
INLINE = st.sampled_from(["b", "i", "em", "strong", "span", "a", "u", "code"])
BLOCK = st.sampled_from(["p", "div", "li", "h2", "td"])
ATTRIBUTES = st.sampled_from(["", ' class="c"', ' href="/x?a=1&amp;b=2"', " title='t &gt; u'", ' translate="no"'])


def _words(draw) -> str:
    return " ".join(draw(st.lists(WORD, min_size=1, max_size=4)))


@st.composite
def inline_html(draw, depth: int = 0) -> str:
    """Text with inline elements, nested; an image or a comment here and there."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["words", "words", "element", "img", "comment"] if depth < 3 else ["words"]))
        if kind == "element":
            tag, attributes = draw(INLINE), draw(ATTRIBUTES)
            parts.append(f"<{tag}{attributes}>{draw(inline_html(depth + 1))}</{tag}>")
        elif kind == "img":
            parts.append('<img src="i.png">')
        elif kind == "comment":
            parts.append("<!-- note -->")
        else:
            parts.append(_words(draw))
    return draw(st.sampled_from([" ", ""])).join(parts)


@st.composite
def block_html(draw) -> str:
    blocks = [f"<{tag}>{draw(inline_html())}</{tag}>" for tag in draw(st.lists(BLOCK, min_size=1, max_size=3))]
    return draw(st.sampled_from(["\n", "", "<br>"])).join(blocks)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(source=st.one_of(inline_html(), block_html()))
def test_generated_html_keeps_its_elements_and_comes_back_well_formed(client, source):
    out = Tags(html(client, source))
    assert out.well_formed
    assert out.started == Tags(source).started


def _without_opaque(source: str) -> bool:
    return "<code" not in source and "translate=" not in source


@FAST
@given(source=inline_html().filter(_without_opaque))
def test_the_text_of_translated_html_is_the_translation_of_its_text_alone(client, source):
    alone = re.sub(r"[ \t\n\r\f]+", " ", Tags(source).text).strip()
    assert Tags(html(client, source)).text.strip() == (text(client, alone).strip() if alone else "")


MARKUP_NOISE = st.lists(st.sampled_from(
    ["<b>", "</b>", "<i>", "</i>", "<p>", "</p>", "<br>", "<br/>", "<b/>", "</span>", "<img src=x>", "&amp;", "&",
     "<", ">", "&nbsp;", "&#x26;", "<!--", "-->", "<script>", "</script>", "<a href='", "'>", "dog", "the", " ",
     "\n", "é", "\u00a0", "<!DOCTYPE html>", "<?xml?>", "<![CDATA[x]]>", "</", "<p class=\"x"]),
    max_size=25).map("".join)


@FAST
@given(source=st.one_of(MARKUP_NOISE, st.text(max_size=80)))
def test_any_text_as_html_never_gets_a_5xx_and_comes_back_well_formed(client, source):
    response = client.post("/translate", json={"q": source, "source": "en", "target": "de", "format": "html"})
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert Tags(response.json()["translatedText"]).well_formed


@pytest.fixture(scope="module")
def gru_client(trained_run):
    """The tiny trained GRU: its own attention places the markup."""
    config = ServeConfig(checkpoint=str(trained_run / "checkpoints" / "best.pt"), decode=DecodeConfig(**SHORT_OUTPUTS))
    with TestClient(create_app(Engine.load(config.checkpoint, "cpu", config.decode, -1), config)) as c:
        yield c


@pytest.mark.parametrize("source", ["<p>the <b>cat</b> sees the <i>dog</i> .</p>",
                                    "a <em>small <b>bird</b></em> sings",
                                    ('<p>the old man <a href="/r">reads</a> a <span class="x">book</span> in the garden'
                                    " .</p>")])
def test_on_a_real_model_the_words_are_the_texts_and_the_elements_the_sources(gru_client, source):
    out = html(gru_client, source)
    assert Tags(out).well_formed and Tags(out).started == Tags(source).started
    assert Tags(out).text == text(gru_client, re.sub(r"\s+", " ", Tags(source).text).strip())


def test_html_nested_deeper_than_the_limit_is_a_400_and_within_it_is_translated(client):
    deep = client.post("/translate", json={"q": "<b>" * 201 + "dog", "source": "en", "target": "de", "format": "html"})
    assert deep.status_code == 400 and "nests more than 200 elements" in deep.json()["error"]
    assert html(client, "<b>" * 200 + "dog") == "<b>" * 200 + "Hund" + "</b>" * 200
