"""``assay serve``: run the index."""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

import click
import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess

from assay.app import create_app
from assay.cli.common import CommandError, open_database, settings_from, storage_options
from assay.cli.granian import free_port, granian_refusal, serve_granian
from assay.config import MIB, Settings, settings_to_env
from assay.storage.modes import make_private_dirs
from assay.storage.stores import blob_store
from assay.web.hosts import startup_refusal, startup_warning
from assay.web.protocol import GuardedHttpToolsProtocol, ProtocolLimits, UnsupportedUvicorn, check_uvicorn_version
from assay.web.redact import RedactingFilter

#: Settings given their own option below (with hand-written help); every other setting gets a
#: generated ``--name`` flag, so each one is settable as flag, ASSAY_* env and file key alike.
_EXPLICIT = {
    "config_file", "sources", "data_dir", "database_url", "host", "port", "workers", "tls_cert", "tls_key",
    "base_url", "allowed_hosts", "max_upload_size", "private", "log_level", "db_statement_timeout",
    "db_pool_timeout", "log_key", "log_checkpoint_interval", "blob_store", "s3_endpoint_url",
}


#: What each generated option means and the unit of its number (issue 10, item 19: the help
#: says the unit of every number). Same words as the comments on ``Settings``.
_HELP: dict[str, tuple[str, str | None]] = {
    "graceful_timeout": ("How long in-flight requests (uploads) may take to finish after SIGTERM", "seconds"),
    "access_log": ("Log every request", None),
    "keep_alive_timeout": ("How long an idle keep-alive connection stays open", "seconds"),
    "header_timeout": ("How long a client has to send a request's line and headers (408 after)", "seconds"),
    "max_header_size": ("Largest request line plus headers (431 beyond it)", "bytes"),
    "body_timeout": (
        "How long a request body may pause, and the grace period before --body-min-rate applies",
        "seconds",
    ),
    "body_min_rate": ("Rate a request body must average once --body-timeout has passed (408 below)", "bytes/s"),
    "max_request_body": ("Largest request body of every endpoint but uploads (413 beyond it)", "bytes"),
    "max_metadata_size": ("Largest core metadata file (METADATA, PKG-INFO) inside a distribution", "bytes"),
    "oidc_audience": ("The audience OIDC tokens must be issued for (PyPI uses 'pypi')", None),
    "minted_token_lifetime": ("Lifetime of minted upload tokens, 900 to 21600 (PEP 807)", "seconds"),
    "jwks_refetch_seconds": (
        "Least time between two fetches of one issuer's keys for an unknown key id",
        "seconds",
    ),
    "pending_publisher_days": ("How long an unused pending publisher stays registered", "days"),
    "stage_ttl": ("How long a staged release waits for approval before it expires", "seconds"),
    "token_upload_attestations": ("Accept attestations on API-token uploads matching a publisher", None),
    "sigstore_trust_root": ("'production', 'staging' or the path of a trusted_root.json", None),
    "token_prefix": ("Prefix of every API token (secret scanners key on it)", None),
    "blob_store": (
        "Where files live: empty for <data-dir>/files, or s3://bucket/prefix (credentials and region "
        "from the AWS_* environment variables)",
        None,
    ),
    "s3_endpoint_url": ("URL of the S3-compatible endpoint (default: AWS_ENDPOINT_URL, else AWS)", None),
    "s3_multipart_threshold": ("Files from this size on are S3 multipart uploads (5 MiB at least)", "bytes"),
    "blob_redirect_seconds": (
        "0 streams downloads; more redirects them to presigned S3 URLs valid this long",
        "seconds",
    ),
    "cdn_s_maxage": ("How long a CDN may serve pages, project JSON and provenance unasked (s-maxage)", "seconds"),
    "cdn_max_age": ("How long a client may reuse pages, project JSON and provenance unasked (max-age)", "seconds"),
    "cdn_purge_url": ("Where purges by surrogate key are sent after each project change (empty: none)", None),
    "cdn_purge_style": ("'fastly' (POST, Surrogate-Key), 'purge' (PURGE, Surrogate-Key) or 'webhook' (JSON)", None),
    "cdn_purge_token": ("Credential sent with purges (Fastly-Key, else Bearer)", None),
    "proxy_headers": ("Client address and scheme from X-Forwarded-For/-Proto of trusted proxies", None),
    "forwarded_allow_ips": ("Proxy addresses trusted for X-Forwarded-* (comma-separated; '*' any)", None),
    "accel_redirect_prefix": (
        "Behind nginx: hand file downloads to its internal location at this path (X-Accel-Redirect); empty: none",
        None,
    ),
    "server": ("HTTP server: 'uvicorn' or 'granian' (optional install; sends large files itself)", None),
    "wire_answers": ("uvicorn: cache hits written below ASGI, large files by sendfile (off: all via ASGI)", None),
    "serial_poll_seconds": (
        "PostgreSQL: longest a project's serial is kept unasked (changes arrive by NOTIFY; 0: ask each request)",
        "seconds",
    ),
    "file_cache_bytes": ("Memory per worker for small files (each up to 256 KiB) served from memory", "bytes"),
    "blob_store_fallback": ("Old files directory read when the store lacks a file (during blobs migrate)", None),

    "log_viewer_url": (
        "Transparency-log viewer URL with {log_index} for an attestation's log index (web pages link there)",
        None,
    ),
    "session_lifetime": ("Longest life of a web session (a token exchanged for a cookie)", "seconds"),

    "mirror_page_ttl": (
        "How long a mirrored upstream page is served as kept before it is revalidated (0: every request)",
        "seconds",
    ),
    "mirror_max_file_size": ("Largest file taken from an upstream on its first download", "bytes"),
}


