"""Issue 6, item 4: hypothesis against the code that meets untrusted bytes first, in this process
(so many more inputs per second than through HTTP; tests/index/test_bad_input.py drives the same
inputs through a live server, and test_api_fuzz.py drives the HTTP API).

* the streaming upload parser (``assay.upload.form.read_upload_form``): arbitrary bodies and
  mutated valid ones, cut into arbitrary chunks: it returns a form or raises ``FormError`` (a 4xx
  status) and nothing else; a valid body round-trips exactly whatever the chunking; a refused
  body leaves nothing in staging once discarded (what the route does);
* filename and metadata validation (``assay.upload.dists``): any filename, any METADATA bytes,
  any archive bytes: a result or ``DistError``, nothing else;
* the simple-page renderers (``assay.index.html`` / ``json``): any project name, filename,
  version, yank reason, requires-python and status reason: the HTML parses back to exactly the
  anchors and values put in (every attribute escaped, nothing injected), and the JSON parses back
  to exactly the values put in.

Examples per target: ASSAY_FUZZ_EXAMPLES (CI 200; the long run is in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import tarfile
import zipfile
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assay.index import html as html_render
from assay.index import json as json_render
from assay.index.model import FileLink, ProjectLink, ProjectList, ProjectPage, ProjectStatus
from assay.storage.blobs import FilesystemBlobStore
from assay.upload.dists import ArchiveLimits, DistError, check_agreement, parse_filename, read_metadata
from assay.upload.form import FormError, FormLimits, UploadForm, read_upload_form
from tests.reliability.conftest import FUZZ_EXAMPLES
from tests.support.upload import multipart

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Text without lone surrogates (nothing that reaches these functions can hold one: it came in as
#: UTF-8 or from the database).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
NASTY = st.sampled_from(
    ['"', "'", "<", ">", "&", "</a>", '"><script>alert(1)</script>', "&amp;", "&#x3c;", "\x00", "\r\n",
     "\u2028", "é", "\U0001f600", "--", "-->", "<!--", "javascript:", "\\", "]]>"]
)
TEXTY = st.one_of(TEXT, NASTY, st.lists(st.one_of(TEXT, NASTY), max_size=5).map("".join))

LIMITS = FormLimits(max_content=64 * 1024, max_field=4 * 1024, max_fields_total=16 * 1024, max_parts=20)


# ---- the upload parser ----


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(body)]:
        out.append(body[last:p])
        last = p
    return out


def _parse(store: FilesystemBlobStore, content_type: str | None, chunks: list[bytes]) -> UploadForm | FormError:
    staged = store.stage()
    result: UploadForm | FormError
    try:
        result = asyncio.run(read_upload_form(content_type, _aiter(chunks), staged, LIMITS))
    except FormError as exc:
        result = exc
    finally:
        staged.discard()  # what the upload route does, whatever happened
    assert list(store.staging_dir.iterdir()) == []
    if isinstance(result, FormError):
        assert result.status in (400, 413, 415), result.status
        assert str(result)  # a refusal says why
    return result


FIELD_NAME = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters='"\\%'), min_size=1,
                     max_size=20).filter(lambda n: n != "content")
FIELDS = st.lists(st.tuples(FIELD_NAME, TEXT), max_size=6)
CONTENT = st.binary(max_size=4096)
FILENAME = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"\\'), min_size=1,
                   max_size=40)


@FUZZ
@given(fields=FIELDS, content=CONTENT, filename=FILENAME, cuts=st.lists(st.integers(0, 10**6), max_size=12))
# Names and filenames in <...> were stripped of the brackets (email.utils.unquote's RFC 822
# rule), and "<>" became a part with no name: found by a longer run of this test.
@example(fields=[("<0>", "")], content=b"", filename="<>", cuts=[])
def test_valid_bodies_round_trip_in_any_chunking(
    tmp_path: Path, fields: list[tuple[str, str]], content: bytes, filename: str, cuts: list[int]
) -> None:
    store = FilesystemBlobStore(tmp_path / "files")
    body, content_type = multipart(list(fields), ("content", filename, content))
    staged_bytes: bytes | None = None
    staged = store.stage()
    try:
        form = asyncio.run(read_upload_form(content_type, _aiter(_chunked(body, cuts)), staged, LIMITS))
        assert form.content is not None
        path = form.content.staged.path
        staged_bytes = path.read_bytes() if path.exists() else b""  # nothing staged for 0 bytes
        assert form.content.filename == filename
        assert form.content.size == len(content)
    finally:
        staged.discard()
    assert staged_bytes == content
    expected: dict[str, list[str]] = {}
    for name, value in fields:
        expected.setdefault(name, []).append(value)
    assert form.fields == expected


def _mutate(body: bytes, ops: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(body)
    for kind, position, payload in ops:
        at = position % (len(data) + 1)
        if kind == 0:  # flip a byte
            if data:
                data[at % len(data)] ^= 0xFF
        elif kind == 1:  # insert
            data[at:at] = payload
        elif kind == 2:  # delete
            del data[at : at + len(payload) + 1]
        else:  # truncate
            del data[at:]
    return bytes(data)


SPECIALS = st.sampled_from(
    [b"\r\n", b"--", b"--assayTestBoundary7MA4YWxkTrZu0gW", b"--assayTestBoundary7MA4YWxkTrZu0gW--\r\n",
     b'Content-Disposition: form-data; name="content"; filename="x.whl"\r\n\r\n',
     b"Content-Disposition: form-data; name*=utf-8''x\r\n", b"\r\n\r\n", b"\x00", b"\xff\xfe", b";", b'"']
)


@FUZZ
@given(
    fields=FIELDS,
    content=CONTENT,
    ops=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 10**6), st.one_of(SPECIALS, st.binary(max_size=16))),
        min_size=1,
        max_size=6,
    ),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_mutated_bodies_give_a_form_or_a_4xx(
    tmp_path: Path, fields: list[tuple[str, str]], content: bytes, ops: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    body, content_type = multipart(list(fields), ("content", "x-1.0.tar.gz", content))
    _parse(FilesystemBlobStore(tmp_path / "files"), content_type, _chunked(_mutate(body, ops), cuts))


@FUZZ
@given(
    content_type=st.one_of(
        st.none(),
        TEXTY,
        st.just("multipart/form-data; boundary=assayTestBoundary7MA4YWxkTrZu0gW"),
        st.builds(lambda b: f"multipart/form-data; boundary={b}", TEXTY),
    ),
    body=st.binary(max_size=2048),
)
def test_arbitrary_bodies_give_a_form_or_a_4xx(tmp_path: Path, content_type: str | None, body: bytes) -> None:
    _parse(FilesystemBlobStore(tmp_path / "files"), content_type, [body])


# ---- filenames, metadata, archives ----


def assert_says_why(error: Exception) -> None:
    """A refusal carries a message for the client (the upload route sends it as the 400 body)."""
    assert str(error).strip()

DIST_FILENAME = st.one_of(
    TEXTY,
    st.lists(
        st.one_of(NASTY, TEXT, st.sampled_from(["pkg", "-", "_", ".", "1.0", "1!2.0rc1.post3.dev4+local", "py3",
                                                 "none", "any", "cp311", "manylinux_2_17_x86_64", ".whl",
                                                 ".tar.gz", ".zip", ".tar.bz2", ".egg"])),
        max_size=10,
    ).map("".join),
)


@FUZZ
@given(filename=DIST_FILENAME)
def test_filenames_parse_or_give_a_dist_error(filename: str) -> None:
    try:
        dist = parse_filename(filename)
    except DistError as exc:
        assert_says_why(exc)
        return
    assert dist.filename == filename
    assert dist.packagetype in ("bdist_wheel", "sdist")


METADATA_LINE = st.one_of(
    st.sampled_from(["Metadata-Version: 2.1", "Metadata-Version: 2.4", "Metadata-Version: 9.9", "Name: pkg",
                     "Version: 1.0", "Version: not a version", "Requires-Python: >=3.8", "Requires-Python: >=3.8,<",
                     "Requires-Dist: x (>=1)", "Requires-Dist: ][", "License-File: LICENSE", "Dynamic: Version",
                     "Provides-Extra: a b", "Description-Content-Type: text/markdown; charset=utf-16", "", " cont",
                     "Keywords: a,b", "Project-URL: x", "Summary: s\u2028"]),
    st.builds(lambda k, v: f"{k}: {v}", st.sampled_from(["Name", "Version", "Summary", "Requires-Python", "X-Odd"]),
              TEXTY),
    TEXTY,
)
METADATA = st.one_of(
    st.lists(METADATA_LINE, max_size=12).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
    st.binary(max_size=512),
)


def _wheel(path: Path, metadata: bytes) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/METADATA", metadata)


def _sdist(path: Path, metadata: bytes) -> None:
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("pkg-1.0/PKG-INFO")
        info.size = len(metadata)
        tf.addfile(info, io.BytesIO(metadata))


@FUZZ
@given(metadata=METADATA, sdist=st.booleans(), form_name=TEXTY, form_version=TEXTY)
def test_metadata_validates_or_gives_a_dist_error(
    tmp_path: Path, metadata: bytes, sdist: bool, form_name: str, form_version: str
) -> None:
    path = tmp_path / ("pkg-1.0.tar.gz" if sdist else "pkg-1.0-py3-none-any.whl")
    (_sdist if sdist else _wheel)(path, metadata)
    dist = parse_filename(path.name)
    try:
        meta = read_metadata(path, dist, ArchiveLimits(max_metadata=64 * 1024))
        check_agreement(dist, meta, form_name, form_version)
        check_agreement(dist, meta, "pkg", "1.0")
    except DistError as exc:
        assert_says_why(exc)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=1024),
        st.tuples(METADATA, st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)), max_size=4)),
    ),
    sdist=st.booleans(),
)
def test_archives_read_or_give_a_dist_error(
    tmp_path: Path, data: bytes | tuple[bytes, list[tuple[int, int]]], sdist: bool
) -> None:
    path = tmp_path / ("pkg-1.0.tar.gz" if sdist else "pkg-1.0-py3-none-any.whl")
    if isinstance(data, tuple):  # a valid archive with a few bytes changed
        metadata, flips = data
        (_sdist if sdist else _wheel)(path, metadata)
        raw = bytearray(path.read_bytes())
        for position, value in flips:
            raw[position % len(raw)] = value
        path.write_bytes(bytes(raw))
    else:
        path.write_bytes(data)
    try:
        read_metadata(path, parse_filename(path.name), ArchiveLimits(max_metadata=64 * 1024))
    except DistError as exc:
        assert_says_why(exc)


def _patched_wheel(path: Path, patch: Callable[[bytearray, int, int], None]) -> None:
    """A one-member wheel, with ``patch(raw, local_header, central_header)`` applied."""
    _wheel(path, b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    raw = bytearray(path.read_bytes())
    patch(raw, raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02"))
    path.write_bytes(bytes(raw))


def test_an_encrypted_metadata_member_is_a_dist_error(tmp_path: Path) -> None:
    def encrypt(raw: bytearray, local: int, central: int) -> None:
        raw[local + 6] |= 0x01  # general purpose flag bit 0: encrypted
        raw[central + 8] |= 0x01

    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    _patched_wheel(path, encrypt)
    with pytest.raises(DistError, match="encrypted"):
        read_metadata(path, parse_filename(path.name), ArchiveLimits(max_metadata=64 * 1024))


def test_a_local_header_name_that_is_not_utf8_is_a_dist_error(tmp_path: Path) -> None:
    def mangle(raw: bytearray, local: int, _central: int) -> None:
        raw[local + 7] |= 0x08  # flag bit 11: the name is UTF-8
        raw[local + 30] = 0x89  # ...but its first byte cannot start a UTF-8 sequence

    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    _patched_wheel(path, mangle)
    with pytest.raises(DistError) as refused:
        read_metadata(path, parse_filename(path.name), ArchiveLimits(max_metadata=64 * 1024))
    assert_says_why(refused.value)


# ---- the simple-page renderers ----


class _Page(HTMLParser):
    """Collects the tags, their attributes and the anchors' text of a rendered page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[int, str] = {}
        self._in_anchor: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "a":
            self._in_anchor = len(self.tags) - 1
            self.text[self._in_anchor] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor = None

    def handle_data(self, data: str) -> None:
        if self._in_anchor is not None:
            self.text[self._in_anchor] += data


