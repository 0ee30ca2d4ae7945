"""Journeys through the dashboard in a real headless browser (Debian's Chromium driven by Playwright).

    python -m pytest -m browser tests/test_browser.py
    S2DLAB_SCREENSHOTS=docs/img python -m pytest -m browser tests/test_browser.py   # also save screenshots

Each view is opened on the committed fixture run and answers the click it is built around: a token of the student
rollout (counterfactual branches), a point of a stage curve (its snapshot and largest tokens), a rollout of the
token lens, the estimator button, the export button; bad input shows a sentence in the status line of its panel.
Then the room's journeys on a whole `s2dlab run --ablations` (every model kept, tests/dashboard_runs.py), at a
laptop's 1366 x 768: two participants sharing the model queue, roles and seeds in the Live tab, errors beside
their cause and damaged files, the colour scale of each quantity, the tables and folded Stages tab, the export,
and a run followed while it is written.

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
SCREENSHOTS = os.environ.get("S2DLAB_SCREENSHOTS")


def shot(page, name: str, selector: str | None = None, top: str | None = None) -> None:
    """Save a screenshot (of `selector`, else the window, scrolled so that `top` is at its top edge) under
    $S2DLAB_SCREENSHOTS, when it is set, as a 256-colour PNG (a fraction of the size; the interface's flat colours
    and the colour bars' steps look the same)."""
    if not SCREENSHOTS:
        return
    from io import BytesIO

    from PIL import Image

    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    if top:
        page.locator(top).first.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
    target = page.locator(selector).first if selector else page
    image = Image.open(BytesIO(target.screenshot())).convert("RGB")
    image.quantize(256, dither=Image.Dither.NONE).save(Path(SCREENSHOTS) / f"{name}.png", optimize=True)


def status(page, line: str = "#status") -> str:
    """The message of a status line (`#status` above the tabs, or a panel's own: `#branch-status`,
    `#lens-status`, ...), its markdown without the progress timer Gradio draws over it while a request is in
    flight, once no request is in flight."""
    page.wait_for_function(f"() => {{ const t = document.querySelector('{line} [data-testid=status-tracker]'); "
                           "return !t || t.classList.contains('hide') }", timeout=60_000)
    return page.locator(f"{line} [data-testid=markdown]").inner_text().strip()


def grid_rows(page, table: str) -> int:
    """Data rows of a Gradio Dataframe (`aria-rowcount` counts the header row too; rows render virtually)."""
    page.wait_for_selector(f"{table} .virtual-row", state="attached", timeout=60_000)
    return int(page.locator(f"{table} [role=grid]").get_attribute("aria-rowcount")) - 1


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
    from s2dlab.views.dashboard import build_demo

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


LAPTOP = {"width": 1366, "height": 768}


def open_section(page, section: str) -> None:
    """Unfold a section of the Stages tab (`#c1-section`, ...) when it is folded."""
    button = page.locator(f"{section} > button.label-wrap").first
    if "open" not in (button.get_attribute("class") or "").split():
        button.click()
    page.wait_for_function(f"() => document.querySelector('{section} > button.label-wrap')?.classList"
                           ".contains('open')", timeout=10_000)


def open_app(browser, url, viewport=None):
    page = browser.new_page(viewport=viewport or LAPTOP, accept_downloads=True)
    page.goto(url)
    # the fixture run opens on its latest OPD snapshot: coloured token spans
    page.wait_for_selector("#student-heatmap .s2d-tok", timeout=90_000)
    page.wait_for_selector("#teacher-heatmap .s2d-tok")
    return page


def test_token_view_hover_and_rollout_selection(browser, app_url):
    page = open_app(browser, app_url)
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

    # Rollouts tab: the last row opens in the token view
    page.get_by_role("tab", name="Rollouts").click()
    from s2dlab.views.dashboard import data as cb

    table = cb.rollout_table(cb.Store(DATA), "fixture_run", "opd", None)
    target = table[table["policy"] == "student"].iloc[-1]
    row = page.locator("#rollout-table .virtual-row").filter(has_text=str(target["completion"])[:20]).first
    row.scroll_into_view_if_needed()
    row.locator("[role=gridcell]").nth(4).click()
    page.wait_for_function(f"() => document.querySelector('#student-heatmap .s2d-head')?.innerText"
                           f".includes('sample #{int(target['sample_idx'])}') && document.querySelector("
                           f"'#problem-dd input')?.value.startsWith('{target['prompt_id']}')", timeout=30_000)
    assert page.get_by_role("tab", name="Token view").get_attribute("aria-selected") == "true"
    assert status(page) == ""
    page.close()


def test_sorted_rollout_table_opens_the_clicked_row(browser, app_url):
    page = browser.new_page(viewport=LAPTOP)
    page.goto(app_url)
    page.wait_for_selector("#student-heatmap .s2d-tok", timeout=60_000)
    page.get_by_role("tab", name="Rollouts").click()
    header = page.locator("#rollout-table th[title='sum_implicit_reward']")
    header.hover()
    header.locator("button[aria-label='Open cell menu']").click()
    page.get_by_text("Sort ascending").first.click()
    from s2dlab.views.dashboard import data as cb

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


def pick(page, dropdown: str, option: str) -> None:
    """Choose the option of a Gradio dropdown whose label starts with `option`."""
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option").filter(has_text=option).first.click()


def correct_rollout_with_models():
    """(stage, step, prompt_id, sample_idx) of the first correct student rollout whose snapshot models are saved."""
    from s2dlab.views.dashboard import data as cb
    from s2dlab.views.dashboard import live

    store = cb.Store(DATA)
    for stage in store.snapshot_stages("fixture_run"):
        for step in store.steps("fixture_run", stage):
            try:
                live.snapshot_models(store, "fixture_run", stage, step)
            except cb.AppError:
                continue
            table = cb.rollout_table(store, "fixture_run", stage, step, correct="correct", policy="student")
            if len(table):
                return stage, step, table["prompt_id"].iloc[0], int(table["sample_idx"].iloc[0])
    return None


def test_clicking_a_token_samples_counterfactual_branches(browser, app_url):
    page = open_app(browser, app_url)
    target = correct_rollout_with_models()
    if target:  # a rollout the student got right: its branches are worth looking at
        from s2dlab.views.dashboard import data as cb

        stage, step, pid, idx = target
        last = cb.Store(DATA).steps("fixture_run", stage)[-1]
        pick(page, "#stage-dd", stage)  # opens the stage's latest snapshot
        page.wait_for_function(f"() => document.querySelector('#stage-dd input')?.value === '{stage}' && "
                               f"document.querySelector('#step-dd input')?.value === '{last}'", timeout=30_000)
        if step != last:
            page.locator("#step-dd input").click()
            page.get_by_role("option", name=str(step), exact=True).click()
            page.wait_for_function(f"() => document.querySelector('#step-dd input')?.value === '{step}'")
        pick(page, "#problem-dd", pid)
        page.wait_for_function(f"() => document.querySelector('#problem-dd input')?.value.startsWith('{pid}')")
        pick(page, "#sample-dd", f"#{idx} ")
        page.wait_for_function(f"() => document.querySelector('#student-heatmap .s2d-head')?.innerText"
                               f".includes('sample #{idx}') && document.querySelector('#student-heatmap .s2d-head')"
                               f"?.innerText.includes('✓ correct')", timeout=30_000)
    tok = page.locator("#student-heatmap .s2d-tok").nth(2)
    tok.click()
    page.wait_for_function("() => document.querySelector('#branch-info')?.innerText.includes('Position 2 ')",
                           timeout=30_000)
    assert page.locator("#branch-pos input").input_value() == "2"
    assert "s2d-picked" in (tok.get_attribute("class") or "")
    boxes = page.locator("#branch-cands input[type=checkbox]")
    assert boxes.count() >= 2 and page.locator("#branch-cands input:checked").count() >= 2
    page.locator("#branch-btn").click()
    page.wait_for_selector("#branch-plot .js-plotly-plot .trace.bars", state="attached", timeout=90_000)
    page.wait_for_function("() => document.querySelector('#branch-note')?.innerText.includes('Sampled from')",
                           timeout=30_000)
    assert grid_rows(page, "#branch-table") == page.locator("#branch-cands input:checked").count()
    assert "student's token" in page.locator("#branch-table").inner_text() and status(page, "#branch-status") == ""
    # the probe over the snapshot: a row per quantity, inside the window (side by side it ran off the right edge)
    page.locator("#probe-btn").click()
    page.wait_for_function("() => document.querySelector('#probe-note')?.innerText.includes('continuations per "
                           "side')", timeout=180_000)
    from s2dlab.views.dashboard import live

    assert grid_rows(page, "#probe-table") == len(live.PROBE_COLUMNS) and misfits(page, ["#probe-table"]) == []
    assert status(page, "#branch-status") == ""
    page.close()


def test_export_downloads_one_self_contained_file(browser, app_url, tmp_path):
    page = open_app(browser, app_url)
    with page.expect_download() as download:
        page.locator("#export-token").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert path.suffix == ".html" and "<script" not in text.lower() and "https://" not in text
    assert text.count('class="s2d-heatmap"') == 2
    # the file opens on its own (no server) and shows the same tokens
    shown = page.locator("#student-heatmap .s2d-tokens").inner_text()
    page.goto(path.as_uri())
    assert page.locator(".s2d-tokens").first.inner_text() == shown
    page.close()


def test_stages_tab_renders_the_summary_and_a_curve_click_opens_its_snapshot(browser, app_url):
    import json

    summary = json.loads((DATA / "fixture_run" / "summary.json").read_text())
    page = open_app(browser, app_url)
    page.get_by_role("tab", name="Stages").click()
    assert grid_rows(page, "#arms-table") == len(summary["arms"]) + 1  # and the base student
    assert grid_rows(page, "#claims-table") == len(summary["claims"])
    for section in ("#c1-section", "#c2-section", "#quad-section", "#curves-section"):
        open_section(page, section)
    # the verdict's markdown shows the request's timer ("0.2s") until the Stages tab's load answers
    first_line = summary["c1"]["verdict"].splitlines()[0]
    page.wait_for_function("([sel, want]) => (document.querySelector(sel)?.innerText || '').trim().startsWith(want)",
                           arg=["#c1-verdict", first_line[:40]], timeout=60_000)
    assert page.locator("#c1-verdict").inner_text().strip().splitlines()[0] == first_line
    for plot in ("#arms-plot", "#c1-plot", "#c2-plot", "#quad-plot"):
        page.wait_for_selector(f"{plot} .js-plotly-plot .main-svg", state="attached", timeout=30_000)
    points = page.locator("#stage-curves .js-plotly-plot .scatterlayer .trace .point")
    points.first.wait_for(state="attached", timeout=30_000)
    # the opd curve's last point
    opd = page.locator("#stage-curves .js-plotly-plot .scatterlayer .trace").filter(
        has=page.locator(".point")).nth(2)
    opd.locator(".point").last.click(force=True)
    page.wait_for_function("() => document.querySelector('#drill-note')?.innerText.includes('snapshot step')",
                           timeout=30_000)
    note = page.locator("#drill-note").inner_text()
    stage = note.split(" · ")[0].strip()
    step = int(note.split("snapshot step ")[1].split()[0])
    assert page.locator("#stage-dd input").input_value() == stage
    assert page.locator("#step-dd input").input_value() == str(step)
    assert grid_rows(page, "#top-tokens") > 0
    # a top token opens its rollout in the token view
    page.locator("#top-tokens .virtual-row").first.locator("[role=gridcell]").nth(4).click()
    page.wait_for_function("() => document.querySelector('[role=tab][aria-selected=true]')?.innerText"
                           ".includes('Token view')", timeout=30_000)
    page.wait_for_function("() => document.querySelector('#branch-info')?.innerText.includes('Position')",
                           timeout=30_000)
    page.close()


def test_token_lens_tab(browser, app_url):
    page = open_app(browser, app_url)
    page.get_by_role("tab", name="Token lens").click()
    page.wait_for_selector("#lens-table .s2d-lens tbody tr", timeout=60_000)
    first = page.locator("#lens-table .s2d-lens").get_attribute("data-n")
    assert page.locator("#lens-table thead th[data-i]").count() == int(first)
    # pick another rollout: the table follows
    page.locator("#lens-rollout").click()
    option = page.get_by_role("option").nth(1)
    key = option.inner_text().split(" ")[0]
    option.click()
    page.wait_for_function("(k) => (document.querySelector('#lens-table .s2d-lens > div')?.innerText || '')"
                           ".startsWith(k + ' ')", arg=key, timeout=30_000)
    assert page.locator("#lens-rollout input").input_value().startswith(key + " ")
    assert status(page, "#lens-status") == ""
    page.close()


def test_estimator_panel(browser, app_url):
    page = open_app(browser, app_url)
    page.get_by_role("tab", name="Estimators").click()
    page.locator("#est-btn").click()
    page.wait_for_selector("#est-plot .js-plotly-plot .main-svg", state="attached", timeout=90_000)
    from s2dlab.instruments.estimators import estimator_names

    assert grid_rows(page, "#est-bias") == len(estimator_names())
    assert "re-scored by" in page.locator("#est-note").inner_text() and status(page, "#est-status") == ""
    page.close()


def test_bad_input_gets_a_sentence(browser, app_url):
    page = open_app(browser, app_url)
    page.locator("#branch-pos input").fill("999")
    page.locator("#branch-pos input").press("Enter")
    page.wait_for_function("() => document.querySelector('#branch-status')?.innerText.includes('past the end')",
                           timeout=30_000)
    assert "Traceback" not in status(page, "#branch-status")
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
    from s2dlab.core.runs import create_run
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
        page = browser.new_page(viewport=LAPTOP)
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

        # this run has no token lens: the tab says which command computes it
        page.get_by_role("tab", name="Token lens").click()
        page.wait_for_function("() => document.querySelector('#lens-status')?.innerText.includes('s2dlab lens')",
                               timeout=30_000)
        assert "no token lens yet" in status(page, "#lens-status")
        page.close()
    finally:
        demo.close()


# --------------------------------------------------------------------------------------------------------------
# a room on a whole `s2dlab run --ablations` (every model kept), at a laptop's 1366 x 768


@pytest.fixture(scope="module")
def full_root(tmp_path_factory):
    from tests.dashboard_runs import full_run_root

    return full_run_root(tmp_path_factory)


@pytest.fixture(scope="module")
def full_url(full_root, browser):
    demo, url = serve(full_root)
    yield url
    demo.close()


def open_full(browser, url):
    page = open_app(browser, url, LAPTOP)
    page.wait_for_function("() => document.querySelector('#run-dd input')?.value === 'ablations'")
    return page


def pick_student_token(page, position: int = 1) -> None:
    page.locator("#student-heatmap .s2d-tok").nth(position).click()
    page.wait_for_function(f"() => document.querySelector('#branch-info')?.innerText.includes('Position {position} ')",
                           timeout=30_000)


# "shown" when the text naming a request's place in the queue lies inside its status line's box, else where it is
QUEUE_PLACE_SHOWN = """(line) => {
    const box = document.querySelector(line), b = box.getBoundingClientRect();
    const text = [...box.querySelectorAll('*')].find((e) => !e.children.length && /queue:/.test(e.textContent));
    if (!text) return 'no queue text';
    const r = text.getBoundingClientRect();
    return r.height > 0 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1 && r.right <= b.right + 1 ? 'shown'
        : `"${text.textContent}" at ${r.top}..${r.bottom} x ${r.left}..${r.right}, line at ${b.top}..${b.bottom} x `
          + `${b.left}..${b.right}: ${box.outerHTML.slice(0, 1500)}`;
}"""


def test_two_participants_share_the_model_queue(browser, full_url):
    """One participant's long branch request runs while another's waits in the model queue, its place shown in
    its own branch panel; both then finish, no error anywhere (concurrent model loads broke before)."""
    first, second = open_full(browser, full_url), open_full(browser, full_url)
    for page in (first, second):
        pick_student_token(page)
    # a long request: every candidate, 64 continuations of up to 256 tokens
    first.locator("#branch-cands input[type=checkbox]:not(:checked)").evaluate_all("els => els.forEach(e => e.click())")
    for slider, value in (("#branch-n", "64"), ("#branch-len", "256")):
        box = first.locator(f"{slider} input[type=number]").first
        box.fill(value)
        box.press("Enter")
    first.locator("#branch-btn").click()
    first.wait_for_function("() => !document.querySelector('#branch-status [data-testid=status-tracker]')"
                            "?.classList.contains('hide')", timeout=30_000)
    second.locator("#branch-btn").click()
    second.wait_for_function("() => /queue: *\\d+ *\\/ *\\d+/.test(document.querySelector('#branch-status')"
                             "?.innerText || '')", timeout=30_000)
    # shown, not only written: the place lies inside its status line (an empty status line has no height)
    assert second.evaluate(QUEUE_PLACE_SHOWN, "#branch-status") == "shown"
    shot(second, "queue", top="#branch-cands")
    for page in (first, second):
        page.wait_for_function("() => document.querySelector('#branch-note')?.innerText.includes('Sampled from')",
                               timeout=300_000)
        assert status(page, "#branch-status") == "" and status(page) == ""
        assert grid_rows(page, "#branch-table") >= 2
    assert misfits(first, ["#branch-table"]) == []
    shot(first, "branches", top="#branch-info")
    first.close()
    second.close()


def test_live_offers_checkpoints_by_role_and_draws_a_new_sample_each_click(browser, full_root, full_url):
    from s2dlab.core.runs import open_run
    from tests.dashboard_runs import RUN as FULL

    run = open_run(full_root / FULL)
    teachers = [s for s in run.stages() if run.stage(s).role == "teacher"]
    page = open_full(browser, full_url)
    page.get_by_role("tab", name="Live").click()
    page.wait_for_function("() => document.querySelector('#live-teacher input')?.value === 'teacher_grpo'",
                           timeout=30_000)
    assert page.locator("#live-student input").input_value() == "student_grpo"
    page.locator("#live-teacher input").click()
    offered = [o.replace("✓", "").strip() for o in page.get_by_role("option").all_inner_texts()]
    assert offered == teachers and "raw_teacher.opd" not in offered
    page.keyboard.press("Escape")
    problem = page.locator("#live-problem textarea").input_value()
    assert problem and problem in [r for s in run.stages() if run.rollout_steps(s)
                                   for r in run.rollouts(s)["prompt"]]
    seeds = []
    for _ in range(2):
        page.locator("#live-btn").click()
        page.wait_for_function("(n) => document.querySelectorAll('#live-html .s2d-tok').length && "
                               "document.querySelector('#live-seed input')?.value !== '' && "
                               "!(window.__seeds || []).includes(document.querySelector('#live-seed input').value)",
                               arg=len(seeds), timeout=120_000)
        seed = page.locator("#live-seed input").input_value()
        page.evaluate("(s) => { window.__seeds = [...(window.__seeds || []), s] }", seed)
        assert f"seed {seed})" in page.locator("#live-html .s2d-head").first.inner_text()
        seeds.append(seed)
    assert seeds[0] != seeds[1] and status(page, "#live-status") == ""
    shot(page, "live", top="#live-student")
    page.close()


def test_errors_show_beside_their_cause_and_clear_with_a_new_input(browser, full_url):
    page = open_full(browser, full_url)
    for value, said in (("-3", "before the start"), ("2.5", "not a whole number")):
        page.locator("#branch-pos input").fill(value)
        page.locator("#branch-pos input").press("Enter")
        page.wait_for_function(f"() => document.querySelector('#branch-status')?.innerText.includes('{said}')",
                               timeout=30_000)
    # beside the panel that caused it, not at the top of the page
    where = page.locator("#branch-status").bounding_box()
    button = page.locator("#branch-btn").bounding_box()
    assert abs(where["y"] - button["y"]) < 200 and status(page) == ""
    page.locator("#branch-pos input").fill("1")  # a new input clears the old sentence at once
    page.wait_for_function("() => !document.querySelector('#branch-status')?.innerText.trim()", timeout=10_000)
    # a sample index beyond the table, in the Compare tab's own status line
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-sample input").fill("7")
    page.locator("#compare-sample input").press("Enter")
    page.wait_for_function("() => document.querySelector('#compare-status')?.innerText.includes("
                           "'is in no stage')", timeout=30_000)
    page.close()


def test_a_damaged_snapshot_disables_only_its_view_and_names_the_file(browser, full_root, tmp_path):
    from tests.dashboard_runs import RUN as FULL

    root = tmp_path / "runs"
    shutil.copytree(full_root / FULL, root / FULL, ignore=shutil.ignore_patterns("*.safetensors"))
    from s2dlab.core.runs import open_run

    run = open_run(root / FULL)
    last = run.rollout_path("opd", run.rollout_steps("opd")[-1])
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    demo, url = serve(root)
    try:
        page = browser.new_page(viewport=LAPTOP)
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#token-status')?.innerText.includes('Cannot read')",
                               timeout=90_000)
        assert last.name in page.locator("#token-status").inner_text()
        assert page.locator("#stage-dd input").input_value() == "opd" and status(page) == ""
        page.get_by_role("tab", name="Stages").click()
        assert grid_rows(page, "#arms-table") > 5 and status(page, "#stages-status") == ""
        page.close()
    finally:
        demo.close()


