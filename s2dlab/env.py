"""Environment defaults that must be set before the heavy libraries are imported (huggingface_hub reads its
variables once, at import): no telemetry, no analytics, no tokenizer thread pools. Imports nothing heavy."""

from __future__ import annotations

import os


def offline_defaults() -> None:
    """Telemetry and analytics off, tokenizers single-threaded; values already in the environment win."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
