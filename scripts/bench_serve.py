"""Throughput and latency of `python -m nmt.serve` under concurrent clients, on loopback.

    python scripts/bench_serve.py --checkpoint PATH [--input test.en] [--seconds 20] [--levels 1,8,32,64] [--limits]

Starts the service, warms it up for a few seconds at the highest level, then for each level runs
that many clients for a fixed time, each sending one sentence per LibreTranslate /translate request
and the next as soon as the answer comes. Prints a table, then (last line) one JSON object.

--limits switches LibreTranslate's limits on (LIMITS below), set so that none refuses the benchmark's
requests (they all come from one address): what is measured is the cost of checking them.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MULTI30K_TEST = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en"
LIMITS = ["req_limit=10000000", "char_limit=5000", "batch_limit=64", "alternatives_limit=4"]


def start_service(checkpoint: str, beam: int, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "nmt.serve", f"checkpoint={checkpoint}", "port=0",
               f"decode.beam_size={beam}", *extra]
    process = subprocess.Popen(command, cwd=ROOT, stderr=log.open("wb"), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the service stopped: {log.read_text()}")
        found = re.search(r"serving (http://[\d.]+:\d+)/", log.read_text())
        if found and "startup complete" in log.read_text():
            return process, found.group(1)
        time.sleep(0.2)
    process.kill()
    sys.exit("the service did not start within two minutes")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def post(reader, writer, host: str, body: bytes) -> int:
    """One HTTP/1.1 request on a kept-alive connection; the status code. A minimal client keeps
    the benchmark's own CPU use small beside the service's."""
    writer.write(b"POST /translate HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def client(url: str, lines: list[str], counter: list[int], until: float, latencies: list[float],
                 errors: list[int]) -> None:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while time.monotonic() < until:
            line = lines[counter[0] % len(lines)]
            counter[0] += 1
            body = json.dumps({"q": line, "source": "en", "target": "de"}).encode()
            start = time.monotonic()
            try:
                ok = await post(reader, writer, host, body) == 200
            except (OSError, ValueError, asyncio.IncompleteReadError):
                ok = False
            latencies.append(time.monotonic() - start)
            if not ok:
                errors.append(1)
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
    finally:
        writer.close()


async def level(url: str, lines: list[str], clients: int, seconds: float, counter: list[int]) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.monotonic()
    await asyncio.gather(*(client(url, lines, counter, start + seconds, latencies, errors) for _ in range(clients)))
    elapsed = time.monotonic() - start
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else (latencies or [float("nan")]) * 99
    return {"sentences_per_second": round((len(latencies) - len(errors)) / elapsed, 2),
            "p50_seconds": round(cuts[49], 3), "p95_seconds": round(cuts[94], 3), "p99_seconds": round(cuts[98], 3),
            "errors": len(errors)}


def screenshot(url: str, sentence: str, path: Path) -> None:
    """The page after translating `sentence`, for the README; needs Playwright and Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(url + "/")
        page.fill("#source", sentence)
        page.click("#translate")
        page.wait_for_selector("#heatmap tbody tr")
        page.hover("#heatmap tbody tr:nth-child(2) td >> nth=1")
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--input", default=str(MULTI30K_TEST), help="sentences, one per line")
    parser.add_argument("--seconds", type=float, default=20.0, help="per level")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds at the highest level, not counted")
    parser.add_argument("--screenshot", help="also save a screenshot of the page here")
    parser.add_argument("--limits", action="store_true", help="with LibreTranslate's limits switched on: "
                        + " ".join(LIMITS))
    parser.add_argument("serve_overrides", nargs="*", help="more nmt.serve overrides, e.g. max_wait_ms=10")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    lines = [line for line in Path(args.input).read_text(encoding="utf-8").splitlines() if line.strip()]
    levels = [int(n) for n in args.levels.split(",")]
    log = Path(tempfile.mkdtemp(prefix="bench_serve_")) / "serve.log"
    overrides = args.serve_overrides + (LIMITS if args.limits else [])
    process, url = start_service(args.checkpoint, args.beam, overrides, log)
    try:
        counter = [0]
        asyncio.run(level(url, lines, max(levels), args.warmup, counter))
        rss_start = rss_bytes(process.pid)
        results, rss = {}, {}
        for clients in levels:
            results[str(clients)] = asyncio.run(level(url, lines, clients, args.seconds, counter))
            rss[str(clients)] = rss_bytes(process.pid)
        growth = (rss_bytes(process.pid) - rss_start) / rss_start
        if args.screenshot:
            screenshot(url, lines[0], Path(args.screenshot))
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(f"{len(lines)} sentences from {args.input}; {args.checkpoint} at beam {args.beam}; "
          f"{args.warmup:g} s warm-up, {args.seconds:g} s per level; limits {'on' if args.limits else 'off'}")
    print(f"{'clients':>7} {'sent/s':>8} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'errors':>6} {'RSS MiB':>8}")
    for clients, r in results.items():
        print(f"{clients:>7} {r['sentences_per_second']:>8.1f} {r['p50_seconds']:>7.3f} {r['p95_seconds']:>7.3f} "
              f"{r['p99_seconds']:>7.3f} {r['errors']:>6} {rss[clients] / 2**20:>8.0f}")
    print(f"service RSS {rss_start / 2**20:.0f} MiB at the first level's start, growth {growth:+.1%} by the end")
    print(json.dumps({"clients": results, "rss_growth": round(growth, 4), "rss_start_bytes": rss_start,
                      "beam_size": args.beam, "seconds_per_level": args.seconds,
                      "warmup_seconds": args.warmup, "limits": args.limits}))


if __name__ == "__main__":
    main()
