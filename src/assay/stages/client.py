"""The client side of ``/_/releases/`` (``assay release``): plain HTTPS with the maintainer's
API token, as twine sends it (HTTP Basic, user ``__token__``). Imports nothing of the server."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from packaging.utils import canonicalize_name


class ReleaseError(Exception):
    """What the index refused, or why it could not be asked; the message is for people."""


def index_url(repository_url: str) -> str:
    """The index's base from what a maintainer has at hand: its upload URL (``…/legacy/``,
    as twine's ``--repository-url``), its ``…/simple/`` or the index's root."""
    parts = urlsplit(repository_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReleaseError(f"--repository-url must be an http(s) URL, got {repository_url!r}")
    path = parts.path.rstrip("/")
    for tail in ("/legacy", "/simple"):
        if path.endswith(tail):
            path = path[: -len(tail)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def json_answer(response: httpx.Response, url: str) -> dict[str, Any]:
    """The JSON object an assay API answered; for a refusal, ``ReleaseError`` with the index's
    own message (its JSON errors are ``{"message": ...}``), else the body or the reason phrase."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.status_code >= 400:
        message = doc.get("message") if isinstance(doc, dict) else None
        raise ReleaseError(f"{response.status_code}: {message or response.text.strip() or response.reason_phrase}")
    if not isinstance(doc, dict):
        raise ReleaseError(f"unexpected answer from {url} (not a JSON object)")
    return doc


class ReleaseClient:
    def __init__(self, repository_url: str, token: str, *, timeout: float = 60) -> None:
        if not token:
            raise ReleaseError("an API token is needed: --token or ASSAY_TOKEN")
        self.base = index_url(repository_url)
        self._http = httpx.Client(auth=("__token__", token), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _url(self, project: str, version: str | None = None, action: str | None = None) -> str:
        url = f"{self.base}/_/releases/{canonicalize_name(project)}/"
        if version is not None:
            url += f"{version}/"
        if action is not None:
            url += action
        return url

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise ReleaseError(f"could not reach {self.base}: {exc}") from None
        return json_answer(response, url)

    def list(self, project: str) -> dict[str, Any]:
        return self._call("GET", self._url(project))

    def show(self, project: str, version: str) -> dict[str, Any]:
        return self._call("GET", self._url(project, version))

    def approve(self, project: str, version: str, totp: str) -> dict[str, Any]:
        return self._call("POST", self._url(project, version, "approve"), {"totp": totp})

    def reject(self, project: str, version: str, reason: str | None) -> dict[str, Any]:
        return self._call("POST", self._url(project, version, "reject"), {"reason": reason} if reason else {})
