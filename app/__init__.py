"""The s2dlab Gradio app: `build_demo(runs_root)` in `app.app`, data access in `app.callbacks`."""
