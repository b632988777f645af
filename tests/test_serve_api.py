"""The service's HTTP API in process: LibreTranslate's endpoints as its clients call them, /v1, the page."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from conftest import SERVE_LINES, SHORT_OUTPUTS
from fastapi.testclient import TestClient

from nmt.backends import Translator
from nmt.config import DecodeConfig, ServeConfig
from nmt.models.transformer import TransformerModel
from nmt.service.app import STATIC, create_app
from nmt.service.engine import Engine


def make_client(checkpoint, **settings) -> TestClient:
    config = ServeConfig(checkpoint=str(checkpoint), decode=DecodeConfig(**SHORT_OUTPUTS), **settings)
    return TestClient(create_app(Engine.load(config.checkpoint, "cpu", config.decode, -1), config))


@pytest.fixture(scope="module")
def client(trained_run):
    with make_client(trained_run / "checkpoints" / "best.pt") as c:
        yield c


def libre(client, **body):
    return client.post("/translate", json={"source": "en", "target": "de"} | body)


def test_a_string_q_gets_the_cli_translation_as_a_string(client, cli_translations):
    response = libre(client, q=SERVE_LINES[0])
    assert response.status_code == 200
    assert response.json() == {"translatedText": cli_translations[SERVE_LINES[0]]}


def test_a_list_q_gets_a_list_in_the_same_order(client, cli_translations):
    response = libre(client, q=SERVE_LINES)
    assert response.json()["translatedText"] == [cli_translations[line] for line in SERVE_LINES]


def test_a_form_body_is_read_like_json(client, cli_translations):
    response = client.post("/translate", data={"q": SERVE_LINES[2], "source": "en", "target": "de"})
    assert response.json() == {"translatedText": cli_translations[SERVE_LINES[2]]}


def test_repeated_form_fields_are_a_list_q(client, cli_translations):
    response = client.post("/translate", data={"q": SERVE_LINES[:2], "source": "en", "target": "de"})
    assert response.json()["translatedText"] == [cli_translations[line] for line in SERVE_LINES[:2]]


def test_a_text_of_several_lines_is_translated_line_by_line(client, cli_translations):
    response = libre(client, q="\n".join(SERVE_LINES[:3]))
    assert response.json()["translatedText"] == "\n".join(cli_translations[line] for line in SERVE_LINES[:3])


def test_alternatives_are_the_next_best_translations_each_once(client):
    best = client.post("/v1/translate", json={"q": SERVE_LINES[0], "nbest": 3}).json()["translations"][0]
    texts = [h["text"] for h in best["hypotheses"]]
    response = libre(client, q=SERVE_LINES[0], alternatives=2).json()
    assert response["translatedText"] == texts[0]
    assert response["alternatives"] == [t for t in dict.fromkeys(texts[1:]) if t != texts[0]]


def test_a_list_q_gets_one_list_of_alternatives_per_text(client):
    response = libre(client, q=SERVE_LINES[:2], alternatives=1).json()
    assert [len(a) for a in response["alternatives"]] == [1, 1]


def test_auto_source_reports_the_models_source_language(client):
    assert libre(client, q="hello", source="auto").json()["detectedLanguage"]["language"] == "en"
    listed = libre(client, q=["hello", "a"], source="auto").json()["detectedLanguage"]
    assert [d["language"] for d in listed] == ["en", "en"]


def test_languages_lists_both_languages_each_with_its_targets(client):
    assert client.get("/languages").json() == [{"code": "en", "name": "English", "targets": ["de"]},
                                               {"code": "de", "name": "German", "targets": []}]


def test_v1_gives_nbest_with_scores_in_ranking_order(client):
    found = client.post("/v1/translate", json={"q": [SERVE_LINES[2]], "nbest": 4}).json()["translations"][0]
    hyps = found["hypotheses"]
    assert len(hyps) == 4
    assert [h["score"] for h in hyps] == sorted((h["score"] for h in hyps), reverse=True)
    assert all(h["attention"] is None and h["tokens"][-1] == "</s>" for h in hyps)


def test_v1_attention_has_a_row_per_target_token_and_a_column_per_source_token(client):
    found = client.post("/v1/translate", json={"q": SERVE_LINES[5], "attention": True}).json()["translations"][0]
    assert found["source_tokens"][-1] == "</s>"
    hyp = found["hypotheses"][0]
    assert len(hyp["attention"]) == len(hyp["tokens"])
    assert all(len(row) == len(found["source_tokens"]) and abs(sum(row) - 1) < 1e-2 for row in hyp["attention"])


def test_health_says_ok_and_what_is_served(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["beam_size"] == 5 and body["api_key_required"] is False


def test_the_page_and_every_asset_it_names_are_served_by_the_service(client):
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/static/") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200
    for path in STATIC.iterdir():  # nothing fetched from elsewhere: the page works offline
        if path.suffix in (".html", ".js", ".css"):
            assert "http://" not in path.read_text() and "https://" not in path.read_text(), path


def test_the_openapi_page_documents_the_request_and_response_bodies(client):
    paths = client.get("/openapi.json").json()["paths"]
    body = paths["/translate"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(body)
    assert "q" in body["application/json"]["schema"]["properties"]
    assert "$defs" not in str(body)  # every reference resolves within the page
    answer = paths["/translate"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert answer.endswith("/TranslateResponse")


@pytest.fixture(scope="module")
def one_thread():
    """Decoding in the test's own thread: one torch thread keeps it quick on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def transformer_translator(client, one_thread) -> Translator:
    """An untrained tiny Transformer over the tiny run's vocabulary: two decoder layers to choose from."""
    vocab = client.app.state.endpoints.engine.translator.vocab
    torch.manual_seed(0)
    model = TransformerModel(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=2, heads=2,
                             ffn_dim=32, dropout=0.0, max_positions=64)
    return Translator(model, vocab, torch.device("cpu"))


