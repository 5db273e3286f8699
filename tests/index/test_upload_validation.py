"""The upload API's rules (issue 2, item 4): each refusal is a clear 4xx whose message is in the
body (uv shows it) and in the reason phrase (twine shows only that), and leaves no trace.

The rules are PyPI's (Warehouse's ``legacy`` upload view): ``:action=file_upload``,
``protocol_version`` 1, a ``content`` file, at least one matching digest, a valid wheel or sdist
filename with an allowed extension (PEP 527), name and version agreeing between filename, form
and the file's metadata, filenames never reused, PEP 503 name normalization.
"""

from __future__ import annotations

import hashlib
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name

from assay.admin import projects
from tests.index.helpers import (
    JSON_V1,
    assert_not_listed,
    assert_refused,
    flat,
    leaves_no_trace,
    twine_upload,
    uv_publish,
)
from tests.support.dists import make_sdist, make_wheel, metadata_text
from tests.support.server import AssayServer
from tests.support.upload import basic, form_fields, multipart, raw_http, upload

#: Also against blobs in an S3 bucket (issue 16; the ``index`` fixture in tests/conftest.py).
S3_BACKEND = True


@pytest.fixture(scope="module")
def token(index: AssayServer) -> str:
    return index.quick_token("validation-owner")


@pytest.fixture
def client(index: AssayServer) -> Iterator[httpx.Client]:
    with index.client() as c:
        yield c


# ---- the form ----


def test_missing_action(index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, drop=(":action",))
    assert_refused(r, 400, "Missing required form field ':action'")
    assert_not_listed(index, unique)


def test_wrong_action(index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={":action": "submit"})
    assert_refused(r, 400, "Unsupported ':action' 'submit'")
    assert_not_listed(index, unique)


def test_wrong_protocol_version(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={"protocol_version": "2"})
    assert_refused(r, 400, "Unsupported protocol_version '2'")
    assert_not_listed(index, unique)


def test_missing_protocol_version_means_1(client: httpx.Client, token: str, tmp_path: Path, unique: str) -> None:
    # Warehouse: request.POST.get("protocol_version", "1").
    r = upload(client, make_wheel(tmp_path, unique, "1.0"), token, drop=("protocol_version",))
    assert r.status_code == 200, r.text


def test_missing_content(index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    body, content_type = multipart(form_fields(wheel))
    with leaves_no_trace(index):
        r = client.post("/legacy/", content=body, headers={"Content-Type": content_type, **basic(token)})
    assert_refused(r, 400, "Missing the 'content' file part")
    assert_not_listed(index, unique)


def test_empty_file(index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, content=b"")
    assert_refused(r, 400, "The uploaded file is empty.")
    assert_not_listed(index, unique)


@pytest.mark.parametrize("field", ["name", "version", "filetype"])
def test_missing_required_field(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str, field: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, drop=(field,))
    assert_refused(r, 400, f"Missing required form field '{field}'")
    assert_not_listed(index, unique)


def test_filetype_must_match_the_file(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={"filetype": "sdist"})
    assert_refused(r, 400, "The form says filetype 'sdist'")
    assert_not_listed(index, unique)


# ---- filenames ----


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("{m}-1.0.whl", "invalid wheel filename"),
        ("{m}-1.0-py3-none.whl", "invalid wheel filename"),
        ("{m}-not_a_version-py3-none-any.whl", "invalid wheel filename"),
        ("{m}.tar.gz", "invalid sdist filename"),
        ("{m}-1.0-extra.tar.gz", "invalid sdist filename"),
        ("{m}-1.0.egg", "invalid file extension"),
        ("{m}-1.0.tar.bz2", "invalid file extension"),
        ("{m}-1.0.exe", "invalid file extension"),
        ("{m}-1.0.msi", "invalid file extension"),
        ("{m}-1.0-py3-none-any.WHL", "invalid file extension"),
        ("{m}-1.0-py3-none-any", "invalid file extension"),
    ],
)
def test_invalid_filenames(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str, filename: str, message: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    bad = filename.format(m=unique.replace("-", "_"))
    with leaves_no_trace(index):
        r = upload(client, wheel, token, content_filename=bad)
    assert_refused(r, 400, message)
    assert_not_listed(index, unique)


# ---- name and version agreement (filename / form / the file's own metadata) ----


def _disagreeing_name(tmp_path: Path, base: str, where: str) -> tuple[Path, str]:
    """A wheel and the form's name where exactly one of the three places names another project."""
    other = base + "-other"
    if where == "filename":
        # dist-info and filename say `other`; METADATA and form say `base`.
        return make_wheel(tmp_path, other, "1.0", metadata=metadata_text(base, "1.0")), base
    if where == "form":
        return make_wheel(tmp_path, base, "1.0"), other
    return make_wheel(tmp_path, base, "1.0", metadata=metadata_text(other, "1.0")), base


@pytest.mark.parametrize("where", ["filename", "form", "metadata"])
def test_name_disagreement(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str, where: str
) -> None:
    wheel, form_name = _disagreeing_name(tmp_path, unique, where)
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={"name": form_name})
    assert_refused(r, 400, "project names disagree", f"{unique}-other")
    expected = {
        "filename": "the filename says",
        "form": "the form's 'name' field says",
        "metadata": "the file's metadata says",
    }
    assert f"{expected[where]} '{unique}-other'" in r.text
    assert_not_listed(index, unique)
    assert_not_listed(index, unique + "-other")


