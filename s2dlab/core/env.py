"""Environment defaults that must be set before the heavy libraries are imported (huggingface_hub reads its
variables once, at import): no telemetry, no analytics, no tokenizer thread pools. Imports nothing heavy."""

from __future__ import annotations

import os


def offline_defaults() -> None:
    """Telemetry and analytics off, tokenizers single-threaded; values already in the environment win."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def check_address(host: str, port: int | None) -> None:
    """Refuse, in one line, an address the dashboard could not serve on: a port outside 1-65535 (0 included: the
    default already takes the next free port), a port another program holds, a host that is not an address of this
    machine. Checked before anything heavy starts; `InputError` names the value and the fix."""
    import errno
    import socket

    from s2dlab.core.errors import InputError

    if port is not None and not 1 <= port <= 65535:
        raise InputError(f"--port {port}: give a port from 1 to 65535, or leave --port out to take 7860 or the next "
                         "free one")
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host}: not an address this machine can serve on ({e}); use 127.0.0.1 (this "
                         "machine) or 0.0.0.0 (every interface)") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(addr if port else (addr[0], 0, *addr[2:]))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise InputError(f"--port {port} is in use on {host} (another s2dlab app?); give another --port, or "
                                 "leave it out to take the next free one") from None
            raise InputError(f"--host {host}: cannot serve there ({e.strerror}); use 127.0.0.1 (this machine) or "
                             "0.0.0.0 (every interface)") from None