def _default(value: object, unit: str | None) -> str:
    if unit == "bytes" and isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        human = f"{value // MIB} MiB" if value % MIB == 0 else f"{value // 1024} KiB"
        return f"{value} bytes ({human})"
    if unit and isinstance(value, int) and not isinstance(value, bool):
        return f"{value} {unit}"
    return repr(value) if isinstance(value, str) else str(value)


def _generated_options(func: Callable[..., None]) -> Callable[..., None]:
    hints = get_type_hints(Settings)
    for f in reversed(fields(Settings)):
        if f.name in _EXPLICIT:
            continue
        flag = "--" + f.name.replace("_", "-")
        # A setting missing from _HELP still gets a flag (tests/index/test_serve.py asks for its unit).
        text, unit = _HELP.get(f.name, ("", None))
        what = (f"{text}, in {unit}. " if unit else f"{text}. ") if text else ""
        env = f"{what}Default: {_default(f.default, unit)}. Env: ASSAY_{f.name.upper()}."
        typ = hints[f.name]
        if type(None) in get_args(typ):
            typ = next(a for a in get_args(typ) if a is not type(None))
        option: Callable[[Callable[..., None]], Callable[..., None]]
        if typ is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=env)
        elif typ is int:
            option = click.option(flag, f.name, type=int, help=env)
        elif typ is Path:
            option = click.option(flag, f.name, type=click.Path(path_type=Path), help=env)
        else:
            option = click.option(flag, f.name, help=env)
        func = option(func)
    return func


def _logging_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging, with the worker's pid on each access-log line (with --workers N the
    lines of different processes interleave), assay's own loggers on the root handler (in every
    worker process too: uvicorn applies this configuration in each), and credentials masked on
    every handler (issue 6: no secrets in logs; see ``assay.web.redact``)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["fmt"] = (
        '%(levelprefix)s [%(process)d] %(client_addr)s - "%(request_line)s" %(status_code)s'
    )
    config["formatters"]["assay"] = {"format": _APP_FORMAT}
    config["filters"] = {
        "redact": {"()": "assay.web.redact.RedactingFilter", "token_prefix": settings.token_prefix}
    }
    config["handlers"]["app"] = {
        "formatter": "assay",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["app"], "level": settings.log_level.upper()}
    return config


_APP_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _check_log_key(settings: Settings) -> None:
    """Load (on the first start: create) the transparency log's key before any worker starts,
    so a bad key is one clear message and workers never race to create it."""
    from assay.log.keys import LogKeyError, signer

    try:
        signer(settings)
    except LogKeyError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@storage_options