@pytest.mark.parametrize("where", ["filename", "form", "metadata"])
def test_version_disagreement(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str, where: str
) -> None:
    form_version = "1.0"
    if where == "filename":
        wheel = make_wheel(tmp_path, unique, "2.0", metadata=metadata_text(unique, "1.0"))
    elif where == "form":
        wheel, form_version = make_wheel(tmp_path, unique, "1.0"), "2.0"
    else:
        wheel = make_wheel(tmp_path, unique, "1.0", metadata=metadata_text(unique, "2.0"))
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={"version": form_version})
    assert_refused(r, 400, "versions disagree")
    expected = {
        "filename": "the filename says",
        "form": "the form's 'version' field says",
        "metadata": "the file's metadata says",
    }
    assert f"{expected[where]} '2.0'" in r.text
    assert_not_listed(index, unique)


def test_equal_versions_in_other_spellings_agree(client: httpx.Client, token: str, tmp_path: Path, unique: str) -> None:
    # PEP 440: 1.0 and 1.0.0 are the same version.
    wheel = make_wheel(tmp_path, unique, "1.0", metadata=metadata_text(unique, "1.0.0"))
    r = upload(client, wheel, token, fields={"version": "1.00"})
    assert r.status_code == 200, r.text


def test_sdist_name_disagreement(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    sdist = make_sdist(tmp_path, unique, "1.0", pkg_info=metadata_text(unique + "-x", "1.0"))
    with leaves_no_trace(index):
        r = upload(client, sdist, token)
    assert_refused(r, 400, "project names disagree")
    assert_not_listed(index, unique)


# ---- digests ----


@pytest.mark.parametrize("field", ["sha256_digest", "md5_digest", "blake2_256_digest"])
def test_digest_mismatch(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str, field: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    wrong = hashlib.sha256(b"something else").hexdigest()[: 32 if field == "md5_digest" else 64]
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={field: wrong})
    assert_refused(r, 400, f"The {field} in the form", "does not match the uploaded file")
    assert_not_listed(index, unique)


def test_every_digest_sent_must_match(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    # A right sha256 does not excuse a wrong md5.
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, fields={"md5_digest": "0" * 32})
    assert_refused(r, 400, "The md5_digest in the form")


def test_no_digest_at_all(index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, drop=("sha256_digest",))
    assert_refused(r, 400, "Include at least one message digest")
    assert_not_listed(index, unique)


@pytest.mark.parametrize("field", ["md5_digest", "blake2_256_digest"])
def test_any_one_right_digest_is_enough(
    client: httpx.Client, token: str, tmp_path: Path, unique: str, field: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    data = wheel.read_bytes()
    value = (
        hashlib.md5(data).hexdigest()  # noqa: S324 - PyPI's field
        if field == "md5_digest"
        else hashlib.blake2b(data, digest_size=32).hexdigest()
    )
    r = upload(client, wheel, token, drop=("sha256_digest",), fields={field: value.upper()})
    assert r.status_code == 200, r.text


# ---- duplicates and reuse ----


def test_same_filename_other_content_is_refused(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_wheel(tmp_path / "a", unique, "1.0")
    second = make_wheel(tmp_path / "b", unique, "1.0", requires_python=">=3.10")
    assert first.name == second.name
    assert upload(client, first, token).status_code == 200
    with leaves_no_trace(index):
        r = upload(client, second, token)
    assert_refused(r, 400, "File already exists")
    [served] = client.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()["files"]
    assert served["hashes"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()


def test_identical_reupload_is_200(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    assert upload(client, wheel, token).status_code == 200
    with leaves_no_trace(index):
        again = upload(client, wheel, token)
    # PyPI answers an identical re-upload with 200 (twine --skip-existing and uv publish rely on it).
    assert again.status_code == 200
    assert "already present" in again.text
    assert len(client.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()["files"]) == 1


def test_same_bytes_under_another_filename_is_refused(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    # PyPI: a file whose hash is already on the index under another name is a duplicate (a
    # wheel renamed to claim other tags has the same dist-info, so it passes every other check).
    wheel = make_wheel(tmp_path, unique, "1.0")
    assert upload(client, wheel, token).status_code == 200
    renamed = wheel.name.replace("-py3-", "-py2.py3-")
    with leaves_no_trace(index):
        r = upload(client, wheel, token, content_filename=renamed)
    assert_refused(r, 400, "File already exists", wheel.name)
    assert_not_listed(index, unique, renamed)


def test_a_removed_filename_cannot_be_reused(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    assert upload(client, wheel, token).status_code == 200
    projects.remove_file(index.db(), index.blobs(), wheel.name, actor="admin:tests")
    # PyPI: a filename can be used only once, even after the file is deleted; also the
    # very same bytes.
    with leaves_no_trace(index):
        r = upload(client, wheel, token)
    assert_refused(r, 400, "This filename has already been used")
    assert_not_listed(index, unique, wheel.name)


def test_only_one_sdist_per_release(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path, unique: str
) -> None:
    # PyPI: "Only one sdist may be uploaded per release." Wheels are per platform, sdists not.
    module = unique.replace("-", "_")
    tar = make_sdist(tmp_path, unique, "1.0")
    assert upload(client, tar, token).status_code == 200
    zip_sdist = tmp_path / f"{module}-1.0.zip"
    with zipfile.ZipFile(zip_sdist, "w") as zf:
        zf.writestr(f"{module}-1.0/PKG-INFO", metadata_text(unique, "1.0"))
    with leaves_no_trace(index):
        r = upload(client, zip_sdist, token, fields={"version": "1.0.0"})
    assert_refused(r, 400, "Only one sdist may be uploaded per release", tar.name)
    assert_not_listed(index, unique, zip_sdist.name)
    # A wheel of the release, and an sdist of another release, are fine.
    assert upload(client, make_wheel(tmp_path, unique, "1.0"), token).status_code == 200
    other = tmp_path / f"{module}-2.0.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr(f"{module}-2.0/PKG-INFO", metadata_text(unique, "2.0"))
    assert upload(client, other, token).status_code == 200


# ---- PEP 503 normalization ----


def test_spellings_of_one_name_are_one_project(
    index: AssayServer, token: str, client: httpx.Client, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    display = f"Foo_Bar.{tag}"
    other_spelling = f"foo-bar-{tag}"
    normalized = canonicalize_name(display)
    assert normalized == other_spelling
    wheel = make_wheel(tmp_path, display, "1.0")
    sdist = make_sdist(tmp_path, other_spelling, "2.0", pkg_info=metadata_text("FOO.bar_" + tag, "2.0"))
    assert upload(client, wheel, token, fields={"name": display}).status_code == 200
    r = upload(client, sdist, token, fields={"name": "Foo__BAR-" + tag})
    assert r.status_code == 200, r.text
    doc = client.get(f"/simple/{normalized}/", headers={"Accept": JSON_V1}).json()
    assert {f["filename"] for f in doc["files"]} == {wheel.name, sdist.name}
    assert doc["versions"] == ["1.0", "2.0"]
    listed = [p["name"] for p in client.get("/simple/", headers={"Accept": JSON_V1}).json()["projects"]]
    assert [n for n in listed if canonicalize_name(n) == normalized] == [display]
    assert client.get(f"/pypi/{other_spelling}/json").json()["info"]["name"] == display


# ---- through twine and uv: the reason is shown ----


def test_twine_and_uv_show_the_reason(index: AssayServer, token: str, tmp_path: Path, unique: str) -> None:
    wheel, _ = _disagreeing_name(tmp_path, unique, "filename")
    with leaves_no_trace(index):
        result = twine_upload(index, token, wheel)
        uv = uv_publish(index, token, wheel)
    assert result.returncode != 0
    assert "project names disagree" in flat(result.stdout + result.stderr)
    assert uv.returncode != 0
    assert "project names disagree" in flat(uv.stdout + uv.stderr)
    assert_not_listed(index, unique)


def test_legacy_without_slash_and_wrong_method(client: httpx.Client, token: str, tmp_path: Path, unique: str) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    assert (
        client.post(
            "/legacy",
            files={"content": (wheel.name, wheel.read_bytes())},
            data={k: v for k, v in form_fields(wheel)},
            headers=basic(token),
        ).status_code
        == 200
    )  # type: ignore[misc]
    assert client.get("/legacy/").status_code == 405


# ---- size limit (a server with a small --max-upload-size) ----


LIMIT = 8192


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssayServer]:
    server = AssayServer(tmp_path_factory.mktemp("small"), args=["--max-upload-size", str(LIMIT)]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_token(small: AssayServer) -> str:
    return small.quick_token("small-owner")


def _big(tmp_path: Path, name: str, size: int) -> Path:
    return make_wheel(tmp_path, name, "1.0", extra_files={f"{name.replace('-', '_')}/blob": secrets.token_bytes(size)})


def test_under_the_limit_is_accepted(small: AssayServer, small_token: str, tmp_path: Path, unique: str) -> None:
    wheel = _big(tmp_path, unique, LIMIT // 2)
    assert wheel.stat().st_size < LIMIT
    with small.client() as c:
        assert upload(c, wheel, small_token).status_code == 200


def test_over_the_limit_with_content_length(small: AssayServer, small_token: str, tmp_path: Path, unique: str) -> None:
    wheel = _big(tmp_path, unique, LIMIT * 4)
    with leaves_no_trace(small), small.client() as c:
        r = upload(c, wheel, small_token)
    assert_refused(r, 413, "File too large", f"The limit is {LIMIT} bytes")
    assert_not_listed(small, unique)


def test_declared_content_length_far_over_the_limit_is_refused_before_reading(
    small: AssayServer, small_token: str
) -> None:
    # Only the head and a few bytes are sent: the server answers without waiting for 1 GB.
    host = small.url.removeprefix("http://")
    head = (
        f"POST /legacy/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {1 << 30}\r\nAuthorization: {basic(small_token)['Authorization']}\r\n\r\n--x\r\n"
    ).encode()
    with leaves_no_trace(small):
        status, reason, body = raw_http(small.url, head, timeout=20)
    assert status == 413
    assert "File too large" in reason
    assert b"File too large" in body


def test_chunked_body_over_the_limit(small: AssayServer, small_token: str, tmp_path: Path, unique: str) -> None:
    # No Content-Length: the limit is enforced while the body streams in.
    wheel = _big(tmp_path, unique, LIMIT * 8)
    body, content_type = multipart(form_fields(wheel), ("content", wheel.name, wheel.read_bytes()))

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    with leaves_no_trace(small), small.client() as c:
        r = c.post("/legacy/", content=chunks(), headers={"Content-Type": content_type, **basic(small_token)})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_refused(r, 413, "File too large")
    assert_not_listed(small, unique)
    with small.client() as c:
        assert c.get("/simple/").status_code == 200


def test_twine_shows_file_too_large(small: AssayServer, small_token: str, tmp_path: Path, unique: str) -> None:
    wheel = _big(tmp_path, unique, LIMIT * 4)
    with leaves_no_trace(small):
        result = twine_upload(small, small_token, wheel)
    assert result.returncode != 0
    assert "File too large" in flat(result.stdout + result.stderr)
