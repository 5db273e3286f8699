"""Settings: defaults < TOML file < ``ASSAY_*`` environment < command-line flags.

Every setting has one name used in all three places: ``data_dir`` in the TOML file (``data-dir``
is accepted too), ``ASSAY_DATA_DIR`` in the environment, ``--data-dir`` on the command line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

ENV_PREFIX = "ASSAY_"

MIB = 1024 * 1024


class ConfigError(ValueError):
    """Configuration that cannot be used: a setting (the message names it and its source) or a
    publisher's configuration (``assay.publishers``). One error type for both, so every command
    and route that reports configuration mistakes catches one thing."""


@dataclass(frozen=True)
class Settings:
    # --- where things live ---
    data_dir: Path = Path("assay-data")
    #: SQLAlchemy URL; empty means SQLite at <data_dir>/assay.db.
    database_url: str = ""
    #: Seconds a database statement (or a wait for a lock) may take before PostgreSQL cancels it;
    #: a server that sends no reply at all is given up on 2 s later (issue 10: a hung database
    #: must not hang the index). The request then gets 503.
    db_statement_timeout: int = 30
    #: Seconds a request waits for a database connection (a free pooled one, or a new one to be
    #: established) before it gets 503.
    db_pool_timeout: int = 10
    # --- blobs (issue 16; see assay.storage.stores) ---
    #: Where distribution files live: empty for <data_dir>/files, or s3://bucket/prefix for an
    #: S3-compatible object store (region and credentials from the usual AWS_* variables).
    blob_store: str = ""
    #: The S3 endpoint (MinIO, Ceph, ...); empty: boto3's own choice (AWS_ENDPOINT_URL, else AWS).
    s3_endpoint_url: str = ""
    #: Files at least this large, in bytes, are published as S3 multipart uploads (5 MiB at least).
    s3_multipart_threshold: int = 64 * MIB
    #: 0: the index streams files from the store. More: downloads are redirected (302) to a
    #: presigned URL of the object store valid for this many seconds (S3 only; S3 allows 7 days).
    blob_redirect_seconds: int = 0
    #: A filesystem blob directory read when the main store lacks a key: the old store while
    #: ``assay admin blobs migrate`` copies it (reads stay whole during the move).
    blob_store_fallback: Path | None = None
    #: Bytes of small distribution and .metadata files (each up to 256 KiB) kept in memory per
    #: worker, so the most asked-for files are served without touching the disk (issue 17).
    file_cache_bytes: int = 64 * MIB
    #: Behind nginx: file downloads from the filesystem store are answered with
    #: ``X-Accel-Redirect: <prefix><key>`` and nginx sends the bytes (zero copy) from an
    #: ``internal`` location aliased to the blob directory. Empty: assay sends them.
    accel_redirect_prefix: str = ""
    #: Under uvicorn, cache hits of pages and files are written to the connection by assay's
    #: HTTP protocol itself, large files by sendfile (issue 17; assay.web.wire). False: every
    #: request goes through uvicorn's ASGI cycle (the same bytes, at more CPU per request).
    wire_answers: bool = True
    #: PostgreSQL: seconds a server may keep a project's serial without asking the database again
    #: (changes arrive at once by LISTEN/NOTIFY; this bounds the staleness should one be lost,
    #: issue 17). 0: ask on every request. SQLite needs no bound (its shared memory says).
    serial_poll_seconds: int = 2
    # --- a CDN in front (issue 16; see assay.index.cdn) ---
    #: Seconds a shared cache (a CDN) may serve simple pages, project JSON and provenance without
    #: asking again (Cache-Control s-maxage); purges keep them current. 0: revalidate each time.
    cdn_s_maxage: int = 0
    #: Seconds a client (pip, uv) may reuse those responses without asking again (max-age).
    cdn_max_age: int = 0
    #: Where purges go after each project change; empty: none are sent.
    cdn_purge_url: str = ""
    #: "fastly" (POST with the Surrogate-Key header: Fastly's purge by key), "purge" (an HTTP
    #: PURGE with Surrogate-Key, as Varnish and nginx purge modules take) or "webhook" (POST JSON).
    cdn_purge_style: str = "fastly"
    #: Credential sent with each purge (Fastly-Key for "fastly", else a Bearer token).
    cdn_purge_token: str = ""
    # --- behind a proxy ---
    #: Take the client address and scheme from X-Forwarded-For / -Proto (uvicorn's proxy_headers),
    #: from the addresses in ``forwarded_allow_ips`` only.
    proxy_headers: bool = False
    #: Proxies trusted for X-Forwarded-* (uvicorn's forwarded_allow_ips); "*" trusts any.
    #: Empty: uvicorn's default (127.0.0.1, or FORWARDED_ALLOW_IPS).
    forwarded_allow_ips: tuple[str, ...] = ()
    # --- how the server listens ---
    #: The HTTP server (issue 17, item 3): "uvicorn", or "granian" (optional, ``pip install
    #: granian``): its ASGI pathsend extension sends large files off the event loop, but it lacks
    #: uvicorn's reason phrases, proxy headers and keep-alive timeout (assay.cli.granian).
    server: str = "uvicorn"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Public base URL (scheme://host[:port]) used for absolute URLs (PEP 740 provenance,
    #: PEP 807 discovery). Empty: derived from each request's Host header.
    base_url: str = ""
    #: Host names (the Host header without its port) requests may name; any other gets 400, as
    #: Django's ALLOWED_HOSTS does. "*" allows every host, ".example.org" it and its subdomains.
    #: Empty: any host on loopback; beyond it, without base_url, only this machine's own
    #: addresses and names (see assay.web.hosts). TOML: a list; env: comma-separated.
    allowed_hosts: tuple[str, ...] = ()
    #: Seconds an in-flight request (an upload) may take to finish after SIGTERM.
    graceful_timeout: int = 30
    log_level: str = "info"
    access_log: bool = False
    # --- request limits (issue 6: slow-loris and oversized requests; see assay.web.security) ---
    #: Seconds an idle keep-alive connection stays open between requests (uvicorn's
    #: timeout_keep_alive).
    keep_alive_timeout: int = 5
    #: Seconds a client has to send a request's line and headers, from the connection (or the
    #: request's first byte) on; a client that trickles them is cut off with 408.
    header_timeout: int = 10
    #: Largest request line plus headers, in bytes (431 beyond it).
    max_header_size: int = 64 * 1024
    #: Seconds a request body may pause, and the grace period before ``body_min_rate`` applies.
    body_timeout: int = 30
    #: Bytes per second a request body must average once ``body_timeout`` has passed (408 below).
    body_min_rate: int = 1024
    #: Largest request body for every endpoint but uploads (which have ``max_upload_size``).
    max_request_body: int = 1 * MIB
    # --- policy ---
    #: PyPI's default per-file limit is 100 MiB.
    max_upload_size: int = 100 * MIB
    #: Largest core metadata file (METADATA / PKG-INFO) accepted inside a distribution.
    max_metadata_size: int = 4 * MIB
    #: Require a valid token for reads too (a private index).
    private: bool = False
    # --- trusted publishing ---
    #: The OIDC audience tokens must be issued for (PyPI uses "pypi").
    oidc_audience: str = "assay"
    #: Lifetime of minted upload tokens; PEP 807 allows 900 s to 21 600 s.
    minted_token_lifetime: int = 900
    #: Minimum seconds between two fetches of one issuer's keys when a token names an unknown
    #: key id (Warehouse: 60), so forged key ids cannot make the index hammer an issuer.
    jwks_refetch_seconds: int = 60
    #: Days an unused pending publisher stays registered (PyPI: 30).
    pending_publisher_days: int = 30
    #: Accept attestations on API-token uploads when they match a registered publisher
    #: (off by default, as on PyPI).
    token_upload_attestations: bool = False
    # --- staged releases (issue 14; see assay.stages) ---
    #: Seconds a stage waits for approval before it expires and is removed (default 7 days).
    stage_ttl: int = 7 * 24 * 3600
    # --- attestations ---
    #: "production", "staging" (sigstore-python's embedded roots) or a path to trusted_root.json.
    sigstore_trust_root: str = "production"
    # --- transparency log (issue 13; see assay.log.keys) ---
    #: File holding the log's Ed25519 signing key (PEM, or a Go note signer key); unset: the
    #: key in <data_dir>/log/signing.key, created on first start with mode 0600.
    log_key: Path | None = None
    #: Seconds between two newly signed checkpoints at most (while the log grows, a checkpoint
    #: is at most this old); 0 signs one for every new tree size asked for.
    log_checkpoint_interval: int = 2
    # --- web interface (issue 15; see docs/web.md) ---
    #: A transparency-log viewer URL with ``{log_index}`` where an attestation's Rekor log index
    #: goes: the provenance panel links each attestation's log entry there. Empty: the index
    #: number is shown without a link.
    log_viewer_url: str = ""
    #: Seconds a web session (an API token exchanged for a cookie) lasts at most; it ends sooner
    #: with its token.
    session_lifetime: int = 8 * 60 * 60

    # --- upstream mirrors (issue 12; see assay.mirror and docs/mirrors.md) ---
    #: Seconds a mirrored upstream page is served as kept before it is revalidated with upstream
    #: (If-None-Match / If-Modified-Since); while upstream is unreachable the kept page is served.
    mirror_page_ttl: int = 600
    #: Largest file taken from an upstream on first download, in bytes.
    mirror_max_file_size: int = 1024 * MIB
    #: Prefix of every API token; secret scanners key on it.
    token_prefix: str = "assay-"  # noqa: S105 - a prefix, not a secret
    #: Where a config file was read from (informational).
    config_file: Path | None = field(default=None, compare=False)
    #: Where each setting not left at its default came from: "--data-dir", "ASSAY_DATA_DIR",
    #: "config file <path>" (informational: ``assay admin`` says which data directory it uses).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")

    # ---- derived values ----
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'assay.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def validate(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key must be given together")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.max_upload_size < 1:
            raise ConfigError("max_upload_size must be positive")
        for name in (
            "keep_alive_timeout", "header_timeout", "max_header_size", "body_timeout", "max_request_body",
            "db_statement_timeout", "db_pool_timeout", "mirror_max_file_size", "stage_ttl",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.mirror_page_ttl < 0:
            raise ConfigError(f"mirror_page_ttl must not be negative, got {self.mirror_page_ttl}")
        if self.log_checkpoint_interval < 0:
            raise ConfigError(f"log_checkpoint_interval must not be negative, got {self.log_checkpoint_interval}")
        if self.body_min_rate < 0:
            raise ConfigError(f"body_min_rate must not be negative, got {self.body_min_rate}")
        # PEP 807: temporary upload credentials expire no sooner than 15 min and no later
        # than 6 h after the request.
        if not 900 <= self.minted_token_lifetime <= 21600:
            raise ConfigError(
                "minted_token_lifetime must be between 900 and 21600 seconds (PEP 807), "
                f"got {self.minted_token_lifetime}"
            )
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        for entry in self.allowed_hosts:
            if not (_HOST_PATTERN.fullmatch(entry) or _is_ip(entry.removeprefix("[").removesuffix("]"))):
                raise ConfigError(
                    f"allowed_hosts: {entry!r} is not a host name (give names without scheme or port, "
                    "e.g. packages.example.org, .example.org for it and its subdomains, or *)"
                )
        if self.blob_store and not re.fullmatch(r"s3://[^/?#]+(/[^?#]*)?", self.blob_store):
            raise ConfigError(
                f"blob_store must be empty (files in the data directory) or s3://bucket/prefix, got {self.blob_store!r}"
            )
        if self.accel_redirect_prefix and not (
            self.accel_redirect_prefix.startswith("/") and self.accel_redirect_prefix.endswith("/")
        ):
            raise ConfigError(
                f"accel_redirect_prefix must be a path starting and ending with '/', got {self.accel_redirect_prefix!r}"
            )
        if self.server not in ("uvicorn", "granian"):
            raise ConfigError(f"server must be 'uvicorn' or 'granian', got {self.server!r}")
        if self.serial_poll_seconds < 0:
            raise ConfigError(f"serial_poll_seconds must not be negative, got {self.serial_poll_seconds}")
        if self.file_cache_bytes < 0:
            raise ConfigError(f"file_cache_bytes must not be negative, got {self.file_cache_bytes}")
        if self.s3_multipart_threshold < 5 * MIB:
            raise ConfigError(
                f"s3_multipart_threshold must be at least 5 MiB (S3's least part), got {self.s3_multipart_threshold}"
            )
        if not 0 <= self.blob_redirect_seconds <= 7 * 86400:
            raise ConfigError(
                "blob_redirect_seconds must be between 0 and 604800 (S3 presigned URLs), "
                f"got {self.blob_redirect_seconds}"
            )
        for name in ("cdn_s_maxage", "cdn_max_age"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.cdn_purge_style not in ("fastly", "purge", "webhook"):
            raise ConfigError(f"cdn_purge_style must be fastly, purge or webhook, got {self.cdn_purge_style!r}")
        if self.cdn_purge_url and not self.cdn_purge_url.startswith(("http://", "https://")):
            raise ConfigError(f"cdn_purge_url must start with http:// or https://, got {self.cdn_purge_url!r}")
        if self.blob_redirect_seconds and not self.blob_store:
            raise ConfigError("blob_redirect_seconds needs an s3:// blob_store (the filesystem store has no URLs)")

        if self.log_viewer_url and (
            not self.log_viewer_url.startswith(("http://", "https://")) or "{log_index}" not in self.log_viewer_url
        ):
            raise ConfigError(
                "log_viewer_url must be an http(s) URL containing {log_index}, got " + repr(self.log_viewer_url)
            )
        if self.session_lifetime < 60:
            raise ConfigError(f"session_lifetime must be at least 60 seconds, got {self.session_lifetime}")
        _check_trust_root(self.sigstore_trust_root)
        return self


#: An allowed_hosts entry: "*", or a DNS name (a leading dot: it and its subdomains); else it
#: must be an IP address (IPv6 bracketed or not). No port: Hosts are compared without theirs.
_HOST_PATTERN = re.compile(
    r"\*|\.?(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.?",
    re.IGNORECASE,
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_trust_root(spec: str) -> None:
    """What can be told of the trust root without sigstore, which a server imports only for its
    first attested upload (assay.attestations.deferred): an embedded root's name, or a file
    holding a JSON object."""
    from assay.attestations.trust import TrustRootError, check_trust_root

    try:
        check_trust_root(spec)
    except TrustRootError as exc:
        raise ConfigError(f"sigstore_trust_root: {exc} (give production, staging or a trusted_root.json)") from None


def _field_types() -> dict[str, Any]:
    return get_type_hints(Settings)


def _coerce(name: str, raw: Any, source: str) -> Any:
    typ = _field_types()[name]
    optional = False
    if get_origin(typ) in (type(int | None),) or (get_origin(typ) is not None and type(None) in get_args(typ)):
        args = [a for a in get_args(typ) if a is not type(None)]
        optional = True
        typ = args[0]
    if optional and (raw is None or raw == ""):
        return None
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected true or false, got {raw!r}")
        if typ is int:
            # Whole numbers only: int(80.5) would silently truncate a typo, int([80]) crash.
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError(f"expected an integer, got {raw!r}")
            return int(raw)
        if typ is Path:
            if not isinstance(raw, str | os.PathLike):
                raise ValueError(f"expected a path, got {raw!r}")
            return Path(raw).expanduser()
        if get_origin(typ) is tuple:
            # A TOML list, a repeated flag (a tuple), or a comma-separated environment value.
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError(f"expected a list of strings, got {raw!r}")
            return tuple(i.strip().lower() for i in items if i.strip())
        if typ is str:
            if not isinstance(raw, str | int | float):
                raise ValueError(f"expected a string, got {raw!r}")
            return str(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} ({source}): {exc}") from None
    raise ConfigError(f"{name} ({source}): unsupported type")  # pragma: no cover


_INFORMATIONAL = {"config_file", "sources"}


def _known() -> set[str]:
    return {f.name for f in fields(Settings) if f.name not in _INFORMATIONAL}


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Accept both a flat file and one with an [assay] table.
    table = data.get("assay", data) if isinstance(data.get("assay"), dict) else data
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _known():
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        values[name] = _coerce(name, value, f"config file {path}")
    return values


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from the four layers. ``overrides`` are command-line values (None = unset)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    from_env = env.get(f"{ENV_PREFIX}CONFIG")
    cfg_path = config_file or (Path(from_env) if from_env else None)
    if cfg_path is not None:
        from_file = read_config_file(cfg_path)
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, f"config file {cfg_path}"))
    for name in _known():
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = _coerce(name, env[key], f"environment variable {key}")
            sources[name] = key
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in _known():
            raise ConfigError(f"unknown setting {name!r}")
        flag = f"--{name.replace('_', '-')}"
        values[name] = _coerce(name, value, flag)
        sources[name] = flag
    settings = Settings(**values, config_file=cfg_path, sources=sources)
    return settings.validate()


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a worker process."""
    out: dict[str, str] = {}
    for f in fields(Settings):
        if f.name in _INFORMATIONAL:
            continue
        value = getattr(settings, f.name)
        if value is None:
            out[ENV_PREFIX + f.name.upper()] = ""
        elif isinstance(value, bool):
            out[ENV_PREFIX + f.name.upper()] = "true" if value else "false"
        elif isinstance(value, tuple):
            out[ENV_PREFIX + f.name.upper()] = ",".join(value)
        else:
            out[ENV_PREFIX + f.name.upper()] = str(value)
    return out


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes).validate()
