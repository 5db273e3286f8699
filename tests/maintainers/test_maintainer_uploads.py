"""Issue 14, item 3: a token upload carrying PEP 740 attestations signed by a registered
maintainer identity is accepted and its provenance names the maintainer; one signed by an
identity the project has not registered is refused, and nothing of it is kept."""

from __future__ import annotations

import json
from pathlib import Path

from assay.attestations.trust import load_trust_root
from assay.attestations.verify import parse_attestation, verify_attestation
from assay.publishers import from_publisher
from tests.maintainers.conftest import MAINTAINER_ISSUER
from tests.support.dists import build_project, sha256
from tests.support.server import AssayServer
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.upload import upload


def _project_with_maintainer(server: AssayServer, project: str, user: str) -> str:
    server.quick_user(user)
    server.cli("project", "create", project, "--owner", user)
    server.cli("maintainer", "add", project, "--issuer", MAINTAINER_ISSUER, "--email", f"{user}@acme.example")
    return server.quick_token(user)


def test_admin_maintainer_add_list_remove(signed_index: AssayServer, unique: str) -> None:
    server = signed_index
    server.quick_user("mara")
    server.cli("project", "create", unique, "--owner", "mara")
    out = server.cli("maintainer", "add", unique, "--issuer", MAINTAINER_ISSUER, "--email", "Mara@Acme.example").stdout
    assert "maintainer mara@acme.example" in out
    again = server.cli(
        "maintainer", "add", unique, "--issuer", MAINTAINER_ISSUER, "--email", "mara@acme.example", check=False
    )
    assert again.returncode != 0
    assert "already a maintainer" in again.stderr + again.stdout
    server.cli("maintainer", "add", unique, "--issuer", MAINTAINER_ISSUER, "--subject", "https://id.acme.example/mara")
    rows = [json.loads(line) for line in server.cli("maintainer", "list", unique, "--json").stdout.splitlines()]
    assert [{k: v for k, v in r.items() if k != "added"} for r in rows] == [
        {"kind": "Maintainer", "issuer": MAINTAINER_ISSUER, "email": "mara@acme.example"},
        {"kind": "Maintainer", "issuer": MAINTAINER_ISSUER, "subject": "https://id.acme.example/mara"},
    ]
    both = server.cli("maintainer", "add", unique, "--issuer", MAINTAINER_ISSUER, check=False)
    assert both.returncode != 0
    assert "exactly one of --email or --subject" in both.stderr + both.stdout
    bad = server.cli("maintainer", "add", unique, "--issuer", "not-a-url", "--email", "x@y.example", check=False)
    assert bad.returncode != 0
    assert "https:// URL" in bad.stderr + bad.stdout
    server.cli("maintainer", "remove", unique, "--issuer", MAINTAINER_ISSUER, "--email", "mara@acme.example")
    rows = server.cli("maintainer", "list", unique).stdout
    assert "mara@acme.example" not in rows
    assert "https://id.acme.example/mara" in rows
    assert {"maintainer:add", "maintainer:remove"} <= {str(e["action"]) for e in server.audit("--project", unique)}