def _parsed(markup: str) -> _Page:
    page = _Page()
    page.feed(markup)
    page.close()
    return page


HEX = st.text("0123456789abcdef", min_size=64, max_size=64)
FILE_LINK = st.builds(
    FileLink,
    filename=TEXTY,
    url=TEXTY,
    sha256=HEX,
    size=st.integers(0, 2**40),
    upload_time=st.datetimes(min_value=dt.datetime(2000, 1, 1), timezones=st.just(dt.UTC)),
    requires_python=st.one_of(st.none(), TEXTY),
    yanked=st.one_of(st.booleans(), TEXTY),
    core_metadata_sha256=st.one_of(st.none(), HEX),
    provenance_url=st.one_of(st.none(), TEXTY),
)
PAGE = st.builds(
    ProjectPage,
    name=TEXTY,
    files=st.lists(FILE_LINK, max_size=5).map(tuple),
    versions=st.lists(TEXTY, max_size=5).map(tuple),
    status=st.builds(
        ProjectStatus,
        status=st.one_of(st.sampled_from(["active", "archived", "quarantined", "deprecated"]), TEXTY),
        reason=st.one_of(st.none(), TEXTY),
    ),
    serial=st.integers(0, 2**31),
)


def _no_cr(value: str) -> bool:
    # The HTML tokenizer turns CR and CRLF into LF in attribute values and text (HTML spec
    # "preprocessing the input stream"): not a loss assay could prevent, and no file, name or
    # reason that passes validation contains a CR.
    return "\r" not in value


