"""Bad input, keys and overload: each gets a 4xx JSON error that says what is wrong, and the service
keeps serving. The service runs in process on the tiny GRU."""

import threading

import pytest
from conftest import SHORT_OUTPUTS
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmt.config import DecodeConfig, ServeConfig
from nmt.service.app import create_app
from nmt.service.engine import Engine

OK = {"q": "the dog", "source": "en", "target": "de"}


class CountingEngine(Engine):
    """The real engine, counting decoded lines, and able to hold a batch in flight."""

    def __init__(self, engine: Engine):
        super().__init__(engine.translator, engine.decode_config)
        self.decoded, self.release = 0, threading.Event()
        self.release.set()

    def decode(self, lines, nbest, need_attention, constraints=None):
        self.release.wait(10)
        self.decoded += len(lines)
        return super().decode(lines, nbest, need_attention, constraints)


@pytest.fixture(scope="module")
def engine(trained_run) -> CountingEngine:
    checkpoint = str(trained_run / "checkpoints" / "best.pt")
    return CountingEngine(Engine.load(checkpoint, "cpu", DecodeConfig(**SHORT_OUTPUTS), -1))


def client_for(engine, **settings) -> TestClient:
    return TestClient(create_app(engine, ServeConfig(checkpoint="unused", max_lines=4, max_chars=50,
                                                     max_body_bytes=2000, **settings)))


@pytest.fixture(scope="module")
def client(engine):
    with client_for(engine) as c:
        yield c


BAD = {
    "malformed JSON": ({"content": b'{"q": "the dog",', "headers": {"content-type": "application/json"}},
                       "not valid JSON"),
    "not an object": ({"json": ["the dog"]}, "JSON object"),
    "q a number": ({"json": OK | {"q": 5}}, "q:"),
    "q a list of numbers": ({"json": OK | {"q": [1, 2]}}, "q:"),
    "missing q": ({"json": {"source": "en", "target": "de"}}, "missing q"),
    "empty q": ({"json": OK | {"q": ""}}, "q is empty"),
    "empty list q": ({"json": OK | {"q": []}}, "q is empty"),
    "missing target": ({"json": {"q": "x", "source": "en"}}, "missing target"),
    "unknown source": ({"json": OK | {"source": "xx"}}, "xx is not supported"),
    "unknown target": ({"json": OK | {"target": "fr"}}, "fr is not supported"),
    "unknown format": ({"json": OK | {"format": "pdf"}}, "pdf format is not supported"),
    "negative alternatives": ({"json": OK | {"alternatives": -1}}, "alternatives"),
    "more alternatives than beams": ({"json": OK | {"alternatives": 5}}, "beam keeps 5"),
    "not UTF-8": ({"content": b'{"q": "\xff\xfe"}', "headers": {"content-type": "application/json"}}, "UTF-8"),
    "line over the limit": ({"json": OK | {"q": "a" * 51}}, "the limit is 50"),
    "too many lines": ({"json": OK | {"q": ["a"] * 5}}, "the limit is 4"),
    "too many lines in one text": ({"json": OK | {"q": "a\nb\nc\nd\ne"}}, "the limit is 4"),
    "a file in a form": ({"files": {"q": ("q.txt", b"the dog")}, "data": {"source": "en", "target": "de"}}, "files"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_gets_a_400_that_says_what_is_wrong(client, name):
    request, says = BAD[name]
    response = client.post("/translate", **request)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]


def test_v1_refuses_more_hypotheses_than_the_beam_keeps(client):
    response = client.post("/v1/translate", json={"q": "the dog", "nbest": 6})
    assert response.status_code == 400 and "beam keeps 5" in response.json()["error"]


def test_a_body_over_the_size_limit_is_refused_with_413(client):
    response = client.post("/translate", json=OK | {"q": "a" * 3000})
    assert response.status_code == 413 and "limit of 2000 bytes" in response.json()["error"]


def test_unknown_paths_and_methods_get_json_errors(client):
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert client.get("/translate").status_code == 405 and "error" in client.get("/translate").json()


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2F..%2Fconfig.py"])
def test_no_path_reaches_a_file_outside_the_pages_assets(client, path):
    assert client.get(path).status_code == 404


def test_without_a_valid_key_a_request_gets_403_and_is_never_decoded(engine):
    with client_for(engine, api_keys=["k1"]) as keyed:
        before = engine.decoded
        assert keyed.post("/translate", json=OK).status_code == 403
        assert keyed.post("/translate", json=OK | {"api_key": "wrong"}).json() == {"error": "Invalid API key"}
        assert keyed.post("/v1/translate", json={"q": "the dog"}).status_code == 403
        assert keyed.post("/detect", json={"q": "the dog"}).status_code == 403
        assert engine.decoded == before
        assert keyed.post("/translate", json=OK | {"api_key": "k1"}).status_code == 200
        assert keyed.post("/translate", data=OK | {"api_key": "k1"}).status_code == 200


def test_past_the_queue_limit_requests_get_429_with_retry_after(engine):
    engine.release.clear()
    try:
        with client_for(engine, max_queued_lines=4) as small:
            holder = threading.Thread(target=small.post, args=("/translate",), kwargs={"json": OK | {"q": ["a"] * 4}})
            holder.start()
            while small.get("/health").json()["queued_lines"] < 4:
                pass
            response = small.post("/translate", json=OK)
            assert response.status_code == 429 and response.headers["retry-after"] == "1"
            engine.release.set()
            holder.join()
            assert small.post("/translate", json=OK).status_code == 200
    finally:
        engine.release.set()


# What a JSON encoder can send: no NaN or infinity (random bytes below cover those and worse).
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=10)
field_values = st.one_of(json_values, st.text(max_size=60), st.lists(st.text(max_size=60), max_size=6))
bodies = st.one_of(
    st.binary(max_size=300).map(lambda raw: {"content": raw, "headers": {"content-type": "application/json"}}),
    st.fixed_dictionaries({}, optional={k: field_values for k in ("q", "source", "target", "format", "alternatives",
                                                                  "api_key", "nbest", "attention")}).map(
        lambda fields: {"json": fields}),
    st.dictionaries(st.sampled_from(["q", "source", "target", "alternatives"]), st.text(max_size=40)).map(
        lambda fields: {"data": fields}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/translate", "/v1/translate", "/detect"]), body=bodies)
def test_random_bodies_never_get_a_5xx_and_the_service_stays_healthy(client, path, body):
    response = client.post(path, **body)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert isinstance(response.json()["error"], str)
    assert client.get("/health").json()["status"] == "ok"
