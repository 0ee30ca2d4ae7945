"""The dashboard's Map tab in a real headless browser (tests/test_browser.py's set-up: Debian's Chromium driven by
Playwright, never a downloaded browser; skipped without them unless S2DLAB_REQUIRE_BROWSER is set).

The app is pointed at a runs folder holding the committed map (docs/results/map_3seeds.json: the three seeds of
`s2dlab map --out runs/map_3seeds --seeds 3`, as it wrote it) and a damaged one, at a laptop's 1366 x 768: the tab draws
the map's figure and lists every cell with its intervals, a click on a cell's row opens its run folder in the run
picker and the Stages tab, and picking the damaged map says so in the tab's own status line, cleared by picking a
good one again.

    python -m pytest -m browser tests/test_browser_map.py
    S2DLAB_SCREENSHOTS=docs/img python -m pytest -m browser tests/test_browser_map.py   # also a screenshot
"""

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from s2dlab.core.runs import create_run

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.test_browser import LAPTOP, browser, grid_rows, pick, serve, shot, status  # noqa: F401

MAP = Path(__file__).resolve().parents[1] / "docs" / "results" / "map_3seeds.json"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def map_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    (root / "damaged").mkdir()
    text = MAP.read_bytes()
    (root / "damaged" / "map.json").write_bytes(text[: len(text) // 2])  # a truncated write
    time.sleep(0.05)
    (root / "map_3seeds").mkdir()
    shutil.copyfile(MAP, root / "map_3seeds" / "map.json")  # the newest map: the one the tab opens on
    for c in json.loads(MAP.read_text())["cells"]:  # the cells' run folders (empty runs: the map's are not committed)
        for run in c["runs"]:
            create_run(root / "map_3seeds" / run, {}, 0)
    demo, url = serve(root)
    yield url
    demo.close()


def test_the_map_tab_draws_the_committed_map_and_names_a_damaged_one(browser, map_url):  # noqa: F811
    m = json.loads(MAP.read_text())
    page = browser.new_page(viewport=LAPTOP)
    page.goto(map_url)
    page.get_by_role("tab", name="Map").click()
    page.wait_for_selector("#map-plot .js-plotly-plot .heatmaplayer", timeout=60_000)
    assert status(page, "#map-status") == ""
    assert page.locator("#map-dd input").input_value() == "map_3seeds"
    note = page.locator("#map-note").inner_text()
    n = len(m["grid"]["teachers"]) * len(m["grid"]["students"])
    assert f"{len(m['cells'])} of {n} cells" in note and m["command"] in note
    # the heatmap prints every cell's gain as map_figure writes it; the table has one row per cell
    texts = page.eval_on_selector_all("#map-plot .heatmaplayer text", "els => els.map(e => e.textContent)")
    for c in m["cells"]:
        assert any(t.startswith(f"{100 * c['gain']['mean']:+.1f}") for t in texts), (c["teacher"], c["student"])
    assert grid_rows(page, "#map-table") == len(m["cells"])
    first = page.locator("#map-table .virtual-row[data-index='0'] [role=gridcell]").all_inner_texts()
    assert first[:2] == [m["cells"][0]["teacher"], m["cells"][0]["student"]]
    assert first[-1].split(", ") == [f"map_3seeds/{r}" for r in m["cells"][0]["runs"]]  # the cell's run folders
    shot(page, "map_dashboard", "#map-plot")

    # a click on the last cell's row opens its first run folder in the run picker and shows the Stages tab
    last = m["cells"][-1]
    row = page.locator("#map-table .virtual-row").filter(has_text=f"map_3seeds/{last['runs'][0]}").first
    row.scroll_into_view_if_needed()
    row.locator("[role=gridcell]").first.click()
    page.wait_for_function("() => document.querySelector('#run-dd input')?.value === "
                           f"'map_3seeds/{last['runs'][0]}'", timeout=30_000)
    assert page.get_by_role("tab", name="Stages").get_attribute("aria-selected") == "true"
    assert status(page, "#map-status") == ""
    page.get_by_role("tab", name="Map").click()

    pick(page, "#map-dd", "damaged")
    said = status(page, "#map-status")
    assert said.startswith("⚠ Cannot read the map 'damaged'") and "corrupt JSON" in said
    page.wait_for_function("() => !document.querySelector('#map-plot .heatmaplayer')", timeout=30_000)
    pick(page, "#map-dd", "map_3seeds")
    page.wait_for_selector("#map-plot .js-plotly-plot .heatmaplayer", timeout=30_000)
    assert status(page, "#map-status") == ""
    page.close()
