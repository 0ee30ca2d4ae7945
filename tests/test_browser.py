"""Journeys through the dashboard in a real headless browser (Debian's Chromium driven by Playwright).

    python -m pytest -m browser tests/test_browser.py

Never downloads a browser. Without /usr/bin/chromium (`apt-get install chromium`; another path with
S2DLAB_CHROMIUM=...) or the playwright package the tests skip, unless S2DLAB_REQUIRE_BROWSER is set (as `.ci/run`
does): then they fail.
"""

import importlib.util
import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("S2DLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DATA = Path(__file__).parent / "data"
REQUIRE_BROWSER = os.environ.get("S2DLAB_REQUIRE_BROWSER", "") not in ("", "0")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install playwright)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root):
    from s2dlab.dashboard import build_demo

    demo = build_demo(root)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def browser():
    why = browser_missing()
    if why and REQUIRE_BROWSER:
        pytest.fail(f"{why}; S2DLAB_REQUIRE_BROWSER is set, so the browser tests must run", pytrace=False)
    if why:
        pytest.skip(why)
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_url():
    demo, url = serve(DATA)
    yield url
    demo.close()


def test_token_view_rollout_selection_and_injection(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(app_url)

    # the fixture run opens on its latest OPD snapshot: coloured token spans and the per-position chart
    page.wait_for_selector("#student-heatmap .s2d-tok", timeout=60_000)
    page.wait_for_selector("#teacher-heatmap .s2d-tok")
    spans = page.locator("#student-heatmap .s2d-tok")
    assert spans.count() > 10
    colours = page.eval_on_selector_all("#student-heatmap .s2d-tok",
                                        "els => [...new Set(els.map(e => getComputedStyle(e).backgroundColor))]")
    assert len(colours) > 3
    bars = "#token-chart .js-plotly-plot .trace.bars .point path"
    page.wait_for_selector(bars, state="attached", timeout=30_000)
    assert page.locator(bars).count() == 2 * spans.count()  # reverse KL and implicit reward at every position

    # hovering a token shows its numbers (the CSS tooltip shows the span's data-tip attribute)
    tok = spans.nth(3)
    tok.hover()
    tip = tok.evaluate("el => getComputedStyle(el, '::after').content")
    value = tok.get_attribute("data-v")
    assert "p student" in tip and "reverse KL" in tip and "teacher top" in tip and f"implicit reward {value}" in tip

    # Rollouts tab: pick the row whose completion holds a <script> tag; it opens in the token view
    page.get_by_role("tab", name="Rollouts").click()
    cell = page.locator("#rollout-table [role=gridcell]").filter(has_text="alert(1)").first
    cell.scroll_into_view_if_needed()
    assert "<script>alert(1)</script>" in cell.inner_text()  # the table shows it as text too
    cell.click()
    page.wait_for_function("() => (document.querySelector('#student-heatmap .s2d-tokens') || {}).innerText"
                           "?.startsWith('<script>alert(1)</script>')", timeout=30_000)
    assert page.get_by_role("tab", name="Token view").get_attribute("aria-selected") == "true"
    assert page.locator("#student-heatmap script").count() == 0
    assert page.locator("#status").inner_text().strip() == ""
    page.wait_for_timeout(300)
    assert dialogs == []  # no alert() ran
    page.close()


def test_sorted_rollout_table_opens_the_clicked_row(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    page.wait_for_selector("#student-heatmap .s2d-tok", timeout=60_000)
    page.get_by_role("tab", name="Rollouts").click()
    header = page.locator("#rollout-table th[title='sum_implicit_reward']")
    header.hover()
    header.locator("button[aria-label='Open cell menu']").click()
    page.get_by_text("Sort ascending").first.click()
    from s2dlab.dashboard import data as cb

    lowest = cb.rollout_table(cb.Store(DATA), "fixture_run", "opd", None)["sum_implicit_reward"].min()
    first_row = page.locator("#rollout-table .virtual-row[data-index='0'] [role=gridcell]")
    page.wait_for_function("([low]) => { const c = document.querySelectorAll("
                           "\"#rollout-table .virtual-row[data-index='0'] [role=gridcell]\"); "
                           "return c.length && Math.abs(parseFloat(c[5].innerText) - low) < 1e-3 }",
                           arg=[float(lowest)], timeout=15_000)
    values = first_row.all_inner_texts()
    first_row.nth(5).click()
    head = page.locator("#student-heatmap .s2d-head").first
    head.wait_for(timeout=30_000)
    page.wait_for_function(f"() => document.querySelector('#student-heatmap .s2d-head')?.innerText"
                           f".includes('Σ implicit reward {lowest:+.2f}')", timeout=30_000)
    assert f"sample #{values[1]}" in head.inner_text()
    page.close()


def test_corrupt_run_shows_a_message(browser, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{truncated")
    shutil.copytree(DATA / "fixture_run" / "opd", tmp_path / "broken" / "opd")
    demo, url = serve(tmp_path)
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('Cannot open run')",
                               timeout=60_000)
        text = page.locator("#status").inner_text()
        assert "corrupt JSON" in text and "Traceback" not in text
        page.close()
    finally:
        demo.close()


@pytest.fixture(scope="module")
def byte_run(tmp_path_factory):
    """A run of rows scored with a byte-level BPE tokenizer that splits ≥, →, 答案, 🙂 and ü into bytes."""
    from s2dlab.runs import create_run
    from tests.token_data import TEXTS, byte_level_tokenizer, scored_rows

    tok = byte_level_tokenizer()
    root = tmp_path_factory.mktemp("bytes")
    run = create_run(root / "bytes", {}, 0)
    tok.save_pretrained(run.path / "tokenizer")
    rows = scored_rows(tok, TEXTS)
    run.write_rollouts("opd", 0, rows)
    return root, tok, rows


def test_byte_level_heatmap_text_is_the_decoded_completion(browser, byte_run):
    root, tok, rows = byte_run
    demo, url = serve(root)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#student-heatmap .s2d-tok", timeout=60_000)
        box = page.locator("#student-heatmap .s2d-tokens")
        # the page's text is the decoded completion, whole characters, special token shown by name
        assert box.evaluate("el => el.textContent") == tok.decode(rows[0]["token_ids"]) == rows[0]["completion"] + (
            "<|im_end|>")
        assert "\ufffd" not in box.inner_text()
        assert box.inner_text() == tok.decode(rows[0]["token_ids"])  # as rendered: newlines and spaces kept
        spans = page.locator("#student-heatmap .s2d-tok")
        assert spans.count() == len(rows[0]["span_texts"]) < rows[0]["length"]
        multi = page.locator("#student-heatmap .s2d-multi").first
        multi.hover()
        tip = multi.evaluate("el => getComputedStyle(el, '::after').content")
        assert "tokens #" in tip and "summed implicit reward" in tip and "\\\\x" in tip

        # the markup row, opened from the Rollouts tab: shown as text, nothing runs
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.get_by_role("tab", name="Rollouts").click()
        page.locator("#rollout-table [role=gridcell]").filter(has_text="über").first.click()
        page.wait_for_function("() => (document.querySelector('#student-heatmap .s2d-tokens') || {}).textContent"
                               "?.startsWith('<script>')", timeout=30_000)
        assert box.evaluate("el => el.textContent") == tok.decode(rows[2]["token_ids"])
        assert page.locator("#student-heatmap script, #student-heatmap .s2d-tokens b").count() == 0
        page.wait_for_timeout(300)
        assert dialogs == []
        page.close()
    finally:
        demo.close()
