"""Terminology in the service: a request's glossary and the service's decode.glossary keep their terms
in the translation, on every endpoint that translates; the limits on a request's glossary; what an
export and a per-line constraints file are refused with. On the tiny trained GRU."""

import pytest
from conftest import run_cli
from fastapi.testclient import TestClient

from nmt.config import DecodeConfig, ServeConfig
from nmt.errors import NmtError
from nmt.service.app import create_app
from nmt.service.engine import Engine

LINE = "the cat sees the dog ."


@pytest.fixture(scope="module")
def glossary_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("glossary") / "terms.tsv"
    path.write_text("cat\tVogel\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def client(trained_run, glossary_file):
    decode = DecodeConfig(glossary=str(glossary_file))
    config = ServeConfig(checkpoint=str(trained_run / "checkpoints" / "best.pt"), decode=decode,
                         max_glossary_terms=2, max_term_chars=12)
    with TestClient(create_app(Engine.load(config.checkpoint, "cpu", decode, -1), config)) as c:
        yield c


def v1(client, q, glossary=None):
    return client.post("/v1/translate", json={"q": q} | ({"glossary": glossary} if glossary else {}))


def test_a_requests_glossary_terms_appear_in_its_translation(client):
    text = v1(client, "a man reads a book", {"book": "Hund"}).json()["translations"][0]["hypotheses"][0]["text"]
    assert "Hund" in text


def test_on_a_clash_the_requests_term_wins_over_the_services(client):
    text = v1(client, LINE, {"cat": "Hund"}).json()["translations"][0]["hypotheses"][0]["text"]
    assert "Hund" in text and "Vogel" not in text


def test_the_services_glossary_applies_to_libretranslates_translate_text_and_html(client):
    plain = client.post("/translate", json={"q": [LINE, "a bird"], "source": "en", "target": "de"}).json()
    assert "Vogel" in plain["translatedText"][0]
    html = client.post("/translate", json={"q": f"<p>{LINE.replace('cat', '<b>cat</b>')}</p>", "source": "en",
                                           "target": "de", "format": "html"}).json()["translatedText"]
    assert "Vogel" in html.replace("<b>", "").replace("</b>", "")


def test_a_line_without_terms_is_translated_as_alone_whatever_its_batch_mates(trained_run):
    # A beam of one: a batch with constraints runs beam search, not greedy search; the engine keeps them apart.
    engine = Engine.load(str(trained_run / "checkpoints" / "best.pt"), "cpu", DecodeConfig(beam_size=1), -1)
    alone = engine.decode(["the dog"], 1, False)[0][0].tokens
    together = engine.decode(["the dog", LINE], 1, False, [[], ["Vogel"]])
    assert together[0][0].tokens == alone
    assert "Vogel" in engine.text(together[1][0])


GLOSSARY_LIMITS = {
    "too many terms": ({"a": "b", "c": "d", "e": "f"}, "glossary has 3 terms; the limit is 2"),
    "a term too long": ({"cat": "Katzenklappe-Vogel"}, "has 18 characters; the limit is 12"),
    "an empty term": ({"cat": " "}, "has an empty side"),
}


@pytest.mark.parametrize("name", GLOSSARY_LIMITS)
def test_a_glossary_over_its_limits_gets_a_400_that_says_which(client, name):
    glossary, message = GLOSSARY_LIMITS[name]
    response = v1(client, LINE, glossary)
    assert response.status_code == 400 and message in response.json()["error"]


@pytest.mark.parametrize("trained_transformer", ["pre_norm"], indirect=True)
def test_an_export_refuses_a_request_glossary_with_400_and_a_service_glossary_at_start(tmp_path, trained_transformer,
                                                                                         glossary_file):
    from nmt.backends.ct2_export import export_checkpoint
    from nmt.choices import LengthNorm

    export = export_checkpoint(trained_transformer, tmp_path / "ct2")
    decode = DecodeConfig(length_norm=LengthNorm.average)
    engine = Engine.load(str(export), "cpu", decode, -1)
    with TestClient(create_app(engine, ServeConfig(checkpoint=str(export), decode=decode))) as served:
        response = v1(served, LINE, {"cat": "Vogel"})
    assert response.status_code == 400 and "no constrained search" in response.json()["error"]
    result = run_cli("serve", f"checkpoint={export}", f"decode.glossary={glossary_file}", "decode.length_norm=average",
                     "port=0", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith(f"error: decode.glossary={glossary_file}:")


def test_a_constraints_file_is_refused_at_start_with_one_line(tmp_path):
    result = run_cli("serve", "checkpoint=nowhere.pt", "decode.constraints=c.txt", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: decode.constraints: a per-line constraints file")


def test_a_glossary_the_service_cannot_read_stops_it_with_one_line(trained_run, tmp_path):
    config = ServeConfig(checkpoint="unused", decode=DecodeConfig(glossary=str(tmp_path / "missing.tsv")))
    engine = Engine.load(str(trained_run / "checkpoints" / "best.pt"), "cpu", config.decode, -1)
    with pytest.raises(NmtError, match="missing.tsv: no such file"):
        create_app(engine, config)
