"""Accounts and API tokens (issue 2, item 5), through the `assay admin` commands and HTTP.

The commands run through click's runner in this process (``AssayServer.cli``) except where the
test is about the installed command's output (``AssayServer.admin``, a real process).

PyPI's rules: upload credentials are API tokens sent as HTTP Basic with the username
``__token__``; a token may be limited to projects and may expire; only owners and maintainers
of a project upload to it; a token is shown once and stored only as a hash.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from assay.admin import accounts
from tests.index.helpers import assert_not_listed, assert_refused, leaves_no_trace
from tests.support.dists import make_wheel
from tests.support.server import AssayServer, client_environ
from tests.support.upload import basic, form_for, upload


def send(
    index: AssayServer, tmp_path: Path, project: str, headers: dict[str, str], version: str = "1.0"
) -> httpx.Response:
    """Upload a fresh wheel of ``project`` with exactly these request headers."""
    wheel = make_wheel(tmp_path, project, version)
    with index.client() as c:
        return c.post(
            "/legacy/", headers=headers, data=form_for(wheel), files={"content": (wheel.name, wheel.read_bytes())}
        )


def test_user_create_and_its_errors(sqlite_index: AssayServer, unique: str) -> None:
    index = sqlite_index
    created = index.cli("user", "create", unique)
    assert created.stdout.strip() == f"created user {unique}"
    again = index.cli("user", "create", unique, check=False)
    assert again.returncode == 1
    assert f"user '{unique}' already exists" in again.stderr
    bad = index.cli("user", "create", "no spaces allowed", check=False)
    assert bad.returncode == 1
    assert "invalid username" in bad.stderr
    assert unique in index.cli("user", "list").stdout


def _all_stored_text(index: AssayServer) -> str:
    """Every value in every table, as text (what a database dump would reveal)."""
    db = index.db()
    out = []
    with db.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):  # noqa: S608 - table names from the schema
                out.append(repr(tuple(row)))
    return "\n".join(out)


def test_token_create_prints_the_token_once(sqlite_index: AssayServer, tmp_path: Path, unique: str) -> None:
    index = sqlite_index
    index.cli("user", "create", unique)
    # The installed command, as an operator or a script runs it.
    result = index.admin("token", "create", "--user", unique, "--expires", "30d", "--description", "ci")
    token = result.stdout.strip()
    assert "\n" not in token  # stdout is the token and nothing else (scripts capture it)
    assert token.startswith("assay-")
    token_id, secret = token.removeprefix("assay-").split("_", 1)
    assert f"token {token_id}: uploads to all projects of {unique}, until" in result.stderr
    assert len(secret) >= 40
    # Not even the raw SQLite files hold the secret.
    for f in index.data_dir.glob("assay.db*"):
        assert secret.encode() not in f.read_bytes(), f.name
    listing = index.cli("token", "list", "--user", unique).stdout
    assert token_id in listing
    assert secret not in listing
    assert send(index, tmp_path, unique, basic(token)).status_code == 200
    bad = index.cli("token", "create", "--user", unique, "--expires", "soon", check=False)
    assert bad.returncode == 2
    assert "invalid duration 'soon'" in bad.stderr


def test_tokens_are_stored_only_as_a_hash(index: AssayServer, tmp_path: Path, unique: str) -> None:
    token = index.quick_token(unique)
    _token_id, secret = token.removeprefix("assay-").split("_", 1)
    assert send(index, tmp_path, unique, basic(token)).status_code == 200  # used: last_used set, audited
    dump = _all_stored_text(index)
    assert secret not in dump
    assert token not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump  # the hash is what is kept


def test_revoked_token_is_refused(sqlite_index: AssayServer, tmp_path: Path, unique: str) -> None:
    index = sqlite_index
    index.cli("user", "create", unique)
    by_id = index.cli("token", "create", "--user", unique).stdout.strip()
    by_value = index.cli("token", "create", "--user", unique).stdout.strip()
    assert send(index, tmp_path, unique, basic(by_id), "1.0").status_code == 200
    token_id = by_id.removeprefix("assay-").split("_")[0]
    assert index.cli("token", "revoke", token_id).stdout.strip() == f"revoked token {token_id}"
    index.cli("token", "revoke", by_value)  # the token itself works as the argument too
    with leaves_no_trace(index):
        for token in (by_id, by_value):
            r = send(index, tmp_path, unique, basic(token), "2.0")
            assert_refused(r, 403, "This API token has been revoked.")
    assert "revoked" in index.cli("token", "list", "--user", unique).stdout
    unknown = index.cli("token", "revoke", "0123456789abcdef", check=False)
    assert unknown.returncode == 1
    assert "no token with id '0123456789abcdef'" in unknown.stderr


def test_expired_token_is_refused(index: AssayServer, tmp_path: Path, unique: str) -> None:
    token = index.quick_token(unique, expires=dt.timedelta(seconds=1))
    time.sleep(1.2)
    with leaves_no_trace(index):
        r = send(index, tmp_path, unique, basic(token))
    assert_refused(r, 403, "This API token has expired.")
    assert_not_listed(index, unique)


def test_project_scoped_token(index: AssayServer, tmp_path: Path, unique: str) -> None:
    mine, other = f"{unique}-a", f"{unique}-b"
    # Scoped to a project that does not exist yet: its first upload creates it.
    token = index.quick_token(unique, mine.upper())
    assert send(index, tmp_path, mine, basic(token)).status_code == 200
    with leaves_no_trace(index):
        r = send(index, tmp_path, other, basic(token))
    assert_refused(r, 403, f"not allowed to upload to project '{other}'")
    assert_not_listed(index, other)


def test_owners_and_maintainers(index: AssayServer, tmp_path: Path, unique: str) -> None:
    owner, helper = f"{unique}-owner", f"{unique}-helper"
    owner_token, helper_token = index.quick_token(owner), index.quick_token(helper)
    assert send(index, tmp_path, unique, basic(owner_token), "1.0").status_code == 200  # owner by creating it

    # A user without a role cannot upload to someone else's project.
    with leaves_no_trace(index):
        r = send(index, tmp_path, unique, basic(helper_token), "2.0")
    assert_refused(r, 403, f"The user '{helper}' is not an owner or maintainer of project '{unique}'")

    accounts.set_role(index.db(), unique, helper, "maintainer", actor="admin:tests")
    assert send(index, tmp_path, unique, basic(helper_token), "2.0").status_code == 200
    with index.client() as c:
        roles = c.get(f"/pypi/{unique}/json").json()["ownership"]["roles"]
    assert {"role": "Owner", "user": owner} in roles
    assert {"role": "Maintainer", "user": helper} in roles

    accounts.remove_role(index.db(), unique, helper, actor="admin:tests")
    r = send(index, tmp_path, unique, basic(helper_token), "3.0")
    assert_refused(r, 403, "is not an owner or maintainer")


def test_project_role_command(sqlite_index: AssayServer, tmp_path: Path, unique: str) -> None:
    index = sqlite_index
    owner, helper = f"{unique}-owner", f"{unique}-helper"
    owner_token, helper_token = index.quick_token(owner), index.quick_token(helper)
    assert send(index, tmp_path, unique, basic(owner_token), "1.0").status_code == 200
    refused_scope = index.cli("token", "create", "--user", helper, "--project", unique, check=False)
    assert refused_scope.returncode == 1
    assert f"user '{helper}' has no role on project '{unique}'" in refused_scope.stderr
    out = index.cli("project", "role", unique, helper, "maintainer").stdout
    assert out.strip() == f"{helper} is now maintainer of {unique}"
    assert send(index, tmp_path, unique, basic(helper_token), "2.0").status_code == 200
    out = index.cli("project", "role", unique.upper(), helper, "none").stdout
    assert out.strip() == f"removed {helper}'s role on {unique.upper()}"
    assert_refused(send(index, tmp_path, unique, basic(helper_token), "3.0"), 403, "is not an owner or maintainer")
    missing = index.cli("project", "role", unique, "nobody-at-all", "owner", check=False)
    assert missing.returncode == 1
    assert "no user named 'nobody-at-all'" in missing.stderr


@pytest.mark.parametrize(
    ("header", "status", "message"),
    [
        (None, 401, "Authentication required"),
        ("Basic " + base64.b64encode(b"alice:hunter2").decode(), 403, "use an API token with username '__token__'"),
        ("Basic !!!not-base64", 401, "Malformed HTTP Basic credentials."),
        ("Basic " + base64.b64encode(b"no-colon").decode(), 401, "Malformed HTTP Basic credentials."),
        ("Digest username=x", 401, "Unsupported authorization scheme 'digest'."),
        (
            "Basic " + base64.b64encode(b"__token__:pypi-AgEIcHlwaS5vcmc").decode(),
            403,
            "does not have this index's prefix",
        ),
        (
            "Basic " + base64.b64encode(b"__token__:assay-0123456789abcdef_wrong").decode(),
            403,
            "Invalid or non-existent authentication information.",
        ),
        ("Basic " + base64.b64encode(b"__token__:assay-nothex_x").decode(), 403, "malformed token"),
    ],
)
def test_bad_credentials(
    index: AssayServer, tmp_path: Path, unique: str, header: str | None, status: int, message: str
) -> None:
    wheel = make_wheel(tmp_path, unique, "1.0")
    headers = {"Authorization": header} if header else {}
    with leaves_no_trace(index), index.client() as c:
        r = c.post(
            "/legacy/", headers=headers, data=form_for(wheel), files={"content": (wheel.name, wheel.read_bytes())}
        )
    assert_refused(r, status, message)
    if status == 401:
        assert r.headers["www-authenticate"] == 'Basic realm="assay"'
    assert_not_listed(index, unique)


@pytest.mark.parametrize("scheme", ["token", "Bearer"])
def test_token_and_bearer_schemes(index: AssayServer, tmp_path: Path, unique: str, scheme: str) -> None:
    # Warehouse also accepts "Authorization: token <t>" (and bearer).
    token = index.quick_token(f"{unique}-user")
    assert send(index, tmp_path, unique, {"Authorization": f"{scheme} {token}"}).status_code == 200


# ---- private indexes ----


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> AssayServer:
    server = AssayServer(tmp_path_factory.mktemp("private"), args=["--private"]).start()
    yield server  # type: ignore[misc]
    server.stop()


def test_private_index_reads_need_a_token(private: AssayServer, tmp_path: Path, unique: str) -> None:
    token = private.quick_token("reader")
    wheel = make_wheel(tmp_path, unique, "1.0")
    with private.client() as c:
        assert upload(c, wheel, token).status_code == 200
        auth = basic(token)
        page = c.get(f"/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json", **auth})
        assert page.status_code == 200
        assert page.headers["cache-control"].startswith("private")
        file_url = httpx.URL(f"{private.url}/simple/{unique}/").join(page.json()["files"][0]["url"])
        for url in (
            f"{private.url}/simple/",
            f"{private.url}/simple/{unique}/",
            str(file_url),
            str(file_url) + ".metadata",
            str(file_url) + ".tlog-proof",  # issue 13: the file's log receipt
            f"{private.url}/pypi/{unique}/json",
            f"{private.url}/pypi/{unique}/1.0/json",
        ):
            anonymous = c.get(url)
            assert anonymous.status_code == 401, url
            assert anonymous.headers["www-authenticate"] == 'Basic realm="assay"'
            assert "Authentication required" in anonymous.text
            wrong = c.get(url, headers=basic("assay-0123456789abcdef_nope"))
            assert wrong.status_code == 403, url
            authorized = c.get(url, headers=auth)
            assert authorized.status_code == 200, url
            assert "private" in authorized.headers["cache-control"]
        assert c.get(str(file_url), headers=auth).content == wheel.read_bytes()


def test_pip_installs_from_a_private_index_with_credentials_in_the_url(
    private: AssayServer, tmp_path: Path, unique: str
) -> None:
    import subprocess
    import sys

    token = private.quick_token("pip-reader")
    with private.client() as c:
        assert upload(c, make_wheel(tmp_path, unique, "1.0"), token).status_code == 200
    host = private.url.removeprefix("http://")
    with_credentials = f"http://__token__:{token}@{host}/simple/"

    def pip(index_url: str, target: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--index-url",
                index_url,
                "--target",
                str(target),
                f"{unique}==1.0",
            ],
            capture_output=True,
            text=True,
            env=client_environ(),
            timeout=180,
        )

    ok = pip(with_credentials, tmp_path / "ok")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tmp_path / "ok" / unique.replace("-", "_") / "__init__.py").exists()
    before = len(private.access_log())
    denied = pip(private.simple, tmp_path / "denied")
    assert denied.returncode != 0
    time.sleep(0.3)  # let the server flush its access log
    assert any(f'"GET /simple/{unique}/ HTTP/1.1" 401' in line for line in private.access_log()[before:])
    assert not (tmp_path / "denied" / unique.replace("-", "_")).exists()