def test_each_quantity_is_coloured_on_its_own_scale(browser, full_url):
    page = open_full(browser, full_url)
    legend = "#student-heatmap .s2d-legend"
    assert page.locator(legend).get_attribute("data-scale") == "diverging"
    assert "diverging around 0" in page.locator(legend).inner_text()
    page.get_by_label("reverse KL").first.check()
    page.wait_for_function(f"() => document.querySelector('{legend}')?.dataset.scale === 'sequential'",
                           timeout=30_000)
    assert "sequential from 0" in page.locator(legend).inner_text()
    # one hue: every token is a shade of purple (blue and red above green), none of the red-blue scale's blues
    colours = page.eval_on_selector_all("#student-heatmap .s2d-tok", "els => els.map(e => "
                                        "getComputedStyle(e).backgroundColor.match(/\\d+/g).map(Number))")
    assert colours and all(b >= g and r >= g - 2 for r, g, b in colours)
    shot(page, "token_view_kl", "#student-heatmap")
    page.get_by_role("tab", name="Token lens").click()
    page.wait_for_selector("#lens-table .s2d-lens", timeout=60_000)
    page.get_by_label("reverse KL").last.check()
    page.wait_for_function("() => document.querySelector('#lens-table .s2d-legend')?.dataset.scale === "
                           "'sequential'", timeout=30_000)
    page.close()