@FUZZ
@given(page=PAGE)
def test_project_page_html_parses_back_to_its_values(page: ProjectPage) -> None:
    markup = html_render.render_project_page(page)
    parsed = _parsed(markup)
    # Only the tags the renderer writes: nothing injected.
    assert {tag for tag, _ in parsed.tags} <= {"html", "head", "meta", "title", "body", "h1", "a", "br"}
    anchors = [(i, attrs) for i, (tag, attrs) in enumerate(parsed.tags) if tag == "a"]
    assert len(anchors) == len(page.files)
    for (i, attrs), f in zip(anchors, page.files, strict=True):
        expected: dict[str, str | None] = {"href": f"{f.url}#sha256={f.sha256}"}
        if f.requires_python:
            expected["data-requires-python"] = f.requires_python
        if f.yanked is not False:
            expected["data-yanked"] = f.yanked if isinstance(f.yanked, str) else ""
        if f.core_metadata_sha256:
            expected["data-core-metadata"] = expected["data-dist-info-metadata"] = f"sha256={f.core_metadata_sha256}"
        if f.provenance_url:
            expected["data-provenance"] = f.provenance_url
        if all(_no_cr(str(v)) for v in expected.values()) and _no_cr(f.filename):
            assert attrs == expected
            assert parsed.text[i] == f.filename
        else:
            assert attrs.keys() == expected.keys()
    metas = {attrs.get("name"): attrs.get("content") for tag, attrs in parsed.tags if tag == "meta"}
    assert metas["pypi:repository-version"] == "1.4"
    if _no_cr(page.status.status):
        assert metas["pypi:project-status"] == page.status.status
    if page.status.reason and _no_cr(page.status.reason):
        assert metas["pypi:project-status-reason"] == page.status.reason


