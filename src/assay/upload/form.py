"""Reading PyPI's legacy upload form (multipart/form-data) as a stream, with limits.

The distribution (the ``content`` part) goes straight into a staged blob while its sha256,
blake2b-256 and md5 are computed; the bytes are handed to a worker thread in 1 MiB batches so
hashing a 100 MiB file never stalls the event loop (hashlib releases the GIL). Every other part
is a small text field held in memory under a size cap. Anything malformed raises ``FormError``
with a message that says what was wrong; the caller discards the staged blob.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from assay.storage.blobs import StagedBlob

if TYPE_CHECKING:
    from assay.upload.service import UploadRefusal

_FLUSH_AT = 1024 * 1024


class FormError(ValueError):
    """The request body is not an acceptable upload form. ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    @property
    def code(self) -> UploadRefusal:
        """The refusal's reason code (``assay.web.refusals``): what its status means."""
        return "too-large" if self.status == 413 else "invalid"


@dataclass(frozen=True)
class FormLimits:
    max_content: int
    max_field: int = 4 * 1024 * 1024
    max_fields_total: int = 16 * 1024 * 1024
    max_parts: int = 200


@dataclass
class Content:
    filename: str
    staged: StagedBlob
    size: int
    sha256: str
    blake2_256: str
    md5: str


@dataclass
class UploadForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    content: Content | None = None

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def getall(self, name: str) -> list[str]:
        return self.fields.get(name, [])


def _content_disposition(raw: str) -> tuple[str | None, str | None]:
    msg = email.message.Message()
    msg["content-disposition"] = raw
    if msg.get_content_disposition() != "form-data":
        raise FormError("each part of the form must have 'Content-Disposition: form-data'")
    name = msg.get_param("name", header="content-disposition", unquote=False)
    filename = msg.get_param("filename", header="content-disposition", unquote=False)
    if isinstance(name, tuple) or isinstance(filename, tuple):
        # RFC 7578 §4.2 forbids RFC 2231 extended parameters in form-data.
        raise FormError("extended (RFC 2231) parameters are not allowed in form-data")
    return (_unquote(name) if name is not None else None, _unquote(filename) if filename is not None else None)