def test_a_transformer_reports_the_chosen_cross_attention_layer(transformer_translator):
    found = {}
    for layer in (0, 1, -1):
        engine = Engine(transformer_translator, DecodeConfig(), attention_layer=layer)
        found[layer] = engine.decode(["the cat sees the dog ."], 1, True)[0][0].attention
    assert found[1].equal(found[-1]) and not found[0].equal(found[1])


def test_a_sentence_decoded_in_a_crowd_of_requests_equals_it_decoded_alone(transformer_translator):
    # Short outputs keep the untrained model quick; the search is the same at any length.
    engine = Engine(transformer_translator, DecodeConfig(beam_size=3, max_len_a=0.5, max_len_b=4))
    alone = {line: engine.decode([line], 3, False)[0] for line in SERVE_LINES}
    batches = []
    engine.decode = lambda lines, nbest, attention, constraints: batches.append(lines) or Engine.decode(
        engine, lines, nbest, attention, constraints)
    config = ServeConfig(checkpoint="unused", max_wait_ms=300)  # long enough for every request to join
    with TestClient(create_app(engine, config)) as crowd, ThreadPoolExecutor(len(SERVE_LINES)) as pool:
        # Batch mates differ in what they ask for: half want attention, n-best sizes vary.
        bodies = [{"q": line, "nbest": 1 + i % 3, "attention": i % 2 == 0} for i, line in enumerate(SERVE_LINES)]
        answers = list(pool.map(lambda body: crowd.post("/v1/translate", json=body).json(), bodies))
    assert len(batches) < len(SERVE_LINES)
    for body, answer in zip(bodies, answers):
        got, expected = answer["translations"][0]["hypotheses"], alone[body["q"]][:body["nbest"]]
        assert [h["text"] for h in got] == [engine.text(h) for h in expected]
        assert [h["score"] for h in got] == pytest.approx([h.score for h in expected], abs=1e-5)


def test_an_export_is_served_like_its_checkpoint_is_translated(trained_transformer, tmp_path):
    from nmt.backends import load_translator
    from nmt.backends.ct2_export import export_checkpoint
    from nmt.choices import LengthNorm

    export = export_checkpoint(trained_transformer, tmp_path / "export")
    decode = DecodeConfig(length_norm=LengthNorm.average, **SHORT_OUTPUTS)  # what CTranslate2 can express
    expected = load_translator(export, "cpu").translate(SERVE_LINES, decode)
    config = ServeConfig(checkpoint=str(export), decode=decode)
    with TestClient(create_app(Engine.load(config.checkpoint, "cpu", decode, -1), config)) as served:
        assert libre(served, q=SERVE_LINES).json() == {"translatedText": expected}
        found = served.post("/v1/translate", json={"q": SERVE_LINES[0], "attention": True}).json()
        hyp = found["translations"][0]["hypotheses"][0]
        assert len(hyp["attention"]) == len(hyp["tokens"])
        assert all(len(row) == len(found["translations"][0]["source_tokens"]) for row in hyp["attention"])
        # HTML through the export: its markup is placed by CTranslate2's attention, the words are the text's.
        html = f"<p>{SERVE_LINES[0].replace('cat', '<b>cat</b>')}</p>"
        placed = libre(served, q=html, format="html").json()["translatedText"]
        assert placed.startswith("<p>") and placed.count("<b>") == placed.count("</b>") == 1
        assert re.sub("<[^>]+>", "", placed) == expected[0]