@click.option("--host", help="Address to listen on (default 127.0.0.1). Env: ASSAY_HOST.")
@click.option("--port", type=int, help="TCP port number (default 8000; 0 picks a free one). Env: ASSAY_PORT.")
@click.option("--workers", type=int, help="Number of worker processes (default 1). Env: ASSAY_WORKERS.")
@click.option(
    "--tls-cert", type=click.Path(path_type=Path, dir_okay=False),
    help="PEM certificate (chain) for HTTPS. Env: ASSAY_TLS_CERT.",
)
@click.option(
    "--tls-key", type=click.Path(path_type=Path, dir_okay=False),
    help="PEM private key for HTTPS. Env: ASSAY_TLS_KEY.",
)
@click.option(
    "--base-url",
    help="Public URL of the index, for absolute links (default: from each request). "
    "Env: ASSAY_BASE_URL.",
)
@click.option(
    "--allowed-host", "--allowed-hosts", "allowed_hosts", multiple=True,
    # Not given: None, so the environment or the file still apply (an empty tuple would win).
    callback=lambda _ctx, _param, value: value or None,
    help="A host name clients may use (the Host header, port ignored); repeat for more. "
    "'.example.org' allows it and its subdomains, '*' any host. Others get 400. Default: any "
    "on loopback; beyond it without --base-url, only this machine's own names. "
    "Env: ASSAY_ALLOWED_HOSTS (comma-separated).",
)
@click.option(
    "--max-upload-size", type=int,
    help="Largest accepted file in bytes (default 100 MiB). Env: ASSAY_MAX_UPLOAD_SIZE.",
)
@click.option(
    "--private/--public", default=None, help="Require a token for reads too. Env: ASSAY_PRIVATE."
)
@click.option(
    "--db-statement-timeout", type=int,
    help="How long a database statement or lock wait may take before it is cancelled and the "
    "request answered 503, in seconds (default 30; PostgreSQL). Env: ASSAY_DB_STATEMENT_TIMEOUT.",
)
@click.option(
    "--db-pool-timeout", type=int,
    help="How long a request waits for a database connection before it is answered 503, in "
    "seconds (default 10; PostgreSQL). Env: ASSAY_DB_POOL_TIMEOUT.",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
    help="Default: info. Env: ASSAY_LOG_LEVEL.",
)
@click.option(
    "--log-key", type=click.Path(path_type=Path, dir_okay=False),
    help="File with the transparency log's Ed25519 key (PEM or a note signer key; default: "
    "<data-dir>/log/signing.key, created on first start, mode 0600). Env: ASSAY_LOG_KEY.",
)
@click.option(
    "--log-checkpoint-interval", type=int,
    help="Least time between two newly signed log checkpoints, in seconds (default 2; 0: one per "
    "new tree size). Env: ASSAY_LOG_CHECKPOINT_INTERVAL.",
)
@_generated_options
def serve(config_file: Path | None, **options: object) -> None:
    """Start the index (SQLite and files under ./assay-data unless configured otherwise).

    Every setting can be given as a flag, as an ASSAY_* environment variable or in the --config
    TOML file; flags win over the environment, which wins over the file.
    """
    settings = settings_from(config_file, **options)
    if settings.server == "uvicorn":
        try:
            # Before anything else: the header limits are only as good as this check.
            check_uvicorn_version()
        except UnsupportedUvicorn as exc:
            raise CommandError(str(exc)) from None
    elif (refusal := granian_refusal(settings)) is not None:
        raise CommandError(refusal)
    if (refusal := startup_refusal(settings)) is not None:
        raise CommandError(refusal)
    logging.basicConfig(level=settings.log_level.upper(), format=_APP_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(settings.token_prefix))
    make_private_dirs(settings.data_dir)  # 0700 (issue 10): the index's files are not for other users
    db = open_database(settings)
    db.dispose()
    _check_log_key(settings)

    if settings.server == "granian":
        # granian binds its own socket (in its worker processes): a port is chosen here.
        port = settings.port or free_port(settings.host)
        _announce(settings, db.safe_url, settings.host, port)
        serve_granian(settings, port)
        return

    app: str | Starlette = "assay.app:app_from_env" if settings.workers > 1 else create_app(settings)
    config = uvicorn_config(settings, app)
    sock = config.bind_socket()
    host, port = sock.getsockname()[:2]
    _announce(settings, db.safe_url, host, port)

    if settings.workers > 1:
        # Workers are separate processes: they rebuild the settings from the environment.
        os.environ.update(settings_to_env(settings))
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


def uvicorn_config(settings: Settings, app: str | Starlette, *, configure_logging: bool = True) -> uvicorn.Config:
    """uvicorn's configuration for ``settings``: assay's HTTP protocol (``web.protocol``: the
    header limits and the answers written on the wire), its logging, limits and shutdown.
    ``configure_logging`` False leaves the process's logging as it is (a server in a test's
    process; uvicorn applies its logging configuration as soon as the config is made)."""
    config = uvicorn.Config(
        app,
        factory=settings.workers > 1,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        log_level=settings.log_level,
        log_config=_logging_config(settings) if configure_logging else None,
        access_log=settings.access_log,
        # Issue 6: slow-loris and oversized requests (see assay.web.protocol / security).
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=settings.keep_alive_timeout,
        # SIGTERM: stop accepting, let in-flight requests (uploads) finish for this long; an
        # upload cut off after it rolls back (nothing of it is stored).
        timeout_graceful_shutdown=settings.graceful_timeout,
        lifespan="on",
        server_header=False,
        # Behind a load balancer: the client's address (audit log, access log) and scheme from
        # X-Forwarded-For/-Proto, believed only from the trusted proxies.
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
    )
    config.assay_limits = ProtocolLimits(  # type: ignore[attr-defined]
        header_timeout=settings.header_timeout,
        max_header_size=settings.max_header_size,
        wire_answers=settings.wire_answers,
    )
    return config


def _announce(settings: Settings, database: str, host: str, port: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    url = f"{settings.scheme}://{shown}:{port}/"
    click.echo(f"assay: serving {url} (simple index {url}simple/, uploads {url}legacy/)")
    click.echo(f"assay: database {database}, {blob_store(settings).describe()}")
    if (warning := startup_warning(settings)) is not None:
        click.echo(f"assay: warning: {warning}", err=True)
    sys.stdout.flush()
