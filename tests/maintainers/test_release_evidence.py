"""Issue 14, item 5: the JSON API and the PEP 740 provenance carry a file's stage approval (the
statement signed by the index's log key) and its maintainer signatures."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from assay.log import approvals, note
from tests.maintainers.conftest import MAINTAINER_ISSUER
from tests.stages.conftest import maintainer, release_cli
from tests.support.dists import build_project
from tests.support.server import AssayServer
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.upload import upload


def staged_and_approved(
    server: AssayServer, local_sigstore: LocalSigstore, project: str, tmp_path: Path, version: str = "1.0"
) -> tuple[str, list[Path]]:
    """A staged project with a registered maintainer, whose owner uploads a wheel signed by the
    maintainer and an unsigned sdist with a token, then approves the stage with TOTP; returns
    the owner's name and the files."""
    owner_name = f"{project}-owner"
    server.quick_user(owner_name)
    server.cli("project", "create", project, "--owner", owner_name)
    server.cli("project", "set", project, "--releases", "staged")
    owner = maintainer(server, owner_name, project)
    server.cli("maintainer", "add", project, "--issuer", MAINTAINER_ISSUER, "--email", "rm@acme.example")
    built = build_project(tmp_path, project, version)
    signed = local_sigstore.attest_file(built.wheel, CertIdentity.email("rm@acme.example", MAINTAINER_ISSUER))
    with server.client() as http:
        r = upload(http, built.wheel, owner.token, attestations=f"[{signed.model_dump_json()}]")
        assert r.status_code == 200, r.text
        assert "staged" in r.text
        r = upload(http, built.sdist, owner.token)
        assert r.status_code == 200, r.text
    code, out = release_cli(server, "approve", project, version, "--totp", owner.code(), token=owner.token)
    assert code == 0, out
    return owner_name, [built.wheel, built.sdist]


def _verifier(http: httpx.Client) -> note.Ed25519Verifier:
    return note.Ed25519Verifier.from_verifier_key(http.get("/log/key").text.strip())


def test_json_api_and_provenance_show_the_approval_and_the_maintainer(
    signed_index: AssayServer, local_sigstore: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    owner, (wheel, sdist) = staged_and_approved(signed_index, local_sigstore, unique, tmp_path)
    block = {"kind": "Maintainer", "issuer": MAINTAINER_ISSUER, "email": "rm@acme.example"}
    with signed_index.client() as http:
        verifier = _verifier(http)
        for url in (f"/pypi/{unique}/json", f"/pypi/{unique}/1.0/json"):
            files = {f["filename"]: f for f in http.get(url).json()["urls"]}
            assert set(files) == {wheel.name, sdist.name}
            for f in files.values():
                approval = f["approval"]
                assert approval["approvers"] == [owner]
                assert approval["triggered_by"] == [f"user:{owner}"]
                # The statement verifies under the index's log key and names this very file.
                opened = approvals.open_statement(approval["statement"], verifier)
                assert opened.covers(f["filename"], f["digests"]["sha256"])
                assert opened.approved == approval["approved"]
            assert files[wheel.name]["maintainer_signatures"] == [block]
            assert files[sdist.name]["maintainer_signatures"] == []
        releases = http.get(f"/pypi/{unique}/json").json()["releases"]["1.0"]
        assert all(f["approval"] is not None for f in releases)
        # The attested file's PEP 740 provenance carries the same signed statement.
        answer = http.get(files[wheel.name]["provenance"])
        provenance = answer.json()
        # Rebuild reports come later than the logged provenance: linked beside it, not inside.
        rebuilds = http.get(answer.links["assay-rebuilds"]["url"])
        assert rebuilds.status_code == 200, rebuilds.text
        assert rebuilds.json()["filename"] == wheel.name
        assert rebuilds.json()["reproduced_by"] == 0
        assert provenance["attestation_bundles"][0]["publisher"] == block
        (statement,) = provenance["approvals"]
        assert statement == files[wheel.name]["approval"]["statement"]
        assert files[sdist.name]["provenance"] is None
        # The file page says the same, each fact with who asserts it (issue 15, item 2): signed
        # by a maintainer (not "in a CI job"), and approved by the owner.
        page = http.get(f"/project/{unique}/1.0/{wheel.name}/").text
        assert "Attestations signed by a maintainer" in page
        assert "by the maintainer rm@acme.example (a person's own Sigstore identity, not a CI build)" in page
        assert "in a CI job" not in page
        assert "Release approval" in page
        assert f"<td>Approved by</td><td>{owner}</td>" in page
        sdist_page = http.get(f"/project/{unique}/1.0/{sdist.name}/").text
        assert "Release approval" in sdist_page
        assert "no provenance" in sdist_page


def test_a_direct_release_has_no_approval(signed_index: AssayServer, unique: str, tmp_path: Path) -> None:
    token = signed_index.quick_token(f"{unique}-u")
    built = build_project(tmp_path, unique, "1.0")
    with signed_index.client() as http:
        assert upload(http, built.sdist, token).status_code == 200
        (f,) = http.get(f"/pypi/{unique}/json").json()["urls"]
    assert f["approval"] is None
    assert f["maintainer_signatures"] == []
    with signed_index.client() as http:
        assert "Release approval" not in http.get(f"/project/{unique}/1.0/{built.sdist.name}/").text
    assert json.dumps(f)  # plain JSON