@FUZZ
@given(projects=st.lists(st.builds(ProjectLink, name=TEXTY, normalized_name=TEXTY), max_size=8))
def test_project_list_html_parses_back_to_its_values(projects: list[ProjectLink]) -> None:
    markup = html_render.render_project_list(ProjectList(tuple(projects), serial=1))
    parsed = _parsed(markup)
    assert {tag for tag, _ in parsed.tags} <= {"html", "head", "meta", "title", "body", "a", "br"}
    anchors = [(i, attrs) for i, (tag, attrs) in enumerate(parsed.tags) if tag == "a"]
    assert len(anchors) == len(projects)
    for (i, attrs), p in zip(anchors, projects, strict=True):
        if _no_cr(p.name) and _no_cr(p.normalized_name):
            assert attrs == {"href": f"{p.normalized_name}/"}
            assert parsed.text[i] == p.name


@FUZZ
@given(page=PAGE, projects=st.lists(st.builds(ProjectLink, name=TEXTY, normalized_name=TEXTY), max_size=5))
def test_json_pages_parse_back_to_their_values(page: ProjectPage, projects: list[ProjectLink]) -> None:
    doc = json.loads(json_render.render_project_page(page))
    assert doc["name"] == page.name
    assert doc["versions"] == list(page.versions)
    assert doc["project-status"]["status"] == page.status.status
    assert doc["project-status"].get("reason") == (page.status.reason or None)
    for entry, f in zip(doc["files"], page.files, strict=True):
        assert entry["filename"] == f.filename
        assert entry["url"] == f.url
        assert entry["hashes"] == {"sha256": f.sha256}
        assert entry["size"] == f.size
        # PEP 592 / 691: false, true, or a non-empty reason.
        assert entry["yanked"] == (True if f.yanked == "" else f.yanked)
        assert entry.get("requires-python") == (f.requires_python or None)
        assert entry["provenance"] == f.provenance_url
    listing = json.loads(json_render.render_project_list(ProjectList(tuple(projects), serial=7)))
    assert listing["projects"] == [{"name": p.name} for p in projects]
    assert listing["meta"] == {"api-version": "1.4", "_last-serial": 7}


def test_the_renderers_escape_a_known_injection() -> None:
    """One fixed case, so a reader sees what the properties above protect against."""
    evil = '"><script>alert(1)</script>'
    link = FileLink(evil, evil, "0" * 64, 1, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), evil, evil, None, evil)
    page = ProjectPage(evil, (link,), ("1",), ProjectStatus("active", evil), 1)
    markup = html_render.render_project_page(page)
    assert "<script>" not in markup
    assert not [tag for tag, _ in _parsed(markup).tags if tag == "script"]



def test_a_zip_claiming_a_newer_format_is_a_dist_error(tmp_path: Path) -> None:
    """Found by test_archives_read_or_give_a_dist_error: a central directory entry whose "version
    needed to extract" is newer than zipfile supports made ZipFile() raise NotImplementedError,
    which reached the client as a 500."""
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    _wheel(path, b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    raw = bytearray(path.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 6 : central + 8] = (64).to_bytes(2, "little")  # version needed: 6.4
    path.write_bytes(bytes(raw))
    try:
        read_metadata(path, parse_filename(path.name), ArchiveLimits(max_metadata=64 * 1024))
    except DistError as exc:
        assert_says_why(exc)
    else:
        raise AssertionError("accepted")
