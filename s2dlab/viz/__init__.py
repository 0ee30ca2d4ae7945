"""Figures shared by the notebooks and the dashboard: the per-token heatmap as HTML, and plotly figures.

Nothing here imports gradio or IPython.

- `s2dlab.viz.heatmap`: `token_heatmap_html` (tokens + values + display spans -> HTML) and its helpers for
  rollout rows (`rollout_heatmap_html`, `row_spans`, `row_token_info`, `vocab_from_rows`, `heatmap_vmax`).
- `s2dlab.viz.figures`: plotly figures, one kind of input each (`per_token_figure`, `stage_curves_figure`,
  `results_table`, `results_bar_figure`, `c1_figure`, `c2_histogram_figure`, `quadrant_figure`).
- `s2dlab.viz.colors`: the diverging colour scale both use (`value_color`).

    from s2dlab import runs, viz
    row = runs.open_run("runs/demo").rollouts("opd").iloc[0]
    html = viz.rollout_heatmap_html(row)          # coloured by implicit reward, hover for every number
    fig = viz.per_token_figure(row)                # reverse KL and implicit reward per position

Colours follow docs/DESIGN.md's sign convention for the implicit reward `log pT(y_t) - log pS(y_t)`: on the default
diverging scale ("RdBu") red is negative (the teacher likes the student's token less than the student does),
blue positive, and 0 is the neutral near-white centre.
"""

from s2dlab.viz.colors import value_color
from s2dlab.viz.figures import (
    CURVE_LABELS,
    c1_figure,
    c2_histogram_figure,
    curve_metrics,
    per_token_figure,
    quadrant_figure,
    results_bar_figure,
    results_table,
    stage_curves_figure,
)
from s2dlab.viz.heatmap import (
    IMPLICIT_REWARD_LABEL,
    Span,
    heatmap_vmax,
    rollout_heatmap_html,
    row_spans,
    row_token_info,
    span_values,
    token_heatmap_html,
    visible_text,
    vocab_from_rows,
)

__all__ = [
    "CURVE_LABELS",
    "IMPLICIT_REWARD_LABEL",
    "Span",
    "c1_figure",
    "c2_histogram_figure",
    "curve_metrics",
    "heatmap_vmax",
    "per_token_figure",
    "quadrant_figure",
    "results_bar_figure",
    "results_table",
    "rollout_heatmap_html",
    "row_spans",
    "row_token_info",
    "span_values",
    "stage_curves_figure",
    "token_heatmap_html",
    "value_color",
    "visible_text",
    "vocab_from_rows",
]
