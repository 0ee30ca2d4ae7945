"""One journey through the app in a real headless browser (Debian's Chromium driven by Playwright).

    python -m pytest -m browser tests/test_browser.py

Never downloads a browser: without /usr/bin/chromium (`apt-get install chromium`) or the playwright package the
tests skip.
"""

import os
import shutil
import socket
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DATA = Path(__file__).parent / "data"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(root):
    from app.app import build_demo

    demo = build_demo(root)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def browser():
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

    # hovering a token shows its numbers (the CSS tooltip reads the span's data-* attributes)
    tok = spans.nth(3)
    tok.hover()
    tip = tok.evaluate("el => getComputedStyle(el, '::after').content")
    ps = tok.get_attribute("data-ps")
    assert "p student" in tip and "reverse KL" in tip and "teacher top" in tip and ps in tip

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
    from app import callbacks as cb

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
