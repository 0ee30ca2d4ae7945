"""One colour scale per meaning (s2dlab.views.viz.colors): the implicit reward diverges around 0 on red-blue, KLs and
entropies run from 0 in one hue; the heatmap, the lens table, the dashboard's views and its export all colour and
label through the same functions."""

import re
from pathlib import Path

import plotly.colors as pcolors
import pytest

from s2dlab.views import viz
from s2dlab.views.viz.colors import (
    DIVERGING,
    SEQUENTIAL,
    color_pair,
    legend_html,
    scale_for,
)

DATA = Path(__file__).parent / "data"
RUN = "fixture_run"


def hex_of(plotly_colour: str) -> str:
    r, g, b = (int(float(x)) for x in re.findall(r"[\d.]+", plotly_colour)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def test_each_quantity_has_its_scale():
    assert scale_for("implicit_reward") == DIVERGING and DIVERGING.cmap == "RdBu" and DIVERGING.diverging
    for q in ("reverse_kl", "forward_kl", "student_entropy", "teacher_entropy"):
        assert scale_for(q) == SEQUENTIAL and not SEQUENTIAL.diverging
    assert scale_for("Purples") == SEQUENTIAL and scale_for("RdBu") == DIVERGING  # a plotly name says its kind
    assert scale_for("PiYG").diverging and not scale_for("Blues").diverging


def test_sequential_runs_from_zero_in_one_hue():
    stops = pcolors.get_colorscale("Purples")
    assert color_pair(0.0, 2.0, "reverse_kl")[0] == hex_of(stops[0][1])  # 0: the scale's lightest colour
    assert color_pair(2.0, 2.0, "reverse_kl")[0] == hex_of(stops[-1][1])  # vmax: its darkest
    assert color_pair(9.0, 2.0, "reverse_kl") == color_pair(2.0, 2.0, "reverse_kl")  # clipped above
    assert color_pair(-1.0, 2.0, "reverse_kl") == color_pair(0.0, 2.0, "reverse_kl")  # and at 0 below
    # darker as the value grows: the luminance falls monotonically
    lum = [sum(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in
           (color_pair(v, 2.0, "reverse_kl")[0] for v in (0.0, 0.5, 1.0, 1.5, 2.0))]
    assert lum == sorted(lum, reverse=True) and len(set(lum)) == 5
    # the diverging scale keeps 0 in its middle: the same white for +0 and -0, red below, blue above
    zero = color_pair(0.0, 1.0)[0]
    assert zero == hex_of(pcolors.get_colorscale("RdBu")[5][1])
    r, g, b = (int(color_pair(-1.0, 1.0)[0][i:i + 2], 16) for i in (1, 3, 5))
    assert r > b


def test_legends_say_which_scale():
    div = legend_html("implicit reward", 2.0, "implicit_reward")
    seq = legend_html("reverse KL", 2.0, "reverse_kl")
    assert 'data-scale="diverging"' in div and "−2" in div and "+2" in div and "diverging around 0" in div
    assert 'data-scale="sequential"' in seq and "<span>0</span>" in seq and "sequential from 0" in seq
    assert "−" not in seq


def test_heatmap_and_lens_colour_kl_on_the_sequential_scale():
    from s2dlab.core.runs import open_run
    from s2dlab.instruments.lens import read_lens, read_lens_index

    row = open_run(DATA / RUN).rollouts("opd").iloc[0]
    kl = viz.rollout_heatmap_html(row, value="reverse_kl")
    assert 'data-scale="sequential"' in kl and "sequential from 0" in kl
    vmax = viz.heatmap_vmax([row], "reverse_kl")
    shown = re.findall(r'class="s2d-tok[^"]*" style="background:(#[0-9a-f]{6})', kl)
    spans = viz.span_values(list(row["reverse_kl"]), viz.row_spans(row))
    assert shown == [color_pair(v, vmax, SEQUENTIAL)[0] for v in spans]
    reward = viz.rollout_heatmap_html(row)
    assert 'data-scale="diverging"' in reward
    # the notebooks' call (a plotly name) and the quantity give the same colours
    by_name = viz.token_heatmap_html(list(row["tokens"]), list(row["reverse_kl"]), spans=viz.row_spans(row),
                                     cmap="Purples", label="reverse kl")
    assert re.findall(r'class="s2d-tok[^"]*" style="background:(#[0-9a-f]{6})', by_name) == shown
    key = read_lens_index(DATA / RUN)["rollouts"][0]["key"]
    lens = viz.lens_html(read_lens(DATA / RUN, key), value="reverse_kl")
    assert 'data-scale="sequential"' in lens
    assert 'data-scale="diverging"' in viz.lens_html(read_lens(DATA / RUN, key))


@pytest.mark.parametrize("colour_by, kind", [("implicit reward", "diverging"), ("reverse KL", "sequential"),
                                             ("forward KL", "sequential")])
def test_dashboard_views_and_export_use_the_scale_of_what_they_show(tmp_path, colour_by, kind):
    from s2dlab.views.dashboard import data as cb

    store = cb.Store(DATA)
    s_html, t_html, *_ = cb.token_view(store, RUN, "opd", None, None, None, color_by=colour_by)
    assert s_html.count(f'data-scale="{kind}"') == 1 and t_html.count(f'data-scale="{kind}"') == 1
    text = Path(cb.export_file(tmp_path, "t", [s_html, t_html], "x")).read_text(encoding="utf-8")
    assert text.count(f'data-scale="{kind}"') == 2
    key = cb.lens_choices(store, RUN)[0][0][1]
    assert f'data-scale="{kind}"' in cb.lens_view(store, RUN, key, colour_by)