def misfits(page, tables) -> list[str]:
    """What does not fit in the tables `tables` (ids): columns wider together than their box (the table scrolls
    sideways, its last columns cut at the edge), and headers or cells whose text is wider than their column (a word
    cut)."""
    return page.evaluate("""(ids) => ids.flatMap((id) => {
        const t = document.querySelector(id), box = t && t.querySelector('.virtual-table-viewport');
        if (!box) return [`${id}: not shown`];
        const out = box.scrollWidth > box.clientWidth + 1
            ? [`${id}: ${box.scrollWidth} px of columns in a ${box.clientWidth} px box`] : [];
        return out.concat([...t.querySelectorAll('th .header, td span')]
            .filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => `${id}: ${e.innerText}`));
    })""", list(tables))


def test_readable_at_1366_by_768(browser, full_url, tmp_path):
    page = open_full(browser, full_url)
    page.wait_for_selector("#token-chart .js-plotly-plot .main-svg", state="attached", timeout=30_000)
    shot(page, "token_view", top="[role=tablist]")
    # the export: the problem, both rollouts and the chart, one file
    with page.expect_download() as download:
        page.locator("#export-token").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    problem = page.locator("#problem-dd input").input_value().split(": ", 1)[1].split(" [")[0].rstrip("…")
    assert problem in text and text.count('class="s2d-heatmap"') == 2 and text.count("<svg") == 1
    assert text.count("<rect ") == 2 * int(page.locator("#student-heatmap .s2d-heatmap").get_attribute("data-n"))
    page.get_by_role("tab", name="Rollouts").click()
    grid_rows(page, "#rollout-table")
    # every table fits its box at 1366 px, headers and cells wrapping between whole words
    assert misfits(page, ["#rollout-table"]) == []
    shot(page, "rollouts", top="[role=tablist]")
    page.get_by_role("tab", name="Stages").click()
    assert grid_rows(page, "#arms-table") > 5
    sections = page.locator(".gr-accordion[id$='-section']")
    assert sections.count() == 6
    for name in ("c1", "c2", "quad"):
        open_section(page, f"#{name}-section")
        page.wait_for_selector(f"#{name}-plot .js-plotly-plot .main-svg", state="attached", timeout=30_000)
    grid_rows(page, "#c1-table")
    grid_rows(page, "#c2-table")
    assert misfits(page, ["#arms-table", "#claims-table", "#c1-table", "#c2-table"]) == []
    for name in ("arms", "claims", "c1", "c2", "quad"):
        shot(page, f"stages_{name}", f"#{name}-section")
    # a point of a curve opens its snapshot's largest tokens
    open_section(page, "#curves-section")
    page.locator("#stage-curves .js-plotly-plot .scatterlayer .trace .point").first.wait_for(state="attached",
                                                                                            timeout=30_000)
    opd = page.locator("#stage-curves .js-plotly-plot .scatterlayer .trace").filter(
        has=page.locator(".point")).nth(2)
    opd.locator(".point").last.click(force=True)
    page.wait_for_function("() => document.querySelector('#drill-note')?.innerText.includes('snapshot step')",
                           timeout=30_000)
    assert grid_rows(page, "#top-tokens") > 0 and misfits(page, ["#top-tokens"]) == []
    page.locator("#top-tokens").evaluate("el => el.scrollIntoView({block: 'end'})")
    shot(page, "drill_down")
    page.get_by_role("tab", name="Token lens").click()
    page.wait_for_selector("#lens-table .s2d-lens tbody tr", timeout=60_000)
    shot(page, "token_lens", top="[role=tablist]")
    page.get_by_role("tab", name="Estimators").click()
    page.locator("#est-btn").click()
    page.wait_for_selector("#est-plot .js-plotly-plot .main-svg", state="attached", timeout=120_000)
    assert misfits(page, ["#est-bias"]) == []
    shot(page, "estimators", top="[role=tablist]")
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-html .s2d-tok", timeout=60_000)
    shot(page, "compare", top="[role=tablist]")
    page.close()


