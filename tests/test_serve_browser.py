"""The page in a real browser: headless Chromium (the distribution's package) driven by Playwright."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import SERVE_LINES
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)], ids=["laptop", "phone"])
def test_the_page_translates_like_the_cli_and_draws_one_cell_per_token_pair(browser, served, cli_translations,
                                                                           width, height, tmp_path):
    line = SERVE_LINES[5]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(served + "/")
    page.fill("#source", line)
    page.click("#translate")
    page.wait_for_selector("#heatmap tbody tr")
    assert page.text_content("#translation") == cli_translations[line]
    answer = page.evaluate("""async (line) => (await (await fetch('/v1/translate', {method: 'POST',
        body: JSON.stringify({q: line})})).json()).translations[0]""", line)
    rows = page.locator("#heatmap tbody tr")
    assert rows.count() == len(answer["hypotheses"][0]["tokens"])
    assert all(rows.nth(i).locator("td").count() == len(answer["source_tokens"]) for i in range(rows.count()))
    assert page.locator("#alternatives li").count() == 5
    # Nothing on the page is wider than a phone's window but the heatmap, which scrolls inside its box.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    page.close()


def test_hovering_a_cell_shows_both_tokens_and_the_weight(browser, served):
    page = browser.new_page()
    page.goto(served + "/")
    page.fill("#source", SERVE_LINES[0])
    page.click("#translate")
    page.hover("#heatmap tbody tr:first-child td >> nth=0")
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible()
    source_token = page.locator("#heatmap thead th >> nth=1").inner_text()
    target_token = page.locator("#heatmap tbody tr:first-child th").inner_text()
    assert tooltip.inner_text().startswith(f"{source_token} → {target_token}: 0.")
    page.close()
