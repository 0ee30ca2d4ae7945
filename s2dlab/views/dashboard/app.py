"""The s2dlab dashboard: browse runs, see where the teacher's dense reward lands token by token.

    s2dlab app runs                        # http://127.0.0.1:7860, no share link
    s2dlab app runs --port 8000 --share --open
    python app/app.py runs                 # the same from a clone (a Hugging Face Space's entry point)

Tabs (one module each under `s2dlab.views.dashboard.tabs`, which builds its components and wires its events):
- Token view: a student rollout beside the teacher's for the same problem, coloured by implicit reward, hover for
  every number; click a token of the student's to sample counterfactual branches there; export the view as one
  self-contained HTML file.
- Rollouts: a snapshot's table; pick a row to open it.
- Stages: the run's summary.json rendered: the arms with intervals and budgets, the paper's predictions, C1 and
  C2 with their intervals, the token quadrants, the curves (click a point: that stage's snapshot, its largest
  |implicit reward| tokens). A folder of seeds shows its aggregate.
- Token lens: one rollout re-scored by every saved checkpoint pair (`s2dlab lens RUN` computes it once).
- Estimators: exact KLs beside k1 / k2 / k3 and top-k truncations per token, bias and spread per snapshot.
- Compare (one problem across stages), Live (sample and score a new problem with saved checkpoints).
- Map: a C1 x C2 map (`s2dlab map --out DIR`) at the runs folder or one level below, from its map.json: the gain
  of the bridge over cold GRPO against C1 and C2, and the cells with their intervals and run folders (a row opens
  its run); a map still being computed is redrawn as its cells land.

The data the tabs show comes from the data layer (`s2dlab.views.dashboard.data`, no gradio). Every handler returns named
outputs and a status message: a missing, empty or corrupt run, a run without checkpoints or lens, or a bad position
shows a sentence there, never a traceback. Everything shown comes from the run store or from the one module that
defines it; nothing is judged here.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from s2dlab.views.dashboard.export import ExportFolder  # noqa: E402
from s2dlab.views.dashboard.store import Store  # noqa: E402
from s2dlab.views.dashboard.tabs.compare import CompareTab  # noqa: E402
from s2dlab.views.dashboard.tabs.estimators import EstimatorsTab  # noqa: E402
from s2dlab.views.dashboard.tabs.header import Header  # noqa: E402
from s2dlab.views.dashboard.tabs.lens import LensTab  # noqa: E402
from s2dlab.views.dashboard.tabs.live import LiveTab  # noqa: E402
from s2dlab.views.dashboard.tabs.map import MapTab  # noqa: E402
from s2dlab.views.dashboard.tabs.rollouts import RolloutsTab  # noqa: E402
from s2dlab.views.dashboard.tabs.stages import StagesTab  # noqa: E402
from s2dlab.views.dashboard.tabs.token import TokenTab  # noqa: E402
from s2dlab.views.dashboard.ui import QUEUE_SIZE, READ_WORKERS  # noqa: E402

log = logging.getLogger("s2dlab.app")

INTRO = (
    "# s2dlab\n"
    "Colours show the **implicit reward** `log pT(y_t) − log pS(y_t)` of each token: "
    "<span style='color:#b2182b'>red</span> where the teacher likes the student's token less than the student "
    "does, <span style='color:#2166ac'>blue</span> where it likes it more (a scale diverging around 0). Coloured "
    "by a KL, a token is <span style='color:#54278f'>purple</span>, darker the larger (a scale from 0). Hover a "
    "token for its probabilities, KLs, entropies and both models' top alternatives."
)


# Status lines stand out, and open up while a request waits or runs, so its place in the queue shows (the progress
# Gradio draws over an empty line, which has no height, was clipped out of sight); tables wrap between whole words
# (their column widths hold the longest word).
CSS = """
.s2d-status p{margin:2px 0;color:#b2182b;font-weight:600}
.s2d-status [data-testid=status-tracker]{position:static !important;min-height:0 !important}
.s2d-status [data-testid=status-tracker].hide{display:none !important}
.s2d-table th span, .s2d-table td span{word-break:normal;overflow-wrap:normal;hyphens:none}
"""


def build_demo(runs_root: str | os.PathLike, poll_seconds: float = 3.0) -> gr.Blocks:
    """The app over the runs under `runs_root` (which it only reads; exports go to a temporary folder that is
    removed when the app closes). Every `poll_seconds` (0: never) it looks for what a run in progress wrote."""
    store = Store(runs_root)
    exports = ExportFolder()

    # delete_cache: Gradio's own copies of the exports are removed with the app too
    with gr.Blocks(title="s2dlab", delete_cache=(3600, 3600)) as demo:
        gr.HTML(f"<style>{CSS}</style>", elem_id="s2d-style", padding=False)
        gr.Markdown(INTRO)
        header = Header(store, exports, poll_seconds)
        ctx = header.ctx
        with gr.Tabs(selected="token") as ctx.tabs:
            with gr.Tab("Token view", id="token"):
                token = TokenTab(ctx)
            with gr.Tab("Rollouts", id="rollouts"):
                rollouts = RolloutsTab(ctx, token)
            with gr.Tab("Stages", id="stages"):
                stages = StagesTab(ctx, token)
            with gr.Tab("Token lens", id="lens"):
                lens = LensTab(ctx)
            with gr.Tab("Estimators", id="estimators"):
                estimators = EstimatorsTab(ctx)
            with gr.Tab("Compare", id="compare"):
                compare = CompareTab(ctx)
            with gr.Tab("Live", id="live"):
                live = LiveTab(ctx)
            with gr.Tab("Map", id="map"):
                map_tab = MapTab(ctx)
        for tab in (token, rollouts, stages, lens, estimators, compare, live):
            tab.wire()
        header.wire(demo)
        map_tab.wire(demo, header, header.reload)
    # one queue for the whole app: READ_WORKERS at a time per reading handler, the model handlers one at a time
    # in their own group (`ui.MODEL_QUEUE`), at most QUEUE_SIZE requests waiting
    demo.queue(default_concurrency_limit=READ_WORKERS, max_size=QUEUE_SIZE)
    close = demo.close

    def close_and_remove_exports(*args, **kwargs):
        try:
            return close(*args, **kwargs)
        finally:
            exports.remove()

    demo.close = close_and_remove_exports  # the exports live as long as the app
    return demo


def main(argv: list[str] | None = None) -> None:
    """Serve the dashboard: `main(["runs", "--port", "8000"])` (what `s2dlab app` and `app/app.py` call)."""
    ap = argparse.ArgumentParser(prog="s2dlab app", description="Browse s2dlab runs in the browser.")
    ap.add_argument("runs_root", nargs="?", default="runs", help="folder holding the runs (default: runs)")
    ap.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the first free one)")
    # a Hugging Face Space sets GRADIO_SERVER_NAME=0.0.0.0; anywhere else the app stays on this machine
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                    help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the app on your network)")
    ap.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    ap.add_argument("--open", action="store_true", help="open the app in the default web browser")
    args = ap.parse_args(argv)
    from s2dlab.core.env import check_address

    check_address(args.host, args.port)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = Path(args.runs_root)
    if not root.is_dir():
        log.warning("%s does not exist yet; the app will say so until runs appear there", root)
    demo = build_demo(root)
    # `kill` (SIGTERM) stops the app like Ctrl+C does: the exit handlers run and remove the exports folder
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, inbrowser=args.open, show_error=False)
