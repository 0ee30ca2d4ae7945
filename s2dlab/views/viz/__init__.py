"""Figures shared by the notebooks and the dashboard: the per-token heatmap as HTML, and plotly figures.

Nothing here imports gradio or IPython.

- `s2dlab.views.viz.heatmap`: `token_heatmap_html` (tokens + values + display spans -> HTML) and its helpers for
  rollout rows (`rollout_heatmap_html`, `row_spans`, `row_token_info`, `vocab_from_rows`, `heatmap_vmax`).
- `s2dlab.views.viz.figures`: plotly figures, one kind of input each (`per_token_figure`, `stage_curves_figure`,
  `arms_figure`, `branches_figure`, `estimators_figure`).
- `s2dlab.views.viz.conditions`: a run's summary.json as tables and figures (`arms_frame`, `claims_frame`, `c1_frame`,
  `c2_frame`, `c1_rollouts_figure`, `c2_pair_figure`, `quadrants_figure`, `greedy_text`): rendered, never
  recomputed.
- `s2dlab.views.viz.lens`: the token lens as an HTML table (`lens_html`), and `standalone_html`, one self-contained
  document of rendered pieces (what the dashboard's export writes).
- `s2dlab.views.viz.colors`: the diverging colour scale both use (`value_color`).

    from s2dlab.core import runs
    from s2dlab.views import viz
    row = runs.open_run("runs/demo").rollouts("opd").iloc[0]
    html = viz.rollout_heatmap_html(row)          # coloured by implicit reward, hover for every number
    fig = viz.per_token_figure(row)                # reverse KL and implicit reward per position

Colours follow docs/DESIGN.md's sign convention for the implicit reward `log pT(y_t) - log pS(y_t)`: on the default
diverging scale ("RdBu") red is negative (the teacher likes the student's token less than the student does),
blue positive, and 0 is the neutral near-white centre.
"""

from s2dlab.views.viz.colors import value_color
from s2dlab.views.viz.conditions import (
    GREEDY_NOT_MEASURED,
    arms_frame,
    c1_frame,
    c1_rollouts_figure,
    c2_frame,
    c2_pair_figure,
    claims_frame,
    greedy_text,
    quadrants_figure,
)
from s2dlab.views.viz.figures import (
    CURVE_LABELS,
    arms_figure,
    branches_figure,
    curve_metrics,
    estimators_figure,
    ordered_arms,
    per_token_figure,
    stage_curves_figure,
)
from s2dlab.views.viz.heatmap import (
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
from s2dlab.views.viz.lens import lens_html, pair_label, standalone_html

__all__ = [
    "CURVE_LABELS",
    "GREEDY_NOT_MEASURED",
    "IMPLICIT_REWARD_LABEL",
    "Span",
    "arms_figure",
    "arms_frame",
    "branches_figure",
    "c1_frame",
    "c1_rollouts_figure",
    "c2_frame",
    "c2_pair_figure",
    "claims_frame",
    "estimators_figure",
    "greedy_text",
    "lens_html",
    "ordered_arms",
    "pair_label",
    "quadrants_figure",
    "standalone_html",
    "curve_metrics",
    "heatmap_vmax",
    "per_token_figure",
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