def test_a_maintainer_signed_token_upload_is_accepted_and_says_maintainer(
    signed_index: AssayServer, local_sigstore: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    server = signed_index
    token = _project_with_maintainer(server, unique, "django-fellow")
    built = build_project(tmp_path, unique, "1.0")
    attestation = local_sigstore.attest_file(
        built.wheel, CertIdentity.email("django-fellow@acme.example", MAINTAINER_ISSUER)
    )
    with server.client() as http:
        response = upload(http, built.wheel, token, attestations=f"[{attestation.model_dump_json()}]")
        assert response.status_code == 200, response.text
        page = http.get(f"/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        (entry,) = page["files"]
        provenance = http.get(entry["provenance"]).json()
    (bundle,) = provenance["attestation_bundles"]
    assert bundle["publisher"] == {
        "kind": "Maintainer",
        "issuer": MAINTAINER_ISSUER,
        "email": "django-fellow@acme.example",
    }
    identity = from_publisher(bundle["publisher"])
    assert identity.summary() == f"maintainer django-fellow@acme.example (issuer {MAINTAINER_ISSUER})"
    # The served bundle verifies under the custom root against the maintainer's policy.
    verify_attestation(
        parse_attestation(bundle["attestations"][0]),
        filename=built.wheel.name,
        sha256=sha256(built.wheel),
        policy=identity.policy(),
        trust=load_trust_root(local_sigstore.trusted_root_path),
    )


def test_an_upload_signed_by_an_unregistered_identity_is_refused_with_nothing_kept(
    signed_index: AssayServer, local_sigstore: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    server = signed_index
    token = _project_with_maintainer(server, unique, "fellow-two")
    built = build_project(tmp_path, unique, "1.0")
    before = server.stored_files()
    for intruder in (
        CertIdentity.email("mallory@acme.example", MAINTAINER_ISSUER),  # another person
        CertIdentity.email("fellow-two@acme.example", "https://login.evil.example"),  # another issuer
    ):
        attestation = local_sigstore.attest_file(built.sdist, intruder)
        with server.client() as http:
            response = upload(http, built.sdist, token, attestations=f"[{attestation.model_dump_json()}]")
        assert response.status_code == 400, response.text
        assert f"signed by {intruder.san} (issuer {intruder.issuer})" in response.text
        assert "not a registered maintainer" in response.text
        assert "fellow-two@acme.example" in response.text  # which identity is registered
    with server.client() as http:
        page = http.get(f"/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        assert page.status_code == 200
        assert page.json()["files"] == []
    assert server.stored_files() == before
    # Without attestations the same token still uploads (a maintainer identity is an option).
    with server.client() as http:
        assert upload(http, built.sdist, token).status_code == 200


def test_maintainers_belong_to_their_index(
    signed_index: AssayServer, local_sigstore: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    """A named index's project has its own maintainers (issue 11: everything is per index): the
    same project name on the default index, with the same identity registered there, does not
    make a signature acceptable on /team/."""
    server = signed_index
    index = f"t{unique.replace('-', '')}"[:30]
    server.cli("index", "create", index)
    owner = f"{unique}-o"
    server.quick_user(owner)
    identity = CertIdentity.email("team-rm@acme.example", MAINTAINER_ISSUER)
    server.cli("project", "create", unique, "--owner", owner)
    server.cli("maintainer", "add", unique, "--issuer", MAINTAINER_ISSUER, "--email", identity.san)
    server.cli("project", "create", unique, "--owner", owner, "--index", index)
    team_token = server.cli("token", "create", "--user", owner, "--index", index).stdout.strip()
    built = build_project(tmp_path, unique, "1.0")
    attestation = f"[{local_sigstore.attest_file(built.wheel, identity).model_dump_json()}]"
    with server.client(index=index) as http:
        refused = upload(http, built.wheel, team_token, attestations=attestation)
        assert refused.status_code == 400, refused.text
        # No maintainers on the team index's project: judged by the publishers' rules, as before.
        assert "only supported when using Trusted Publishing" in refused.text
    out = server.cli(
        "maintainer", "add", unique, "--issuer", MAINTAINER_ISSUER, "--email", identity.san, "--index", index
    )
    assert "added" in out.stdout
    assert identity.san in server.cli("maintainer", "list", unique, "--index", index).stdout
    with server.client(index=index) as http:
        accepted = upload(http, built.wheel, team_token, attestations=attestation)
        assert accepted.status_code == 200, accepted.text
        (f,) = http.get(f"/pypi/{unique}/json").json()["urls"]
    assert f["maintainer_signatures"] == [{"kind": "Maintainer", "issuer": MAINTAINER_ISSUER, "email": identity.san}]
