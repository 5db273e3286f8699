"""Which Host headers the index answers (issue 10, item 8).

Without ``base_url``, absolute URLs (PEP 740 provenance, PEP 807 discovery, the JSON API's
file URLs) are built from each request's Host header, so a forged ``Host: evil.example`` would
make the index hand out ``http://evil.example/...`` endpoints, to that client and to any cache
in between. The rules, after Django's ``ALLOWED_HOSTS``:

* ``allowed_hosts`` set: a request naming any other host is answered 400 "Host not allowed"
  (``*`` allows all, ``.example.org`` it and its subdomains; ports are ignored);
* else, with ``base_url`` set: the Host header builds nothing, so any host is answered;
* else, listening on loopback only: any host is answered, as before (a reverse proxy on the
  same machine passes its own Host);
* else (listening beyond loopback, absolute URLs from the Host header, no list): ``serve``
  warns at start, and only the machine's own names are answered: the address the connection
  arrived on, loopback addresses, ``localhost``, the configured ``host`` and the machine's host
  name. Anything else needs ``--allowed-host`` (or ``--base-url``).

A request without a Host header (HTTP/1.0) builds its URLs from the listening address and is
always answered; more than one Host header is a 400 (RFC 9112 section 3.2).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from assay.config import Settings
from assay.web.responses import TextError

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})


def host_name(header: str) -> str:
    """The host of a Host header value, lower case, without port, IPv6 brackets or final dot."""
    value = header.strip().lower()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _normalized(entry: str) -> str:
    entry = entry.strip().lower()
    return entry if entry.startswith(".") or entry == "*" else host_name(entry)


def is_loopback(host: str) -> bool:
    name = host_name(host)
    if name in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    #: Names (and ``.suffix`` patterns) always answered.
    allowed: frozenset[str]
    #: Also answer the address the connection arrived on (the listening address).
    own_address: bool
    #: Where to point a refused client, for the message.
    hint: str

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy | None:
        """The policy to enforce, or None when every host is answered."""
        if settings.allowed_hosts:
            allowed = frozenset(_normalized(e) for e in settings.allowed_hosts)
            if "*" in allowed:
                return None
            return cls(allowed, own_address=False, hint="the operator lists them with --allowed-host")
        if settings.base_url or is_loopback(settings.host):
            return None
        own = {*_LOCAL_NAMES, host_name(settings.host), socket.gethostname().lower()}
        return cls(
            frozenset(own),
            own_address=True,
            hint="without --base-url or --allowed-host it answers only to this machine's own names and addresses",
        )

    def allows(self, name: str, local_address: str | None) -> bool:
        if name in self.allowed or (self.own_address and name == local_address):
            return True
        return any(p.startswith(".") and (name == p[1:] or name.endswith(p)) for p in self.allowed)

    def refusal(self, hosts: Sequence[bytes], server: tuple[str, int | None] | None) -> str | None:
        """Why a request with these Host headers is refused (400), or None."""
        if not hosts:
            return None
        if len(hosts) > 1:
            return "Bad request: more than one Host header (RFC 9112)."
        name = host_name(hosts[0].decode("latin-1"))
        local = host_name(server[0]) if server else None
        if self.allows(name, local):
            return None
        shown = name if len(name) <= 100 else name[:100] + "..."
        return f"Host not allowed: {shown!r} is not a name this index answers to ({self.hint})."


class AllowedHosts:
    """Pure ASGI: refuses a request whose Host is not allowed before anything reads it."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [v for k, v in scope.get("headers", []) if k == b"host"]
            refusal = self.policy.refusal(hosts, scope.get("server"))
            if refusal is not None:
                await TextError(400, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def allowed_hosts(app: ASGIApp, settings: Settings) -> ASGIApp:
    """The middleware factory for ``create_app``: no layer at all when every host is answered
    (the loopback default), so the hot paths pay nothing."""
    policy = HostPolicy.from_settings(settings)
    return app if policy is None else AllowedHosts(app, policy)


def startup_warning(settings: Settings) -> str | None:
    """What ``serve`` says at start when absolute URLs would come from Host headers of clients
    anywhere on the network."""
    if settings.allowed_hosts or settings.base_url or is_loopback(settings.host):
        return None
    return (
        f"listening on {settings.host} without --base-url or --allowed-host: absolute URLs "
        "(provenance, Trusted Publishing discovery) are built from each request's Host header, so "
        "only requests naming this machine (its addresses, localhost, "
        f"{socket.gethostname()}) are answered; give --base-url, or --allowed-host for each "
        "public name of the index"
    )


def startup_refusal(settings: Settings) -> str | None:
    """Why ``serve`` must not start (issue 16): with several workers, or listening beyond
    loopback, behind a load balancer or a CDN, absolute URLs (provenance, Trusted Publishing
    discovery, JSON API file URLs) would come from each request's Host header, and a cache
    would keep a forged one for everybody. Such a set-up names its public URL or its hosts."""
    if settings.allowed_hosts or settings.base_url:
        return None
    if settings.workers > 1:
        where = f"with {settings.workers} workers"
    elif not is_loopback(settings.host):
        where = f"listening on {settings.host}"
    else:
        return None
    return (
        f"refusing to start {where} without --base-url or --allowed-host: absolute URLs would be "
        "built from each request's Host header; give --base-url (the index's public URL) or "
        "--allowed-host for each name clients use"
    )
