"""``assay serve --server granian``: the index under granian instead of uvicorn (issue 17, item 3).

granian (a Rust HTTP server, ``pip install granian``) offers the ASGI ``http.response.pathsend``
extension, with which ``assay.index.filesend`` hands a large file to the server by its path: the
server reads and sends it off the Python event loop. It is optional, not the default, because
it lacks what assay's uvicorn set-up relies on (docs/benchmarks.md, issue 17, has the figures
and the list):

* the reason phrase of an error response (``assay.web.reason``: twine prints it) is granian's
  standard one, not assay's message (uv and pip read the body, which is unchanged);
* ``proxy_headers`` / ``forwarded_allow_ips`` (uvicorn's) have no granian equivalent here:
  refused at start rather than silently ignored;
* ``access_log``: granian writes it itself, outside assay's logging and its masking of
  credentials (``assay.web.redact``): refused too;
* ``keep_alive_timeout`` is granian's own (it has no setting for it);
* ``header_timeout`` maps to granian's HTTP/1 header read timeout, ``max_header_size`` to its
  HTTP/1 buffer size (granian answers an oversized request itself).

Security headers, body limits, host checks and error answers are the application's and are
the same under both servers.
"""

from __future__ import annotations

import os
import socket

from assay.config import Settings, settings_to_env

#: granian's smallest HTTP/1 buffer (its own limit).
_MIN_BUFFER = 8192


def granian_refusal(settings: Settings) -> str | None:
    """Why ``serve --server granian`` must not start with these settings, or None."""
    try:
        import granian  # noqa: F401
    except ImportError:
        return "--server granian needs granian installed (pip install granian), or use --server uvicorn"
    if settings.proxy_headers:
        return (
            "--proxy-headers is uvicorn's (X-Forwarded-For/-Proto from --forwarded-allow-ips); "
            "granian has no such option: use --server uvicorn behind a proxy that sends them"
        )
    if settings.access_log:
        return (
            "--access-log under granian would be written by granian itself, without assay's masking of "
            "credentials (assay.web.redact): use --server uvicorn for an access log"
        )
    return None


def free_port(host: str) -> int:
    """A port free on ``host`` now (granian binds it itself, a moment later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve_granian(settings: Settings, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    # granian's workers are processes that import the app factory: they rebuild the settings
    # from the environment, as uvicorn's --workers N do.
    os.environ.update(settings_to_env(settings))
    Granian(
        "assay.app:app_from_env",
        factory=True,
        address=settings.host,
        port=port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=min(settings.header_timeout * 1000, 60_000),  # its upper bound
            max_buffer_size=max(settings.max_header_size, _MIN_BUFFER),
        ),
        log_access=False,  # refused above: granian's own log would not mask credentials
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        workers_kill_timeout=settings.graceful_timeout,
    ).serve()
