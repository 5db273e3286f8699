"""Uploading through httpx with PyPI's legacy form, field by field, as twine sends it."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx
from packaging.utils import parse_sdist_filename, parse_wheel_filename


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()}


def form_for(path: Path, data: bytes | None = None) -> dict[str, str]:
    content = data if data is not None else path.read_bytes()
    if path.name.endswith(".whl"):
        name, version, _b, _t = parse_wheel_filename(path.name)
        filetype, pyversion = "bdist_wheel", "py3"
    else:
        name, version = parse_sdist_filename(path.name)
        filetype, pyversion = "sdist", "source"
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": str(name),
        "version": str(version),
        "filetype": filetype,
        "pyversion": pyversion,
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }


def upload(
    client: httpx.Client,
    path: Path,
    token: str | None,
    *,
    fields: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    content: bytes | None = None,
    content_filename: str | None = None,
    attestations: str | None = None,
) -> httpx.Response:
    data = content if content is not None else path.read_bytes()
    form: dict[str, Any] = form_for(path, data)
    form.update(fields or {})
    for key in drop:
        form.pop(key, None)
    if attestations is not None:
        form["attestations"] = attestations
    headers = basic(token) if token else {}
    files = {"content": (content_filename or path.name, data, "application/octet-stream")}
    return client.post("/legacy/", data=form, files=files, headers=headers)


def multipart(
    fields: list[tuple[str, str | bytes]],
    file: tuple[str, str | bytes, bytes] | None = None,
    *,
    boundary: str = "assayTestBoundary7MA4YWxkTrZu0gW",
) -> tuple[bytes, str]:
    """A multipart/form-data body built byte by byte (so a test can put anything in it:
    invalid UTF-8, control characters, paths in the filename). ``file`` is (field name,
    filename, data). Returns the body and its Content-Type."""

    def raw(value: str | bytes) -> bytes:
        return value.encode() if isinstance(value, str) else value

    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        out += b'Content-Disposition: form-data; name="' + raw(name) + b'"\r\n\r\n'
        out += raw(value) + b"\r\n"
    if file is not None:
        name, filename, data = file
        out += f"--{boundary}\r\n".encode()
        out += b'Content-Disposition: form-data; name="' + raw(name)
        out += b'"; filename="' + raw(filename) + b'"\r\n'
        out += b"Content-Type: application/octet-stream\r\n\r\n"
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def form_fields(
    path: Path, data: bytes | None = None, **changes: str | None
) -> list[tuple[str, str | bytes]]:
    """``form_for`` as an ordered list for ``multipart``; a change to None drops the field."""
    form: dict[str, str | None] = {**form_for(path, data), **changes}
    return [(k, v) for k, v in form.items() if v is not None]


def raw_http(url: str, request: bytes, *, timeout: float = 30) -> tuple[int, str, bytes]:
    """Send ``request`` (a complete HTTP/1.1 request, bytes as given: no client-side path
    normalization) to the server at ``url`` and return (status, reason, body)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    _version, code, reason = [*status_line.split(" ", 2), ""][:3]
    return int(code), reason, body


def raw_get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """GET ``path`` exactly as written (``/files/../x`` stays un-normalized)."""
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return raw_http(url, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
