"""Staged releases and approval (issue 14, items 1 and 2), against a real server on SQLite
and PostgreSQL: token uploads and a trusted publish (uv, the OIDC stand-in) land in a stage,
absent from every live read; pip and uv install from the preview index; an owner approves
with TOTP (pyotp computes the code) and every file goes live at once; reject removes it;
four eyes, wrong and replayed codes, CI credentials and bad input are refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from uv import find_uv_bin

from assay.log import entries, note
from assay.storage.models import LogEntry
from tests.publishing.conftest import AUDIENCE
from tests.stages.conftest import Maintainer, maintainer, release_cli
from tests.support.dists import build_project, make_sdist, make_wheel, metadata_text
from tests.support.oidc_provider import OIDCProvider, github_actions_env, github_claims
from tests.support.server import AssayServer, client_environ
from tests.support.upload import basic, upload

UV = find_uv_bin()
JSON_V1 = "application/vnd.pypi.simple.v1+json"


def _staged_project(server: AssayServer, name: str, owner: str, *extra: str) -> Maintainer:
    server.quick_user(owner)
    server.cli("project", "create", name, "--owner", owner)
    server.cli("project", "set", name, "--releases", "staged", *extra)
    uri = server.cli("user", "totp", "enable", owner).stdout.strip()
    import pyotp

    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    return Maintainer(owner, server.quick_token(owner), totp)


def _live_files(server: AssayServer, project: str) -> list[str]:
    with server.client() as http:
        r = http.get(f"/simple/{project}/", headers={"Accept": JSON_V1})
    assert r.status_code == 200, r.text
    return sorted(f["filename"] for f in r.json()["files"])


def _show(server: AssayServer, project: str, version: str, token: str) -> dict:  # type: ignore[type-arg]
    code, out = release_cli(server, "show", project, version, "--json", token=token)
    assert code == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


def _install(server: AssayServer, index_url: str, requirement: str, target: Path) -> None:
    """pip and uv each install ``requirement`` from ``index_url`` alone (no other index)."""
    env = client_environ({"SSL_CERT_FILE": str(server.ca_file)})
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-cache-dir",
            "--target",
            str(target / "pip"),
            "--cert",
            str(server.ca_file),
            "--index-url",
            index_url,
            requirement,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    uv = subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--no-deps",
            "--no-cache",
            "--target",
            str(target / "uv"),
            "--index-url",
            index_url,
            requirement,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert uv.returncode == 0, uv.stdout + uv.stderr


def test_token_upload_is_staged_previewed_and_approved(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    owner = _staged_project(staged, unique, f"{unique}-owner")
    built = build_project(tmp_path, unique, "1.0")
    with staged.client() as http:
        for path in built.files:
            r = upload(http, path, owner.token)
            assert r.status_code == 200, r.text
            assert "staged" in r.text
            assert "/stage/" in r.headers["assay-stage-preview"]
        # Absent from every live read: the simple page (both formats), the JSON API, search.
        assert _live_files(staged, unique) == []
        assert http.get(f"/simple/{unique}/").text.count("<a ") == 0
        assert http.get(f"/pypi/{unique}/1.0/json").status_code == 404
        assert built.wheel.name not in http.get("/search/", params={"q": unique}).text
        # Reserved: nobody may upload the staged filename (or its bytes) meanwhile.
        other = staged.quick_token(f"{unique}-other")
        r = upload(http, built.wheel, other)
        assert r.status_code == 403  # not a maintainer of the project anyway
        staged.cli("project", "role", unique, f"{unique}-other", "maintainer")
        r = upload(http, make_wheel(tmp_path, unique, "1.0", filename=built.wheel.name), other)
        assert r.status_code == 400, r.text
        assert "stage awaiting approval" in r.text
        # The same file again: idempotent, as for a live file.
        assert upload(http, built.wheel, owner.token).status_code == 200

    stage = _show(staged, unique, "1.0", owner.token)
    assert sorted(f["filename"] for f in stage["files"]) == sorted(p.name for p in built.files)
    assert {f["digests"]["sha256"] for f in stage["files"]} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in built.files
    }
    code, text = release_cli(staged, "show", unique, "1.0", token=owner.token)
    assert code == 0
    assert stage["preview"] in text
    assert "sha256:" in text
    preview = stage["preview"]
    _install(staged, preview, f"{unique}==1.0", tmp_path / "preview")
    with httpx.Client(verify=staged.verify) as http:
        # The rest of the index is visible through the preview.
        assert unique in http.get(preview).text

    # A wrong code, and a malformed one, are refused; nothing goes live.
    code, out = release_cli(staged, "approve", unique, "1.0", "--totp", "000000", token=owner.token)
    assert code != 0
    assert "Wrong or already used TOTP code" in out
    code, out = release_cli(staged, "approve", unique, "1.0", "--totp", "12ab", token=owner.token)
    assert code != 0
    assert "6 digits" in out
    assert _live_files(staged, unique) == []

    used = owner.code()
    code, out = release_cli(staged, "approve", unique, "1.0", "--totp", used, token=owner.token)
    assert code == 0, out
    assert "approved" in out
    assert "log entry" in out
    assert _live_files(staged, unique) == sorted(p.name for p in built.files)
    with staged.client() as http:
        assert http.get(f"/pypi/{unique}/1.0/json").status_code == 200
        assert httpx.get(preview, verify=staged.verify).status_code == 404  # the stage is gone
    _install(staged, staged.simple, f"{unique}==1.0", tmp_path / "live")
    # The approval's statement, signed by the index's key (the verifier key is /log/key).
    with staged.client() as http:
        doc = http.get(f"/_/releases/{unique}/1.0/approvals").json()
        verifier = note.Ed25519Verifier.from_verifier_key(http.get(doc["key"]).text.strip())
        assert http.get(f"/_/releases/{unique}/9.9/approvals").status_code == 404
    [signed] = doc["statements"]
    opened = note.open_note(signed.encode(), [verifier])
    lines = opened.text.splitlines()
    assert lines[0] == "assay release approval v1"
    assert f"approver {owner.name}" in lines
    for path in built.files:
        assert f"file sha256:{hashlib.sha256(path.read_bytes()).hexdigest()} {path.name}" in lines
    forged = signed.replace(built.wheel.name, built.wheel.name.replace("1.0", "6.6"), 1)
    with pytest.raises(note.NoteError):
        note.open_note(forged.encode(), [verifier])
    # The transparency log holds the approval too, after the files' upload entries, and vouches
    # for exactly the statement served.
    with staged.db().read() as session:
        logged = [
            entries.decode(data)
            for data in session.execute(sa.select(LogEntry.data).where(LogEntry.index_id == 1)).scalars()
        ]
    approval = next(e for e in logged if e["kind"] == "approval" and e["project"] == unique)
    assert approval["version"] == "1.0"
    assert approval["approvers"] == [owner.name]
    assert approval["files"] == sorted(
        ({"filename": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in built.files),
        key=lambda f: f["filename"],
    )
    assert approval["statement_sha256"] == hashlib.sha256(signed.encode()).hexdigest()
    uploads = [i for i, e in enumerate(logged) if e["kind"] == "upload" and e["project"] == unique]
    assert len(uploads) == 2
    assert max(uploads) < logged.index(approval)
    events = [e for e in staged.audit() if e.get("project") == unique]
    assert any(e["action"] == "stage:approve" for e in events)
    assert sum(e["action"] == "stage:upload" for e in events) == 2

    # The code just used is refused for the next approval (RFC 6238 section 5.2).
    with staged.client() as http:
        assert upload(http, make_wheel(tmp_path, unique, "1.1"), owner.token).status_code == 200
    code, out = release_cli(staged, "approve", unique, "1.1", "--totp", used, token=owner.token)
    assert code != 0
    assert "already used" in out
    # The preview of 1.1 is the project as it will be: 1.0's live files and 1.1's wheel; a live
    # file's link redirects to the index's own /files/.
    preview = _show(staged, unique, "1.1", owner.token)["preview"]
    with httpx.Client(verify=staged.verify) as http:
        page = http.get(preview + f"{unique}/", headers={"Accept": JSON_V1}).json()
        assert sorted(f["filename"] for f in page["files"]) == sorted(
            [*(p.name for p in built.files), f"{unique.replace('-', '_')}-1.1-py3-none-any.whl"]
        )
        assert page["versions"] == ["1.0", "1.1"]
        live = next(f for f in page["files"] if f["filename"] == built.wheel.name)
        url = httpx.URL(preview + f"{unique}/").join(live["url"])
        moved = http.get(url)
        assert moved.status_code == 307
        assert moved.headers["location"].startswith(staged.url + "/files/")
        assert http.get(url, follow_redirects=True).content == built.wheel.read_bytes()


def test_reject_leaves_only_the_audit_trail(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    owner = _staged_project(staged, unique, f"{unique}-owner")
    wheel = make_wheel(tmp_path, unique, "2.0")
    before = set(staged.stored_files())
    with staged.client() as http:
        assert upload(http, wheel, owner.token).status_code == 200
    assert len(set(staged.stored_files()) - before) == 2  # the wheel and its METADATA
    preview = _show(staged, unique, "2.0", owner.token)["preview"]
    code, out = release_cli(staged, "reject", unique, "2.0", "--reason", "broken build", token=owner.token)
    assert code == 0, out
    assert "1 file(s) removed" in out
    assert set(staged.stored_files()) == before  # blobs removed
    assert httpx.get(preview, verify=staged.verify).status_code == 404
    code, out = release_cli(staged, "list", unique, token=owner.token)
    assert code == 0
    assert "no staged releases" in out
    # PyPI's never-reuse rule: the filename stays used.
    with staged.client() as http:
        r = upload(http, wheel, owner.token)
    assert r.status_code == 400
    assert "already been used" in r.text
    actions = [e["action"] for e in staged.audit() if e.get("project") == unique]
    assert "stage:reject" in actions
    assert "stage:upload" in actions


def test_trusted_publish_staged_with_four_eyes_and_stage_only(
    staged: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    """A stage-only GitHub publisher's uv publish lands in a stage although the project
    publishes directly; the job's actor may not approve under four eyes; another owner may."""
    staged.quick_user("carol")
    staged.cli("project", "create", unique, "--owner", "carol")
    staged.cli("project", "set", unique, "--four-eyes")
    staged.cli(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--repository",
        f"acme/{unique}",
        "--workflow",
        "release.yml",
        "--stage-only",
    )
    idp.github_job = github_claims(f"acme/{unique}", "release.yml", actor="Carol")
    built = build_project(tmp_path, unique, "3.0")
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(staged.ca_file)})
    result = subprocess.run(
        [UV, "publish", "--publish-url", staged.upload_url, "--trusted-publishing", "always", *map(str, built.files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _live_files(staged, unique) == []  # the direct publish did not go live

    carol = maintainer(staged, "carol", unique)
    stage = _show(staged, unique, "3.0", carol.token)
    assert {f["triggered_by"] for f in stage["files"]} == {"ci:Carol"}
    _install(staged, stage["preview"], f"{unique}==3.0", tmp_path / "preview")
    code, out = release_cli(staged, "approve", unique, "3.0", "--totp", carol.code(), token=carol.token)
    assert code != 0
    assert "Four eyes" in out, out
    dave = maintainer(staged, f"{unique}-dave", unique)
    code, out = release_cli(staged, "approve", unique, "3.0", "--totp", dave.code(), token=dave.token)
    assert code == 0, out
    assert _live_files(staged, unique) == sorted(p.name for p in built.files)
    with staged.client() as http:
        doc = http.get(f"/pypi/{unique}/json").json()
    assert {u["trusted_publisher"]["repository"] for u in doc["urls"]} == {f"acme/{unique}"}
    refusals = [e for e in staged.audit() if e["action"] == "stage:approve-refused"]
    assert any(e["target"] == "four-eyes" for e in refusals)

    # The publisher's own minted token may read the stage (CI gets the preview URL back) but
    # can neither approve nor reject: a CI credential can at most create a stage.
    with staged.client() as http:
        minted = http.post("/_/oidc/mint-token", json={"token": idp.token(AUDIENCE, idp.github_job)})
        assert minted.status_code == 200, minted.text
        ci_token = minted.json()["token"]
        ci = basic(ci_token)
        r = upload(http, make_wheel(tmp_path, unique, "3.1"), ci_token)
        assert r.status_code == 200, r.text
        assert "staged" in r.text
        assert http.get(f"/_/releases/{unique}/3.1/", headers=ci).status_code == 200
        for action, body in (("approve", {"totp": dave.code()}), ("reject", {})):
            r = http.post(f"/_/releases/{unique}/3.1/{action}", headers=ci, json=body)
            assert r.status_code == 403
            assert "not a trusted publisher's" in r.json()["message"]
    assert [
        s["version"] for s in json.loads(release_cli(staged, "list", unique, "--json", token=dave.token)[1])["stages"]
    ] == ["3.1"]


def test_a_named_index_has_its_own_stages(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    index = f"t{unique.replace('-', '')}"[:30]
    staged.cli("index", "create", index)
    owner = f"{unique}-owner"
    staged.quick_user(owner)
    staged.cli("project", "create", unique, "--owner", owner, "--index", index)
    staged.cli("project", "set", unique, "--releases", "staged", "--index", index)
    token = staged.cli("token", "create", "--user", owner, "--index", index).stdout.strip()
    wheel = make_wheel(tmp_path, unique, "1.0")
    with staged.client(index=index) as http:
        r = upload(http, wheel, token)
        assert r.status_code == 200, r.text
        preview = r.headers["assay-stage-preview"]
        assert f"/{index}/stage/" in preview
        assert http.get(f"/simple/{unique}/", headers={"Accept": JSON_V1}).json()["files"] == []
        page = httpx.get(preview + f"{unique}/", headers={"Accept": JSON_V1}, verify=staged.verify).json()
        assert [f["filename"] for f in page["files"]] == [wheel.name]
        # The wheel and its PEP 658 metadata download through the preview.
        url = httpx.URL(preview + f"{unique}/").join(page["files"][0]["url"])
        got = httpx.get(url, verify=staged.verify)
        assert got.status_code == 200
        assert got.content == wheel.read_bytes()
        assert httpx.get(str(url) + ".metadata", verify=staged.verify).status_code == 200
        # Another index's preview path does not know the stage; the token is this index's only.
        sid = preview.rsplit("/stage/", 1)[1].split("/")[0]
        assert httpx.get(f"{staged.url}/stage/{sid}/simple/", verify=staged.verify).status_code == 404
        assert http.get(f"/_/releases/{unique}/", headers=basic(token)).status_code == 200
    with staged.client() as http:
        assert http.get(f"/_/releases/{unique}/", headers=basic(token)).status_code == 403


def test_bad_input_is_refused_clearly(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    owner = _staged_project(staged, unique, f"{unique}-owner")
    helper = maintainer(staged, f"{unique}-helper", unique, role="maintainer")
    with staged.client() as http:
        assert upload(http, make_wheel(tmp_path, unique, "4.0"), owner.token).status_code == 200
        base = f"/_/releases/{unique}"
        r = http.get(f"{base}/")
        assert r.status_code == 401
        assert "Authentication required" in r.json()["message"]
        auth = basic(owner.token)
        assert http.get(f"{base}/", headers=basic("assay-nope_nope")).status_code == 403
        assert http.get("/_/releases/no-such-project/", headers=auth).status_code == 404
        # Junk never reaches the database (PostgreSQL refuses a NUL): a plain 404.
        assert http.get("/_/releases/a%00b/", headers=auth).status_code == 404
        assert http.get("/stage/a%00b/simple/").status_code == 404
        r = http.get(f"{base}/not..a..version/", headers=auth)
        assert r.status_code == 400
        assert "Invalid version" in r.json()["message"]
        assert http.get(f"{base}/9.9/", headers=auth).status_code == 404
        r = http.post(
            f"{base}/4.0/approve",
            headers=auth,
            content=b"{not json",
        )
        assert r.status_code == 400
        assert "not valid JSON" in r.json()["message"]
        r = http.post(f"{base}/4.0/approve", headers=auth, json=["totp"])
        assert r.status_code == 400
        assert "JSON object" in r.json()["message"]
        r = http.post(f"{base}/4.0/approve", headers=auth, json={})
        assert r.status_code == 400
        assert "TOTP code" in r.json()["message"]
        r = http.post(f"{base}/4.0/approve", headers=auth, json={"totp": 123456})
        assert r.status_code == 400
        r = http.post(f"{base}/4.0/approve", headers=auth, content=b"x" * 20000)
        assert r.status_code == 413
        r = http.post(f"{base}/4.0/reject", headers=auth, json={"reason": 5})
        assert r.status_code == 400
        assert "reason" in r.json()["message"]
        # A maintainer may look and reject, not approve.
        h = basic(helper.token)
        assert http.get(f"{base}/4.0/", headers=h).status_code == 200
        r = http.post(f"{base}/4.0/approve", headers=h, json={"totp": helper.code()})
        assert r.status_code == 403
        assert "needs an owner" in r.json()["message"]
        # A user without a role sees nothing.
        stranger = staged.quick_token(f"{unique}-stranger")
        assert http.get(f"{base}/", headers=basic(stranger)).status_code == 403
        # Preview: an unknown stage id, and junk.
        assert http.get("/stage/nope/simple/").status_code == 404
        assert http.get(f"/stage/{'x' * 100}/simple/").status_code == 404
        stage = http.get(f"{base}/4.0/", headers=auth).json()
        sid = stage["stage"]
        assert http.get(f"/stage/{sid}/simple/{unique}/", headers={"Accept": "text/nonsense"}).status_code == 406
        assert http.get(f"/stage/{sid}/files/../../etc/passwd").status_code == 404
        assert http.get(f"/stage/{sid}/simple/no-such-project/").status_code == 404
        r = http.get(f"/stage/{sid}/simple/{unique.upper()}/", follow_redirects=False)
        assert r.status_code == 301
        assert r.headers["location"].endswith(f"/stage/{sid}/simple/{unique}/")
    # The client command and the admin commands.
    code, out = release_cli(staged, "list", unique)
    assert code != 0
    assert "ASSAY_TOKEN" in out
    from click.testing import CliRunner

    from assay.cli import main

    r2 = CliRunner().invoke(main, ["release", "list", unique, "--repository-url", "ftp://x", "--token", "t"])
    assert r2.exit_code != 0
    assert "http(s) URL" in r2.output
    assert staged.cli("project", "set", unique, check=False).returncode != 0
    bad = staged.cli("project", "set", unique, "--releases", "sometimes", check=False)
    assert bad.returncode != 0
    assert "sometimes" in bad.stdout + bad.stderr
    again = staged.cli("user", "totp", "enable", owner.name, check=False)
    assert again.returncode != 0
    assert "already" in again.stdout + again.stderr
    nobody = staged.cli("user", "totp", "enable", "no-such-user", check=False)
    assert nobody.returncode != 0
    assert "no user" in nobody.stdout + nobody.stderr


def test_release_rules_span_the_stage_and_the_live_release(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    """One sdist per release counts the stage's; an archived project lets nothing go live;
    removing a project removes its stages' blobs too."""
    owner = _staged_project(staged, unique, f"{unique}-owner")
    before = set(staged.stored_files())
    with staged.client() as http:
        assert upload(http, make_sdist(tmp_path, unique, "5.0"), owner.token).status_code == 200
        module = unique.replace("-", "_")
        zipped = tmp_path / f"{module}-5.0.zip"
        with zipfile.ZipFile(zipped, "w") as zf:
            zf.writestr(f"{module}-5.0/PKG-INFO", metadata_text(unique, "5.0"))
        r = upload(http, zipped, owner.token)
        assert r.status_code == 400
        assert "Only one sdist" in r.text
        # Back to direct publishing: the staged sdist still counts for the live release.
        staged.cli("project", "set", unique, "--releases", "direct")
        r = upload(http, zipped, owner.token)
        assert r.status_code == 400
        assert "the stage of 5.0 already has" in r.text
    staged.cli("project", "status", unique, "archived")
    code, out = release_cli(staged, "approve", unique, "5.0", "--totp", owner.code(), token=owner.token)
    assert code != 0
    assert "archived" in out
    staged.cli("project", "remove", unique, "--yes")
    assert set(staged.stored_files()) == before


def test_m_of_n_owners_must_approve(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    first = _staged_project(staged, unique, f"{unique}-first")
    staged.cli("project", "set", unique, "--approvals", "2")
    second = maintainer(staged, f"{unique}-second", unique)
    with staged.client() as http:
        assert upload(http, make_wheel(tmp_path, unique, "6.0"), first.token).status_code == 200
    code, out = release_cli(staged, "approve", unique, "6.0", "--totp", first.code(), token=first.token)
    assert code == 0, out
    assert "1 of 2 owners" in out
    assert _live_files(staged, unique) == []
    assert _show(staged, unique, "6.0", first.token)["approvers"] == [first.name]
    # The same owner twice does not count twice (the next step's code: not a replay).
    code, out = release_cli(
        staged, "approve", unique, "6.0", "--totp", first.totp.at(time.time() + 30), token=first.token
    )
    assert code != 0
    assert "approved this stage already" in out
    code, out = release_cli(staged, "approve", unique, "6.0", "--totp", second.code(), token=second.token)
    assert code == 0, out
    assert _live_files(staged, unique) == [f"{unique.replace('-', '_')}-6.0-py3-none-any.whl"]
    approved = [e for e in staged.audit() if e.get("project") == unique and e["action"] == "stage:approve"]
    assert approved[0]["details"]["approvers"] == [first.name, second.name]  # type: ignore[index]
    bad = staged.cli("project", "set", unique, "--approvals", "0", check=False)
    assert bad.returncode != 0
    assert "between 1 and 10" in bad.stdout + bad.stderr


def test_a_private_indexs_preview_needs_its_read_token(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    """The stage id is a capability, but on a private index not the only one: the preview asks
    for a token of that index, as its /simple/ does."""
    index = f"p{unique.replace('-', '')}"[:30]
    staged.cli("index", "create", index, "--private")
    owner = f"{unique}-owner"
    staged.quick_user(owner)
    staged.cli("project", "create", unique, "--owner", owner, "--index", index)
    staged.cli("project", "set", unique, "--releases", "staged", "--index", index)
    token = staged.cli("token", "create", "--user", owner, "--index", index).stdout.strip()
    wheel = make_wheel(tmp_path, unique, "1.0")
    with staged.client(index=index) as http:
        r = upload(http, wheel, token)
        assert r.status_code == 200, r.text
    preview = r.headers["assay-stage-preview"]
    with httpx.Client(verify=staged.verify) as http:
        assert http.get(preview).status_code == 401
        assert http.get(preview, headers=basic(staged.quick_token(f"{unique}-elsewhere"))).status_code == 403
        page = http.get(preview + f"{unique}/", headers={**basic(token), "Accept": JSON_V1})
        assert page.status_code == 200
        assert [f["filename"] for f in page.json()["files"]] == [wheel.name]
        url = httpx.URL(preview + f"{unique}/").join(page.json()["files"][0]["url"])
        assert http.get(url).status_code == 401
        assert http.get(url, headers=basic(token)).content == wheel.read_bytes()


def test_two_approvals_at_once_make_it_live_once(staged: AssayServer, unique: str, tmp_path: Path) -> None:
    first = _staged_project(staged, unique, f"{unique}-first")
    second = maintainer(staged, f"{unique}-second", unique)
    with staged.client() as http:
        for tag in ("py3-none-any", "py2.py3-none-any"):
            assert upload(http, make_wheel(tmp_path, unique, "7.0", tag=tag), first.token).status_code == 200
    answers: list[httpx.Response] = []

    def approve(who: Maintainer) -> None:
        with staged.client() as http:
            answers.append(
                http.post(f"/_/releases/{unique}/7.0/approve", headers=basic(who.token), json={"totp": who.code()})
            )

    threads = [threading.Thread(target=approve, args=(m,)) for m in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in answers) == [200, 404], [r.text for r in answers]
    assert len(_live_files(staged, unique)) == 2
    with staged.client() as http:
        doc = http.get(f"/pypi/{unique}/json").json()
    assert len(doc["urls"]) == 2
    events = [e for e in staged.audit() if e.get("project") == unique]
    assert sum(e["action"] == "stage:approve" for e in events) == 1
    assert sum(e["action"] == "file:upload" for e in events) == 2


def test_a_pending_stage_only_publisher_stages_the_first_release(
    staged: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    staged.quick_user(f"{unique}-owner")
    staged.cli(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--owner",
        f"{unique}-owner",
        "--issuer",
        idp.issuer,
        "--repository",
        f"acme/{unique}",
        "--workflow",
        "release.yml",
        "--stage-only",
    )
    claims = github_claims(f"acme/{unique}", "release.yml", actor="someone")
    with staged.client() as http:
        minted = http.post("/_/oidc/mint-token", json={"token": idp.token(AUDIENCE, claims)})
        assert minted.status_code == 200, minted.text
        r = upload(http, make_wheel(tmp_path, unique, "0.1"), minted.json()["token"])
        assert r.status_code == 200, r.text
        assert "staged" in r.text
    assert _live_files(staged, unique) == []  # the project exists (the publisher created it), empty
    listed = staged.cli("publisher", "list", "--project", unique).stdout
    assert unique in listed