def test_an_empty_runs_folder_says_how_to_make_a_run(browser, tmp_path):
    demo, url = serve(tmp_path)
    try:
        page = browser.new_page(viewport=LAPTOP)
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#status')?.innerText.includes('s2dlab demo')",
                               timeout=60_000)
        said = status(page)
        assert "s2dlab run" in said and "\n" not in said
        page.get_by_role("tab", name="Stages").click()
        headers = page.locator("#arms-table th").all_inner_texts()
        assert headers and headers[0].strip().startswith("arm")  # named columns, not "1 2 3"
        page.close()
    finally:
        demo.close()


def test_a_run_in_progress_is_followed(browser, tmp_path):
    """A run being written: new snapshots and a new stage appear within a few seconds, the running stage marked,
    the user's chosen stage kept."""
    from s2dlab.core.runs import open_run

    source = open_run(DATA / "fixture_run")
    keep = {"run.json", "tokenizer", "base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd"}
    root = tmp_path / "runs"
    (root / "live").mkdir(parents=True)
    for p in source.path.iterdir():
        if p.name in keep:
            (shutil.copytree if p.is_dir() else shutil.copy)(p, root / "live" / p.name)
    run = open_run(root / "live")
    last = run.rollout_steps("opd")[-1]
    run.rollout_path("opd", last).unlink()
    run.update_stage("opd", status="running")
    demo = build_live_demo(root)
    try:
        page = browser.new_page(viewport=LAPTOP)
        page.goto(demo[1])
        page.wait_for_selector("#student-heatmap .s2d-tok", timeout=90_000)
        assert "opd is running" in page.locator("#follow").inner_text()
        pick(page, "#stage-dd", "fkl_warmup")
        page.wait_for_function("() => document.querySelector('#stage-dd input')?.value === 'fkl_warmup'")
        rows = source.rollouts("opd", last).to_dict("records")
        run.write_rollouts("opd", last, rows)
        run.update_stage("opd", status="done")
        run.update_stage("student_grpo", status="running", role="student", init="opd")
        run.write_rollouts("student_grpo", 0, rows)
        page.wait_for_function("() => document.querySelector('#follow')?.innerText.includes('student_grpo is "
                               "running')", timeout=30_000)
        assert page.locator("#stage-dd input").input_value() == "fkl_warmup"  # the user's choice kept
        shot(page, "follow")
        page.locator("#stage-dd input").click()
        offered = [o.replace("✓", "").strip() for o in page.get_by_role("option").all_inner_texts()]
        assert "student_grpo · running" in offered and "opd" in offered
        page.close()
    finally:
        demo[0].close()


def build_live_demo(root):
    """The app on `root`, looking for new files every second."""
    from s2dlab.views.dashboard import build_demo

    demo = build_demo(root, poll_seconds=1)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"
