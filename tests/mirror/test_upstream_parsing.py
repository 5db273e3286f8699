"""Upstream pages parse faithfully, in both forms (unit tests of the parsers; the fetching is
tested against real servers in test_engine.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from assay.mirror.upstream import UpstreamError, parse_html, parse_json, parse_list_html, parse_list_json

PAGE = "https://up.example/simple/demo/"
SHA = "a" * 64


def test_html_carries_every_pep_503_attribute() -> None:
    body = f"""<!DOCTYPE html><html><head>
    <meta name="pypi:repository-version" content="1.4">
    <meta name="pypi:project-status" content="quarantined">
    <meta name="pypi:project-status-reason" content="under review">
    </head><body>
    <a href="../../files/demo-1.0.tar.gz#sha256={SHA.upper()}" data-requires-python="&gt;=3.9"
       data-yanked="" data-dist-info-metadata="sha256={SHA}">demo-1.0.tar.gz</a>
    <a href="https://cdn.example/demo-2.0-py3-none-any.whl#sha256={SHA}" data-yanked="bad &amp; broken"
       data-core-metadata="true" data-provenance="/integrity/demo/2.0/demo-2.0-py3-none-any.whl/provenance">
       demo-2.0-py3-none-any.whl</a>
    </body></html>""".encode()
    page = parse_html(body, PAGE, "demo")
    first, second = page.files
    assert first.url == "https://up.example/files/demo-1.0.tar.gz"
    assert first.sha256 == SHA
    assert first.requires_python == ">=3.9"
    assert first.yanked is True  # PEP 592: an empty data-yanked is a yank without reason
    assert first.metadata_sha256 == SHA  # PEP 658's original attribute name
    assert first.provenance is None
    assert second.filename == "demo-2.0-py3-none-any.whl"
    assert second.yanked == "bad & broken"
    assert second.core_metadata is True  # PEP 714 "true": present, hash not given
    assert second.provenance == "https://up.example/integrity/demo/2.0/demo-2.0-py3-none-any.whl/provenance"
    assert (page.status, page.status_reason, page.api_version, page.form) == (
        "quarantined",
        "under review",
        "1.4",
        "html",
    )


def test_json_carries_every_pep_691_key() -> None:
    doc = {
        "meta": {"api-version": "1.4"},
        "name": "demo",
        "versions": ["1.0", "2.0"],
        "project-status": {"status": "archived"},
        "files": [
            {
                "filename": "demo-1.0.tar.gz",
                "url": "../../files/demo-1.0.tar.gz",
                "hashes": {"sha256": SHA, "md5": "b" * 32},
                "requires-python": ">=3.9",
                "yanked": "",
                "upload-time": "2026-11-30T10:00:00.123456Z",
                "size": 1234,
                "dist-info-metadata": {"sha256": SHA},
                "provenance": None,
            },
            {
                "filename": "demo-2.0-py3-none-any.whl",
                "url": "https://cdn.example/demo-2.0-py3-none-any.whl",
                "hashes": {"sha256": SHA},
                "core-metadata": False,
                "provenance": "https://up.example/integrity/demo/2.0/demo-2.0-py3-none-any.whl/provenance",
                "future-key": {"ignored": True},
            },
        ],
    }
    page = parse_json(json.dumps(doc).encode(), PAGE)
    first, second = page.files
    assert first.url == "https://up.example/files/demo-1.0.tar.gz"
    assert first.yanked is True
    assert first.upload_time == dt.datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert first.size == 1234
    assert first.metadata_sha256 == SHA
    assert first.hashes["md5"] == "b" * 32
    assert second.core_metadata is False
    assert second.upload_time is None
    assert second.size is None
    assert second.provenance is not None
    assert page.versions == ("1.0", "2.0")
    assert page.status == "archived"


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"name": "demo"}', b'{"name": "demo", "files": [{"filename": "x"}]}', b'{"files": []}'],
)
def test_unusable_json_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(UpstreamError, match="not a PEP 691 page"):
        parse_json(body, PAGE)


def test_the_project_list_parses_in_both_forms() -> None:
    html = b"""<!DOCTYPE html><html><body><a href="/simple/Foo-Bar/">Foo-Bar</a>
    <a href="zope.interface/"> zope.interface </a><a href="empty/"></a></body></html>"""
    assert parse_list_html(html).names == ("Foo-Bar", "zope.interface")
    doc = {"meta": {"api-version": "1.1", "_last-serial": 3}, "projects": [{"name": "Foo-Bar", "_last-serial": 2}]}
    assert parse_list_json(json.dumps(doc).encode()).names == ("Foo-Bar",)
    with pytest.raises(UpstreamError, match="not a PEP 691 list"):
        parse_list_json(b'{"projects": [{"nom": "x"}]}')
