"""`python -m nmt.serve` as a user runs it: real HTTP on loopback, concurrent clients, SIGTERM, start-up errors."""

import json
import signal
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from conftest import SERVE_LINES, run_cli, serving
from libretranslatepy import LibreTranslateAPI


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def translate_each_at_once(url: str, lines: list[str]) -> list[tuple[int, dict]]:
    """One request per line, all sent together."""
    with ThreadPoolExecutor(len(lines)) as pool:
        return list(pool.map(lambda line: post(url + "/translate", {"q": line, "source": "en", "target": "de"}),
                             lines))


def test_concurrent_requests_each_get_the_cli_translation(served, cli_translations):
    lines = SERVE_LINES * 4
    answers = translate_each_at_once(served, lines)
    assert [a[0] for a in answers] == [200] * len(lines)
    assert [a[1]["translatedText"] for a in answers] == [cli_translations[line] for line in lines]


def test_libretranslates_own_python_client_works_unchanged(served, cli_translations):
    client = LibreTranslateAPI(served)
    assert client.translate(SERVE_LINES[0], "en", "de") == cli_translations[SERVE_LINES[0]]
    assert client.languages()[0] == {"code": "en", "name": "English", "targets": ["de"]}
    assert client.detect(SERVE_LINES[0]) == [{"confidence": 100.0, "language": "en"}]


def test_sigterm_answers_every_request_in_flight_then_exits_0(trained_run, tmp_path, cli_translations):
    # Batches wait half a second for company, so the requests are still queued when SIGTERM comes.
    with serving(trained_run / "checkpoints" / "best.pt", "max_wait_ms=500", cwd=tmp_path) as (process, url):
        with ThreadPoolExecutor(len(SERVE_LINES)) as pool:
            pending = pool.submit(translate_each_at_once, url, SERVE_LINES)
            while json.loads(urllib.request.urlopen(url + "/health").read())["queued_lines"] < len(SERVE_LINES):
                pass
            process.send_signal(signal.SIGTERM)
            answers = pending.result()
        assert process.wait(timeout=30) == 0
    assert [a[1]["translatedText"] for a in answers] == [cli_translations[line] for line in SERVE_LINES]


def raw_exchange(url: str, request: bytes) -> str:
    """Send raw bytes as one HTTP request; the answer, read until its JSON body ends."""
    address = urlparse(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"}" not in answer:  # recv times out if the service waits for more body
            answer += sock.recv(4096)
    return answer.decode()


def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent(served):
    answer = raw_exchange(served, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 50000000\r\n\r\n{\"q\": ")
    assert answer.startswith("HTTP/1.1 413") and "over the limit of 1000000 bytes" in answer


def test_a_body_without_a_declared_length_is_refused_once_it_passes_the_limit(served):
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"  # 64 KiB chunks, 1.2 MB in all
    answer = raw_exchange(served, b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 19 + b"0\r\n\r\n")
    assert answer.startswith("HTTP/1.1 413") and "over the limit of 1000000 bytes" in answer


def test_a_taken_port_is_a_one_line_error(served, trained_run):
    port = urlparse(served).port
    result = run_cli("serve", "checkpoint=checkpoints/best.pt", f"port={port}", cwd=trained_run, timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith(f"error: host=127.0.0.1 port={port}")


def test_a_bad_limit_is_a_one_line_error_naming_it(tmp_path):
    result = run_cli("serve", "checkpoint=nowhere.pt", "max_lines=0", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == ["config error: max_lines: must be at least 1"]
