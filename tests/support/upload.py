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
