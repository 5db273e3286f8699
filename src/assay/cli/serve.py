"""``assay serve``: run the index."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
import uvicorn
from uvicorn.supervisors import Multiprocess

from assay.cli.common import open_database, settings_from, storage_options
from assay.config import settings_to_env
from assay.web.app import create_app


@click.command()
@storage_options
@click.option("--host", help="Address to listen on (default 127.0.0.1). Env: ASSAY_HOST.")
@click.option("--port", type=int, help="Port (default 8000; 0 picks a free one). Env: ASSAY_PORT.")
@click.option("--workers", type=int, help="Worker processes (default 1). Env: ASSAY_WORKERS.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), help="PEM certificate (chain) for HTTPS.")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), help="PEM private key for HTTPS.")
@click.option("--base-url", help="Public URL of the index, for absolute links (default: from each request).")
@click.option("--max-upload-size", type=int, help="Largest accepted file in bytes (default 100 MiB).")
@click.option("--private/--public", default=None, help="Require a token for reads too.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Default: info.")
def serve(config_file: Path | None, **options: object) -> None:
    """Start the index (SQLite and files under ./assay-data unless configured otherwise)."""
    settings = settings_from(config_file, **options)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings)
    db.dispose()

    config = uvicorn.Config(
        "assay.web.app:app_from_env" if settings.workers > 1 else create_app(settings),
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # SIGTERM: stop accepting, let in-flight requests (uploads) finish for this long; an
        # upload cut off after it rolls back (nothing of it is stored).
        timeout_graceful_shutdown=settings.graceful_timeout,
        lifespan="on",
        server_header=False,
        proxy_headers=False,
    )
    sock = config.bind_socket()
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"{settings.scheme}://{shown}:{port}/"
    click.echo(f"assay: serving {url} (simple index {url}simple/, uploads {url}legacy/)")
    click.echo(f"assay: database {db.safe_url}, files in {settings.blob_dir.resolve()}")
    sys.stdout.flush()

    if settings.workers > 1:
        # Workers are separate processes: they rebuild the settings from the environment.
        os.environ.update(settings_to_env(settings))
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