def _unquote(value: str) -> str:
    """A quoted-string's value. Not ``email.utils.unquote``: that also strips an RFC 822
    ``<...>`` pair, which is no quoting in form-data (a field named ``<0>`` is named ``<0>``)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
    return value


class _Hasher:
    def __init__(self, staged: StagedBlob) -> None:
        self.staged = staged
        self.sha256 = hashlib.sha256()
        self.blake2 = hashlib.blake2b(digest_size=32)
        self.md5 = hashlib.md5(usedforsecurity=False)

    def feed(self, data: bytes) -> None:
        self.sha256.update(data)
        self.blake2.update(data)
        self.md5.update(data)
        self.staged.write(data)


class _Reader:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, limits: FormLimits, staged: StagedBlob) -> None:
        self.limits = limits
        self.staged = staged
        self.form = UploadForm()
        self.hasher = _Hasher(staged)
        self.pending = bytearray()  # content bytes not yet written
        self.content_size = 0
        self.content_filename: str | None = None
        self.content_seen = False
        self.fields_total = 0
        self.parts = 0
        self.error: FormError | None = None
        # per-part state
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._name: str | None = None
        self._is_content = False
        self._is_other_file = False
        self._value = bytearray()

    def _fail(self, error: FormError) -> NoReturn:
        if self.error is None:
            self.error = error
        raise error

    # -- header callbacks --
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            self._fail(FormError(f"too many form parts (more than {self.limits.max_parts})"))
        self._headers = {}
        self._name = None
        self._is_content = False
        self._is_other_file = False
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > 8192:
            self._fail(FormError("a part header is too long"))

    def on_header_end(self) -> None:
        try:
            name = self._header_field.decode("ascii").strip().lower()
            value = self._header_value.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._fail(FormError("a part header is not valid UTF-8"))
        self._headers[name] = value
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        raw = self._headers.get("content-disposition")
        if raw is None:
            self._fail(FormError("a form part has no Content-Disposition header"))
        name, filename = _content_disposition(raw)
        if not name:
            self._fail(FormError("a form part has no name"))
        self._name = name
        if name == "content":
            if self.content_seen:
                self._fail(FormError("the form has more than one 'content' part"))
            if filename is None:
                self._fail(FormError("the 'content' part must be a file upload with a filename"))
            self.content_seen = True
            self._is_content = True
            self.content_filename = filename
        elif filename is not None:
            # Other file parts (a legacy gpg_signature, say) are read and dropped: PyPI no
            # longer accepts signatures, and nothing else is a file.
            self._is_other_file = True

    # -- data callbacks --
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._is_content:
            self.content_size += n
            if self.content_size > self.limits.max_content:
                self._fail(
                    FormError(
                        f"File too large. The limit is {self.limits.max_content} bytes "
                        f"({self.limits.max_content / 1024 / 1024:.0f} MiB).",
                        status=413,
                    )
                )
            self.pending += data[start:end]
            return
        self.fields_total += n
        if self.fields_total > self.limits.max_fields_total:
            self._fail(FormError("the form's text fields are too large in total", status=413))
        if self._is_other_file:
            return
        self._value += data[start:end]
        if len(self._value) > self.limits.max_field:
            self._fail(FormError(f"form field {self._name!r} is too large", status=413))

    def on_part_end(self) -> None:
        if self._is_content or self._is_other_file or self._name is None:
            return
        try:
            text = self._value.decode("utf-8")
        except UnicodeDecodeError:
            self._fail(FormError(f"form field {self._name!r} is not valid UTF-8"))
        self.form.fields.setdefault(self._name, []).append(text)


def _boundary(content_type: str | None) -> bytes:
    if not content_type:
        raise FormError("missing Content-Type: an upload must be multipart/form-data")
    msg = email.message.Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        raise FormError(
            f"Content-Type must be multipart/form-data, got {msg.get_content_type()!r}", status=415
        )
    boundary = msg.get_param("boundary")
    if not boundary or isinstance(boundary, tuple):
        raise FormError("multipart/form-data without a boundary parameter")
    value = str(boundary)
    if len(value) > 200 or not value.isascii():
        raise FormError("invalid multipart boundary")
    return value.encode("ascii")


async def read_upload_form(
    content_type: str | None,
    chunks: AsyncIterator[bytes],
    staged: StagedBlob,
    limits: FormLimits,
) -> UploadForm:
    boundary = _boundary(content_type)
    reader = _Reader(limits, staged)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
            "on_part_data": reader.on_part_data,
            "on_part_end": reader.on_part_end,
        },
    )
    ended = False

    def _end() -> None:
        nonlocal ended
        ended = True

    parser.set_callback("end", _end)
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            parser.write(chunk)
            if len(reader.pending) >= _FLUSH_AT:
                batch = bytes(reader.pending)
                reader.pending.clear()
                await anyio.to_thread.run_sync(reader.hasher.feed, batch)
        parser.finalize()
    except FormError:
        raise
    except MultipartParseError as exc:
        raise FormError(f"malformed multipart body: {exc}") from None
    if not ended:
        raise FormError("malformed multipart body: the closing boundary is missing (truncated upload?)")
    if reader.pending:
        batch = bytes(reader.pending)
        reader.pending.clear()
        await anyio.to_thread.run_sync(reader.hasher.feed, batch)
    form = reader.form
    if reader.content_seen and reader.content_filename is not None:
        await anyio.to_thread.run_sync(staged.close)
        form.content = Content(
            filename=reader.content_filename,
            staged=staged,
            size=reader.content_size,
            sha256=reader.hasher.sha256.hexdigest(),
            blake2_256=reader.hasher.blake2.hexdigest(),
            md5=reader.hasher.md5.hexdigest(),
        )
    return form
