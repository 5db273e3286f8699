"""Issue 14, item 5: ``assay verify`` with ``approved = true`` pins passes for a staged release
approved on the index (its signed statement verified under the index's pinned log key) and
fails (``unapproved``) for a release published directly; a maintainer's identity can be pinned
(``kind = "Maintainer"``); the pins file keeps its format when --tofu writes it back."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from tests.maintainers.conftest import MAINTAINER_ISSUER
from tests.maintainers.test_release_evidence import staged_and_approved
from tests.support.dists import build_project
from tests.support.server import AssayServer
from tests.support.sigstore_authority import LocalSigstore
from tests.support.upload import upload
from tests.verify.conftest import Published, World


class ServerWorld(World):
    """The verify tests' World against a real TLS ``assay serve`` (its CA trusted)."""

    def __init__(self, tmp: Path, server: AssayServer, authority: LocalSigstore) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        super().__init__(tmp, None, authority)  # type: ignore[arg-type]
        self.server = server

    def env(self) -> dict[str, str | None]:
        return {**super().env(), "SSL_CERT_FILE": str(self.server.ca_file)}


def _published(server: AssayServer, project: str, path: Path) -> Published:
    with server.client() as http:
        urls = {f["filename"]: f["url"] for f in http.get(f"/pypi/{project}/json").json()["urls"]}
    return Published(project, "1.0", path.name, hashlib.sha256(path.read_bytes()).hexdigest(), path, urls[path.name])


def test_verify_requires_approval(
    signed_index: AssayServer, local_sigstore: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    server = signed_index
    approved_project = f"{unique}-a"
    owner, (wheel, _sdist) = staged_and_approved(server, local_sigstore, approved_project, tmp_path / "a")
    direct_project = f"{unique}-d"
    built = build_project(tmp_path, direct_project, "1.0")
    with server.client() as http:
        assert upload(http, built.sdist, server.quick_token(f"{unique}-u")).status_code == 200
    world = ServerWorld(tmp_path / "world", server, local_sigstore)
    index = f"{server.url}/simple/"
    lock = world.lock(
        [_published(server, approved_project, wheel)], [_published(server, direct_project, built.sdist)], index=index
    )
    tables: dict[str, Any] = {
        approved_project: {
            "kind": "Maintainer",
            "issuer": MAINTAINER_ISSUER,
            "email": "rm@acme.example",
            "approved": True,
            "comment": "release manager, staged",
        },
        direct_project: {"approved": True, "comment": "must be staged"},
    }
    world.pins_path.write_text(tomli_w.dumps({"packages": tables}))

    # Without the index's log key pinned, no statement can be verified: both unapproved.
    first = world.verify(str(lock))
    assert first.code == 1, first.text
    assert set(first.verdicts.values()) == {"unapproved"}
    assert "needs the log key" in first.file(wheel.name)["reason"]

    # --tofu pins the key from /log/key: the approved release passes, the direct one does not.
    run = world.verify(str(lock), "--tofu")
    assert run.code == 1, run.text
    assert run.verdicts == {wheel.name: "verified", built.sdist.name: "unapproved"}
    reason = run.file(wheel.name)["reason"]
    assert f"maintainer rm@acme.example (issuer {MAINTAINER_ISSUER})" in reason
    assert f"approved by {owner} at " in reason
    assert "no approval statement" in run.file(built.sdist.name)["reason"]

    # The pins file was written back (the log key) with its approval requirements intact.
    written = tomllib.loads(world.pins_path.read_text())
    assert written["packages"] == tables
    assert index in written["log"]

    # Without the requirement, the direct release passes as before (unattested: a warning).
    del tables[direct_project]
    world.pins_path.write_text(tomli_w.dumps({"packages": tables, "log": written["log"]}))
    again = world.verify(str(lock))
    assert again.code == 0, again.text
    assert again.verdicts == {wheel.name: "verified", built.sdist.name: "unattested"}


def test_a_statement_signed_by_another_key_does_not_approve(
    signed_index: AssayServer, local_sigstore: LocalSigstore, unique: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from assay.log import note
    from assay.verify.approvals import ApprovalChecker
    from assay.verify.fetch import Http
    from assay.verify.files import LockedFile

    server = signed_index
    _owner, (wheel, _sdist) = staged_and_approved(server, local_sigstore, unique, tmp_path / "a")
    index = f"{server.url}/simple/"
    with server.client() as http:
        key = http.get("/log/key").text.strip()
    origin = key.split("+")[0]
    file = LockedFile(unique, "1.0", wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest(), index)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    client = Http(timeout=20, retries=1, connections=1)
    try:
        assert ApprovalChecker(client, {index: key}).check(file).approval is not None
        # The same origin under another key (a forged log): the statement does not verify.
        other = note.Ed25519Signer.generate(origin).verifier_key()
        checked = ApprovalChecker(client, {index: other}).check(file)
        assert checked.approval is None
        assert checked.problem is not None
        assert "not signed by the index's log key" in checked.problem
        # Another file of the release (not in the statement) is not approved by it.
        stranger = LockedFile(unique, "1.0", wheel.name, "0" * 64, index)
        assert ApprovalChecker(client, {index: key}).check(stranger).approval is None
    finally:
        client.close()
