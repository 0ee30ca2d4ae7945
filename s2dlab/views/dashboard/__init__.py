"""The s2dlab dashboard (Gradio), behind the `[app]` extra: `build_demo(runs_root) -> gr.Blocks` and `main(argv)`.

    s2dlab app runs                                  # the command line
    python -c "from s2dlab.views.dashboard import main; main(['runs'])"

Two layers. The views: `s2dlab.views.dashboard.app` (`build_demo`, `main`) puts together the tabs of
`s2dlab.views.dashboard.tabs`, one module per tab, each building its components and wiring its events, with the plumbing
they share in `s2dlab.views.dashboard.ui`. The data layer (plain Python, no gradio, testable by calling it):
`s2dlab.views.dashboard.data` (read-only views, and the names callers import), `store`, `rows`, `summary_view`, `models`
and `live` (the views that run models). The rest of s2dlab never imports this package. Without Gradio, importing it
raises `DashboardNotInstalledError`, whose one-line message says what to install.
"""

from s2dlab.core.errors import S2DLabError


class DashboardNotInstalledError(S2DLabError, ImportError):
    """Gradio is not installed, so the dashboard cannot start."""


try:
    import gradio
except ModuleNotFoundError as e:
    raise DashboardNotInstalledError(f'the dashboard needs Gradio ({e}): pip install "s2dlab[app]"') from e
if not hasattr(gradio, "Blocks"):  # a folder left behind by `pip uninstall gradio` imports as an empty namespace
    raise DashboardNotInstalledError(f"the dashboard needs Gradio, and {list(gradio.__path__)[0]} holds no "
                                     'installed Gradio: pip install "s2dlab[app]"')

from s2dlab.views.dashboard.app import build_demo, main  # noqa: E402

__all__ = ["DashboardNotInstalledError", "build_demo", "main"]
