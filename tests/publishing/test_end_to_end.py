"""Trusted Publishing end to end with the real clients: uv publish, assay publish, twine.

The CI provider is the local OIDC stand-in (tests/support/oidc_provider.py); the index runs over
TLS with a test CA because uv always calls https://<host>/_/oidc/...
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from uv import find_uv_bin

from tests.publishing.conftest import AUDIENCE
from tests.support.dists import build_project
from tests.support.oidc_provider import OIDCProvider, github_actions_env, github_claims, gitlab_ci_env, gitlab_claims
from tests.support.server import AssayServer, client_environ

UV = find_uv_bin()


def _json(server: AssayServer, project: str) -> dict:  # type: ignore[type-arg]
    with server.client() as http:
        response = http.get(f"/pypi/{project}/json")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_uv_publish_with_github_actions_identity(
    tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    tp_index.admin("project", "create", unique, "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/widget",
        "--workflow",
        "release.yml",
    )
    idp.github_job = github_claims("acme/widget", "release.yml", sha="a" * 40, run_id="1234")
    built = build_project(tmp_path, unique, "1.0")
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(tp_index.ca_file)})
    result = subprocess.run(
        [UV, "publish", "--publish-url", tp_index.upload_url, "--trusted-publishing", "always", *map(str, built.files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert AUDIENCE in idp.github_token_audiences  # uv asked the CI provider for our audience

    doc = _json(tp_index, unique)
    claims = [f["trusted_publisher"] for f in doc["urls"]]
    assert len(claims) == 2
    for c in claims:
        assert c["issuer"] == idp.issuer
        assert c["kind"] == "github"
        assert c["repository"] == "acme/widget"
        assert c["workflow_ref"] == "acme/widget/.github/workflows/release.yml@refs/tags/v1.0.0"
        assert c["sha"] == "a" * 40
        assert c["run_id"] == "1234"

    # uv burns the token after publishing (POST /_/oidc/burn-token); the audit log shows it.
    audit = tp_index.admin("audit", "--json", "--limit", "200").stdout
    assert '"action": "token:mint"' in audit
    assert '"action": "token:revoke"' in audit


def test_uv_publish_with_gitlab_identity(tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path) -> None:
    host = idp.authority  # a self-managed GitLab: the issuer is the instance itself
    tp_index.admin(
        "publisher",
        "add",
        "gitlab",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--owner",
        "owner",
        "--repository",
        "group/sub/widget",
        "--workflow",
        ".gitlab-ci.yml",
    )
    token = idp.token(AUDIENCE, gitlab_claims("group/sub/widget", ".gitlab-ci.yml", instance_host=host))
    built = build_project(tmp_path, unique, "3.1")
    env = client_environ({**gitlab_ci_env(AUDIENCE, token), "SSL_CERT_FILE": str(tp_index.ca_file)})
    result = subprocess.run(
        [UV, "publish", "--publish-url", tp_index.upload_url, "--trusted-publishing", "always", str(built.wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = _json(tp_index, unique)  # the pending publisher created the project on first publish
    assert doc["info"]["version"] == "3.1"
    assert doc["ownership"]["roles"] == [{"role": "Owner", "user": "owner"}]
    assert doc["urls"][0]["trusted_publisher"]["project_path"] == "group/sub/widget"


def test_assay_publish_end_to_end(tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path) -> None:
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--owner",
        "owner",
        "--repository",
        "acme/tool",
        "--workflow",
        "publish.yml",
        "--environment",
        "PyPI",
    )
    idp.github_job = github_claims("acme/tool", "publish.yml", environment="pypi")
    built = build_project(tmp_path, unique, "0.1")
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(tp_index.ca_file)})
    result = subprocess.run(
        [sys.executable, "-m", "assay", "publish", "--repository-url", tp_index.upload_url, *map(str, built.files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "PEP 807 discovery" in out  # it found the endpoints through /.well-known/pytp
    assert out.count("uploaded ") == 2
    assert "revoked the upload token" in out
    files = _json(tp_index, unique)["urls"]
    assert {f["trusted_publisher"]["environment"] for f in files} == {"pypi"}


def test_assay_publish_outside_ci_says_what_is_missing(tp_index: AssayServer, tmp_path: Path) -> None:
    built = build_project(tmp_path, "nothing-here", "1.0")
    env = client_environ({"SSL_CERT_FILE": str(tp_index.ca_file)})
    result = subprocess.run(
        [sys.executable, "-m", "assay", "publish", "--repository-url", tp_index.upload_url, str(built.wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no ambient OIDC credential" in result.stderr
    assert "Traceback" not in result.stderr


def test_twine_uploads_with_a_minted_token(
    tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    tp_index.admin(
        "publisher",
        "add",
        "google",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--owner",
        "owner",
        "--email",
        "ci@acme.iam.example",
    )
    from tests.support.oidc_provider import google_claims

    oidc = idp.token(AUDIENCE, google_claims("ci@acme.iam.example"), omit=("jti",))
    with tp_index.client() as http:
        minted = http.post("/_/oidc/mint-token", content=f'{{"token": "{oidc}"}}')
    assert minted.status_code == 200, minted.text
    body = minted.json()
    assert body["success"] is True
    assert isinstance(body["expires"], int)

    built = build_project(tmp_path, unique, "2.0")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            tp_index.upload_url,
            "--cert",
            str(tp_index.ca_file),
            "-u",
            "__token__",
            "-p",
            body["token"],
            str(built.wheel),
        ],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _json(tp_index, unique)["urls"][0]["trusted_publisher"]["email"] == "ci@acme.iam.example"


def test_minted_token_is_scoped_to_the_publishers_projects(
    tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    other = unique + "-other"
    tp_index.admin("project", "create", unique, "--owner", "owner")
    tp_index.admin("project", "create", other, "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/scoped",
        "--workflow",
        "release.yml",
    )
    oidc = idp.token(AUDIENCE, github_claims("acme/scoped", "release.yml"))
    with tp_index.client() as http:
        token = http.post("/_/oidc/mint-token", json={"token": oidc}).json()["token"]
    built = build_project(tmp_path, other, "1.0")
    from tests.support.upload import upload

    with tp_index.client() as http:
        refused = upload(http, built.wheel, token)
    assert refused.status_code == 403
    assert "not allowed to upload to project" in refused.text


def test_discovery_document_and_fallback_paths(tp_index: AssayServer) -> None:
    with tp_index.client() as http:
        for key in ("%2Flegacy%2F", "%2Flegacy"):
            r = http.get(f"/.well-known/pytp?discover={key}")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("application/vnd.pypi.pytp.v1+json")
            doc = r.json()
            assert doc["audience-endpoint"] == tp_index.url + "/_/oidc/audience"
            assert doc["token-mint-endpoint"] == tp_index.url + "/_/oidc/mint-token"
            assert doc["token-revocation-endpoint"] == tp_index.url + "/_/oidc/revoke-token"
            assert doc["default-features"] == ["multi-use-token"]
            assert set(doc["features"]) == {"single-use-token", "multi-use-token"}
            assert r.headers["cache-control"] == "no-store"  # issue 10, item 8
        missing = http.get("/.well-known/pytp?discover=%2Fupload%2F")
        assert missing.status_code == 404  # PEP 807: not supported for that upload URL
        assert missing.json()["status"] == 404
        assert http.get("/.well-known/pytp?discover=%2Flegacy%2F", headers={"Accept": "text/html"}).status_code == 406
        # Issue 11: the one RFC 9110 negotiator reads q-values here too; q=0 means "not this".
        refused = http.get("/.well-known/pytp?discover=%2Flegacy%2F", headers={"Accept": "application/json;q=0"})
        assert refused.status_code == 406
        assert http.get("/_/oidc/audience").json() == {"audience": AUDIENCE}


def test_single_use_token_works_once(tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path) -> None:
    tp_index.admin("project", "create", unique, "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/once",
        "--workflow",
        "release.yml",
    )
    oidc = idp.token(AUDIENCE, github_claims("acme/once", "release.yml"))
    from tests.support.upload import upload

    with tp_index.client() as http:
        minted = http.post("/_/oidc/mint-token", json={"token": oidc, "features": ["single-use-token"]})
        assert minted.status_code == 200, minted.text
        token = minted.json()["token"]
        built = build_project(tmp_path, unique, "1.0")
        assert upload(http, built.wheel, token).status_code == 200
        second = upload(http, built.sdist, token)
    assert second.status_code == 403
    assert "revoked" in second.text


def test_revoke_endpoint_kills_the_token(tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path) -> None:
    tp_index.admin("project", "create", unique, "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/revoke",
        "--workflow",
        "release.yml",
    )
    oidc = idp.token(AUDIENCE, github_claims("acme/revoke", "release.yml"))
    from tests.support.upload import upload

    with tp_index.client() as http:
        token = http.post("/_/oidc/mint-token", json={"token": oidc}).json()["token"]
        assert http.post("/_/oidc/revoke-token", json={"token": token}).json() == {"success": True}
        built = build_project(tmp_path, unique, "1.0")
        refused = upload(http, built.wheel, token)
        assert refused.status_code == 403
        assert "revoked" in refused.text
        bad = http.post("/_/oidc/revoke-token", content=b"not json")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["code"] == "invalid-payload"


def test_mint_accepts_form_encoded_content_type(tp_index: AssayServer, idp: OIDCProvider, unique: str) -> None:
    # PyPI parses the body as JSON whatever the Content-Type (curl -d sends form encoding).
    tp_index.admin("project", "create", unique, "--owner", "owner")
    tp_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--issuer",
        idp.issuer,
        "--repository",
        "acme/curl",
        "--workflow",
        "release.yml",
    )
    oidc = idp.token(AUDIENCE, github_claims("acme/curl", "release.yml"))
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tp_index.ca_file))) as http:
        r = http.post(
            tp_index.url + "/_/oidc/mint-token",
            content=f'{{"token":"{oidc}"}}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 200, r.text


def _twine(server: AssayServer, token: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
            "--repository-url", server.upload_url, "--cert", str(server.ca_file),
            "-u", "__token__", "-p", token, *map(str, files),
        ],
        capture_output=True,
        text=True,
        env=client_environ(),
        timeout=120,
    )  # fmt: skip


def test_a_reserved_name_waits_for_its_pending_publisher(
    tp_index: AssayServer, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    # Issue 10 item 9: `--reserve` keeps the name for the pending publisher's first trusted
    # publish; until then another user's token cannot create the project by uploading first.
    from tests.support.dists import make_wheel
    from tests.support.upload import upload

    workload = ["--issuer", idp.issuer, "--owner", "owner", "--workflow", "release.yml", "--reserve"]
    added = tp_index.admin("publisher", "add", "github", "--project", unique, "--repository", "acme/rsv", *workload)
    assert "the name is reserved for it" in added.stdout
    assert "name reserved" in tp_index.admin("publisher", "list", "--project", unique).stdout
    tp_index.ensure_user("mallory")
    mallory = tp_index.token("mallory")
    built = build_project(tmp_path, unique, "1.0")
    squat = _twine(tp_index, mallory, built.wheel)
    assert squat.returncode != 0
    assert "403" in squat.stdout + squat.stderr
    assert "reserved for a pending trusted publisher" in squat.stdout + squat.stderr, squat.stdout + squat.stderr
    with tp_index.client() as http:
        assert http.get(f"/simple/{unique}/").status_code == 404  # the refusal left nothing

    # The trusted publish itself creates the project; then the reservation is gone with it.
    with tp_index.client() as http:
        minted = http.post("/_/oidc/mint-token", json={"token": idp.token(AUDIENCE, github_claims("acme/rsv"))})
    assert minted.status_code == 200, minted.text
    published = _twine(tp_index, minted.json()["token"], *built.files)
    assert published.returncode == 0, published.stdout + published.stderr
    assert _json(tp_index, unique)["ownership"]["roles"] == [{"role": "Owner", "user": "owner"}]
    late = _twine(tp_index, mallory, make_wheel(tmp_path, unique, "9.0"))
    assert "not an owner or maintainer" in late.stdout + late.stderr, late.stdout + late.stderr
    assert "reserved" not in late.stdout + late.stderr

    # The owner it names may still create the project; removing the pending publisher frees the name.
    tp_index.admin("publisher", "add", "github", "--project", f"{unique}-own", "--repository", "acme/own", *workload)
    rm = tp_index.admin("publisher", "add", "github", "--project", f"{unique}-rm", "--repository", "acme/rm", *workload)
    pending_id = rm.stdout.split()[3]  # "added pending publisher pending-N for ..."
    assert pending_id.startswith("pending-"), rm.stdout
    with tp_index.client() as http:
        own = upload(http, make_wheel(tmp_path, f"{unique}-own", "1.0"), tp_index.token("owner"))
        assert own.status_code == 200, own.text
        held = upload(http, make_wheel(tmp_path, f"{unique}-rm", "1.0"), mallory)
        assert held.status_code == 403, held.text
        tp_index.admin("publisher", "remove", pending_id)
        freed = upload(http, make_wheel(tmp_path, f"{unique}-rm", "1.0"), mallory)
        assert freed.status_code == 200, freed.text
    # Reserving a name already taken is a mistake, said so.
    taken = tp_index.admin(
        "publisher", "add", "github", "--project", unique, "--repository", "acme/late", *workload, check=False
    )
    assert taken.returncode == 1
    assert "--reserve only applies to a pending publisher" in taken.stderr
