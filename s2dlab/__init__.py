"""s2dlab: a lab for the sparse-to-dense reward principle of language-model post-training.

`from s2dlab import DenseRewardCallback` gives the Trainer callback (`s2dlab.instruments.callback`); it is imported on first use,
so `import s2dlab` alone stays light (the CLI and the dashboard import only what they need).
"""

__all__ = ["DenseRewardCallback"]


def __getattr__(name):
    if name == "DenseRewardCallback":
        from s2dlab.instruments.callback import DenseRewardCallback

        return DenseRewardCallback
    raise AttributeError(f"module 's2dlab' has no attribute {name!r}")
