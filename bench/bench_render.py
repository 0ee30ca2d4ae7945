"""How long a long rollout takes to show: server-side rendering of the token heatmap, the token lens table and the
per-position chart, and the time Chromium takes to paint them.

    python bench/bench_render.py                       # 512, 2,048 and 8,192 tokens; ~1 minute on 2 cores
    python bench/bench_render.py --tokens 8192 --no-browser --pairs 60

Server side: `viz.rollout_heatmap_html` (every token with its hover data), `viz.lens_html` (the token lens of one
rollout under `--pairs` checkpoint pairs, default 16) and `viz.per_token_figure` plus the figure's JSON (what
Gradio sends), median of `--repeats` runs. Browser: `page.set_content` of a page holding the
heatmap until its last token span is laid out and two animation frames have passed; for the chart, a page with
plotly.js already loaded (inlined, nothing is fetched) times `JSON.parse` + `Plotly.newPlot` + two frames inside the
page. Uses Debian's Chromium at /usr/bin/chromium through Playwright and never downloads a browser.

The synthetic row has no stored display spans, so every token is a span of its own: the most spans, and the most
hover text, a rollout of that length can have.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s2dlab.views import viz  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VOCAB = list("0123456789+-=\\{}boxed ") + ["\n", "é", "→", "<", ">", "&", "the", " step", "<|im_end|>"]


def synthetic_row(n: int, seed: int = 0, k: int = 5) -> dict:
    """A scored rollout row of `n` tokens with every per-token column the run store holds."""
    rng = random.Random(seed)
    ids = [rng.randrange(len(VOCAB)) for _ in range(n)]
    s_lp = [math.log(rng.uniform(0.05, 1.0)) for _ in range(n)]
    t_lp = [math.log(rng.uniform(0.01, 1.0)) for _ in range(n)]
    return {
        "tokens": [VOCAB[i] for i in ids], "token_ids": ids,
        "student_logprob": s_lp, "teacher_logprob": t_lp,
        "implicit_reward": [t - s for s, t in zip(s_lp, t_lp)],
        "reverse_kl": [rng.expovariate(3.0) for _ in range(n)],
        "forward_kl": [rng.expovariate(3.0) for _ in range(n)],
        "student_entropy": [rng.uniform(0, 2) for _ in range(n)],
        "teacher_entropy": [rng.uniform(0, 2) for _ in range(n)],
        "teacher_topk_ids": [[rng.randrange(len(VOCAB)) for _ in range(k)] for _ in range(n)],
        "teacher_topk_logprobs": [sorted((math.log(rng.uniform(0.01, 1)) for _ in range(k)), reverse=True)
                                  for _ in range(n)],
        "student_topk_ids": [[rng.randrange(len(VOCAB)) for _ in range(k)] for _ in range(n)],
        "student_topk_logprobs": [sorted((math.log(rng.uniform(0.01, 1)) for _ in range(k)), reverse=True)
                                  for _ in range(n)],
    }


def median_ms(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def synthetic_lens(row: dict, pairs: int, seed: int = 1) -> list[dict]:
    """Lens rows of one rollout under `pairs` checkpoint pairs (the columns `s2dlab.instruments.lens` writes)."""
    rng = random.Random(seed)
    n = len(row["tokens"])
    rows = []
    for p in range(pairs):
        reward = [v + rng.gauss(0, 0.5) for v in row["implicit_reward"]]
        rows.append({"teacher": f"teacher_{p % 4}", "student": f"student_{p // 4}", "tokens": row["tokens"],
                     "implicit_reward": reward, "reverse_kl": row["reverse_kl"], "forward_kl": row["forward_kl"],
                     "sum_implicit_reward": sum(reward), "mean_reverse_kl": sum(row["reverse_kl"]) / n})
    flips = [any(r["implicit_reward"][t] > 0 for r in rows) and any(r["implicit_reward"][t] < 0 for r in rows)
             for t in range(n)]
    return [dict(r, sign_change=flips) for r in rows]


def server_side(n: int, repeats: int, pairs: int = 16) -> dict:
    row = synthetic_row(n)
    vocab = dict(enumerate(VOCAB))
    lens = synthetic_lens(row, pairs)
    lens_ms, lens_page = median_ms(lambda: viz.lens_html(lens), repeats)
    html_ms, html = median_ms(lambda: viz.rollout_heatmap_html(row, id_to_text=vocab), repeats)
    fig_ms, fig = median_ms(lambda: viz.per_token_figure(row), repeats)
    json_ms, fig_json = median_ms(lambda: fig.to_json(), repeats)
    return {"n": n, "html_ms": html_ms, "html_bytes": len(html.encode()), "fig_ms": fig_ms, "json_ms": json_ms,
            "json_bytes": len(fig_json.encode()), "html": html, "fig": fig, "lens_ms": lens_ms,
            "lens_bytes": len(lens_page.encode()), "lens": lens_page, "pairs": pairs}


def browser_side(results: list[dict], repeats: int) -> None:
    import plotly.io as pio
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        plotly_only = pio.to_html({"data": [], "layout": {}}, include_plotlyjs=True, full_html=True)

        def paint(doc: str, until: str) -> float:
            t0 = time.perf_counter()
            page.set_content(doc, wait_until="load")
            page.wait_for_function(until, timeout=120_000)
            # one animation frame after layout, so the work is painted, not only parsed
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            return (time.perf_counter() - t0) * 1000

        for r in results:
            n = r["n"]
            doc = f"<!doctype html><meta charset='utf-8'><body>{r['html']}</body>"
            last = (f"() => {{ const s = document.querySelector('.s2d-tok[data-i=\"{n - 1}\"]'); "
                    "return s && s.getBoundingClientRect().height > 0 }")
            r["paint_html_ms"] = statistics.median(paint(doc, last) for _ in range(repeats))
            doc = f"<!doctype html><meta charset='utf-8'><body>{r['lens']}</body>"
            last = (f"() => {{ const c = document.querySelectorAll('.s2d-lens td[data-i=\"{n - 1}\"]'); "
                    "return c.length && c[c.length - 1].getBoundingClientRect().height > 0 }")
            r["paint_lens_ms"] = statistics.median(paint(doc, last) for _ in range(repeats))
        # the chart: plotly.js loaded once (as in the app), then JSON.parse + Plotly.newPlot timed in the page
        page.set_content(plotly_only, wait_until="load")
        page.wait_for_function("() => !!window.Plotly")
        for r in results:
            spec = r["fig"].to_json()
            r["paint_fig_ms"] = statistics.median(page.evaluate(NEWPLOT, spec) for _ in range(repeats))
        browser.close()


NEWPLOT = """async (spec) => {
    const div = document.createElement('div');
    document.body.appendChild(div);
    const t0 = performance.now();
    const fig = JSON.parse(spec);
    await Plotly.newPlot(div, fig.data, fig.layout);
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    const ms = performance.now() - t0;
    Plotly.purge(div);
    div.remove();
    return ms;
}"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[512, 2048, 8192])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=16, help="checkpoint pairs of the token lens table")
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args(argv)

    results = [server_side(n, args.repeats, args.pairs) for n in args.tokens]
    browser = not args.no_browser and Path(CHROMIUM).exists()
    if browser:
        browser_side(results, max(3, args.repeats // 2))
    elif not args.no_browser:
        print(f"({CHROMIUM} missing: browser timings skipped)")

    print(f"{'tokens':>7} | {'heatmap ms':>10} {'µs/tok':>7} {'KiB':>7} | {'lens ms':>7} {'KiB':>6} | {'chart ms':>8} "
          f"{'json ms':>7} {'KiB':>6}" + (f" | {'paint heatmap ms':>16} {'paint lens ms':>13} {'paint chart ms':>14}"
                                          if browser else ""))
    for r in results:
        per_token_us = 1000 * r["html_ms"] / r["n"]
        line = (f"{r['n']:>7} | {r['html_ms']:>10.1f} {per_token_us:>7.2f} {r['html_bytes'] / 1024:>7.0f}"
                f" | {r['lens_ms']:>7.1f} {r['lens_bytes'] / 1024:>6.0f}"
                f" | {r['fig_ms']:>8.1f} {r['json_ms']:>7.1f} {r['json_bytes'] / 1024:>6.0f}")
        if browser:
            line += f" | {r['paint_html_ms']:>16.0f} {r['paint_lens_ms']:>13.0f} {r['paint_fig_ms']:>14.0f}"
        print(line)
    if len(results) > 1:
        a, b = results[0], results[-1]
        ratio = b["n"] / a["n"]
        print(f"\n{b['n']} vs {a['n']} tokens ({ratio:.0f}x): heatmap render {b['html_ms'] / a['html_ms']:.1f}x, "
              f"chart {((b['fig_ms'] + b['json_ms']) / (a['fig_ms'] + a['json_ms'])):.1f}x"
              + (f", heatmap paint {b['paint_html_ms'] / a['paint_html_ms']:.1f}x" if browser else ""))
    print(f"(lens: one rollout under {args.pairs} checkpoint pairs)")
    big = results[-1]
    server = big["html_ms"] + big["fig_ms"] + big["json_ms"]
    print(f"{big['n']} tokens: server side {server:.0f} ms in all"
          + (f"; browser paint of the heatmap is {big['paint_html_ms'] / big['html_ms']:.1f}x its server render"
             if browser else ""))


if __name__ == "__main__":
    main()
