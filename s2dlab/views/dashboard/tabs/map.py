"""The Map tab: a C1 x C2 map (`s2dlab map --out DIR`) found under the runs folder, drawn from its map.json: the
gain of the bridge over cold GRPO for every teacher x student cell against C1 and C2 (`map_figure`), and the cells'
table with their intervals and run folders. The app pointed at a map's folder, or at a runs folder holding maps,
lists them. A map still being computed is followed: every few seconds (the header's poll) the tab looks at its
map.json and redraws when it was rewritten (after every cell); ↻ reload map (or ↻ reload runs above) also looks
for new maps. A click on a cell's row opens its run (the first seed's) in the Stages tab."""

from __future__ import annotations

import gradio as gr

from s2dlab.views.dashboard import map_view
from s2dlab.views.dashboard.store import AppError
from s2dlab.views.dashboard.ui import (
    Context,
    dd,
    empty_dd,
    handler,
    new_table,
    status_line,
    table,
)


class MapTab:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        with gr.Row(equal_height=True):
            self.map = gr.Dropdown(label="map (a folder holding map.json)", choices=[], scale=3, elem_id="map-dd")
            self.reload = gr.Button("↻ reload map", scale=0, size="sm", elem_id="map-reload")
        self.status = status_line("map-status")
        self.note = gr.Markdown(elem_id="map-note")
        self.plot = gr.Plot(label="the gain against C1 and C2", elem_id="map-plot")
        self.table = new_table(map_view.MAP_COLUMNS, "map-table", label="the cells (95% intervals)", max_height=560)
        self.seen = gr.State(None)  # the map.json drawn: [map id, mtime, size] (`map_view.written`)
        self.empties = {self.note: "", self.plot: None, self.table: None, self.seen: None}

    def refresh(self, current=None) -> dict:
        """The maps under the root (the current one kept while it exists, else the newest: a map being computed)
        and the chosen one drawn; no map is a sentence in the note, not an error."""
        store = self.ctx.store
        maps = map_view.find_maps(store)
        if not maps:
            return {self.map: empty_dd(), self.note: f"No map under {store.root} yet: `s2dlab map --out "
                                                     f"{store.root}/map` makes one (`s2dlab map --help`).",
                    self.plot: None, self.table: None, self.seen: None}
        current = current if current in maps else map_view.newest(store, maps)
        return {self.map: dd(maps, current), **self.render(current)}

    def render(self, map_id) -> dict:
        seen = map_view.written(self.ctx.store, map_id)
        v = map_view.map_view(self.ctx.store, map_id)
        return {self.note: v["note"], self.plot: v["figure"], self.table: table(v["table"], intervals=True),
                self.seen: seen}

    def follow(self, map_id, seen) -> dict:
        """A look at the chosen map: nothing when its map.json is the one drawn; else the map drawn again."""
        now = map_view.written(self.ctx.store, map_id)
        if now is None or now == seen:
            return {}
        return {**self.render(map_id), self.status: ""}

    def on_row(self, evt: gr.SelectData) -> dict:
        """A cell's row: its first run folder chosen in the run picker, the Stages tab shown (the run's own
        handler then opens it)."""
        row = evt.row_value or []
        run_id = str(row[-1]).split(", ")[0] if row else ""
        store = self.ctx.store
        if not run_id or run_id == "-":
            raise AppError("Could not read the selected cell's run folder.")
        if run_id not in store.run_choices():
            raise AppError(f"The cell's run folder {run_id} is not a run under {store.root}: the run picker lists "
                           "runs up to three levels down, so open the map's folder or its parent with s2dlab app.")
        return {self.ctx.run_dd: dd(store.run_options(), run_id), self.ctx.tabs: gr.Tabs(selected="stages")}

    def wire(self, demo: gr.Blocks, header, *reloads: gr.Button):
        """`header`: the pickers above the tabs (`tabs.header.Header`, wired already), whose run a row opens."""
        ctx = self.ctx
        opened = self.table.select(**handler(self.on_row, [], [ctx.run_dd, ctx.tabs], self.status,
                                             api_name="map_open"))
        ctx.then_run(ctx.then_snapshot(opened.then(**header.run_step)))
        outputs = [self.map, self.note, self.plot, self.table, self.seen]
        refresh = handler(self.refresh, [self.map], outputs, self.status, {**self.empties, self.map: empty_dd},
                          api_name="map")
        demo.load(**refresh)
        for button in (self.reload, *reloads):
            button.click(**{**refresh, "api_name": None})
        drawn = [self.note, self.plot, self.table, self.seen]
        self.map.input(**handler(self.render, [self.map], drawn, self.status, self.empties, api_name="map_view"))
        if header.poll_seconds:  # a stat of one file per look; no spinner, never queued behind other requests
            # clear=False: a look that finds nothing new leaves the status line (an error said there) as it is
            gr.Timer(header.poll_seconds).tick(**handler(self.follow, [self.map, self.seen], drawn, self.status,
                                                         self.empties, clear=False, show_progress="hidden",
                                                         concurrency_limit=None, api_name="map_follow"))
