"""The views: what people look at. Figures and the token heatmap (`viz`), the Gradio dashboard (`dashboard`) and
the Markdown / HTML report of a run (`report`). They read what the other layers write; nothing below imports them.
"""
