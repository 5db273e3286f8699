"""Independent rebuilds (issue 14, item 4) against a real index on SQLite and PostgreSQL: the
wheels of releases built here are rebuilt from their sdists by ``assay.rebuilds.client`` (a
real pypa/build run), signed by the local Sigstore authority as registered rebuilders, and
verified and recorded by the index."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import tomli_w
from click.testing import CliRunner
from packaging.pylock import Package, PackageSdist, PackageWheel, Pylock
from packaging.utils import canonicalize_name
from packaging.version import Version

from assay.cli import main
from assay.rebuilds.client import RebuildClient, RebuildError, rebuild
from assay.rebuilds.predicate import PREDICATE_TYPE
from tests.rebuilds.conftest import (
    EPOCH,
    ISSUER,
    LocalSigner,
    reproducible_project,
    unreproducible_project,
)
from tests.support.server import AssayServer
from tests.support.sigstore_authority import LocalSigstore
from tests.support.upload import upload

ALICE = "alice@rebuilders.example"
BOB = "bob@ci.other.example"
MALLORY = "mallory@rebuilders.example"


def _publish(server: AssayServer, name: str, files: list[Path], owner: str = "owner", index: str | None = None) -> str:
    token = server.quick_token(owner) if index is None else server.token(owner)
    with server.client(index=index) as http:
        for f in files:
            r = upload(http, f, token)
            assert r.status_code == 200, r.text
    return token


def _rebuilders(server: AssayServer, name: str, *emails: str, index: str | None = None) -> None:
    where = ("--index", index) if index else ()
    for email in emails:
        out = server.cli("rebuilder", "add", name, "--issuer", ISSUER, "--email", email, *where).stdout
        assert f"rebuilder {email.lower()} ({ISSUER}) added" in out


def _rebuild(server: AssayServer, repository_url: str, name: str, version: str, signer: LocalSigner | None):
    client = RebuildClient(repository_url)
    try:
        return rebuild(client, name, version, signer=signer, no_isolation=True)
    finally:
        client.close()


def test_two_rebuilds_are_listed_as_reproduced_by_two(
    rb: AssayServer, authority: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    dists = reproducible_project(tmp_path, unique, "1.0")
    _publish(rb, unique, [dists.sdist, dists.wheel])
    # An e-mail's case is not significant (as for maintainers): kept lower-cased, and the
    # certificate's "alice@…" matches a rebuilder registered as "Alice@…".
    _rebuilders(rb, unique, ALICE.capitalize(), BOB)
    listed = rb.cli("rebuilder", "list", unique).stdout
    assert ALICE in listed
    assert BOB in listed

    page_url = f"/project/{unique}/1.0/{dists.wheel.name}/"
    with rb.client() as http:
        assert "Independent rebuilds" not in http.get(page_url).text  # rendered and cached

    for who in (ALICE, BOB):
        report = _rebuild(rb, rb.simple, unique, "1.0", LocalSigner(authority, who))
        assert report.source_date_epoch == EPOCH
        [outcome] = report.outcomes
        assert outcome.filename == dists.wheel.name
        assert outcome.outcome == "match"
        assert outcome.rebuilt_sha256 == outcome.sha256
        assert outcome.recorded is not None
        assert outcome.recorded["rebuilder"] == {"issuer": ISSUER, "email": who}

    url = f"/integrity/{unique}/1.0/{dists.wheel.name}/rebuilds"
    with rb.client() as http:
        doc = http.get(url).json()
        assert doc["reproduced_by"] == 2
        assert doc["mismatches"] == 0
        assert [r["rebuilder"]["email"] for r in doc["rebuilds"]] == [ALICE, BOB]
        assert all(r["time"].endswith("Z") and r["outcome"] == "match" for r in doc["rebuilds"])
        # The attestations themselves, for clients to check.
        assert all(r["attestation"]["envelope"]["statement"] for r in doc["rebuilds"])
        release = http.get(f"/pypi/{unique}/1.0/json").json()
    wheel = next(u for u in release["urls"] if u["packagetype"] == "bdist_wheel")
    assert [r["rebuilder"]["email"] for r in wheel["rebuilds"]] == [ALICE, BOB]
    assert {r["rebuilt_sha256"] for r in wheel["rebuilds"]} == {wheel["digests"]["sha256"]}
    sdist = next(u for u in release["urls"] if u["packagetype"] == "sdist")
    assert sdist["rebuilds"] == []
    assert [e["action"] for e in rb.audit("--project", unique) if e["action"].startswith("rebuild:")] == [
        "rebuild:match",
        "rebuild:match",
    ]

    # The file page shows them, each as the rebuilder's assertion (issue 15, item 2); the page
    # was cached before the reports came, so this also proves a report moves its serial on.
    with rb.client() as http:
        page = http.get(page_url).text
    assert "Independent rebuilds" in page
    assert "2 of 2 got these exact bytes" in page
    assert ALICE in page
    assert BOB in page
    assert "the rebuilder (signed report)" in page

    # A rebuilder reporting again replaces its own report: still reproduced by two.
    _rebuild(rb, rb.upload_url, unique, "1.0", LocalSigner(authority, ALICE))
    with rb.client() as http:
        assert http.get(url).json()["reproduced_by"] == 2
    # A removed rebuilder's reports no longer count.
    rb.cli("rebuilder", "remove", unique, "--issuer", ISSUER, "--email", BOB)
    with rb.client() as http:
        assert http.get(url).json()["reproduced_by"] == 1


def test_an_unreproducible_wheel_is_recorded_as_a_mismatch_with_both_digests(
    rb: AssayServer, authority: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    dists = unreproducible_project(tmp_path, unique, "2.0")
    _publish(rb, unique, [dists.sdist, dists.wheel])
    _rebuilders(rb, unique, ALICE)
    report = _rebuild(rb, rb.simple, unique, "2.0", LocalSigner(authority, ALICE))
    [outcome] = report.outcomes
    assert outcome.outcome == "mismatch"
    assert outcome.sha256 != outcome.rebuilt_sha256
    with rb.client() as http:
        doc = http.get(f"/integrity/{unique}/2.0/{dists.wheel.name}/rebuilds").json()
        wheel = next(u for u in http.get(f"/pypi/{unique}/json").json()["urls"] if u["packagetype"] == "bdist_wheel")
    assert doc["reproduced_by"] == 0
    assert doc["mismatches"] == 1
    [entry] = doc["rebuilds"]
    assert entry["outcome"] == "mismatch"
    assert entry["sha256"] == outcome.sha256 == wheel["digests"]["sha256"]
    assert entry["rebuilt_sha256"] == outcome.rebuilt_sha256
    assert wheel["rebuilds"][0]["rebuilt_sha256"] == outcome.rebuilt_sha256
    with rb.client() as http:
        page = http.get(f"/project/{unique}/2.0/{dists.wheel.name}/").text
    assert "0 of 1 got these exact bytes" in page
    assert f"got <code class=\"hash\">{outcome.rebuilt_sha256}</code>" in page
    [event] = [e for e in rb.audit("--project", unique) if e["action"] == "rebuild:mismatch"]
    assert event["details"]["rebuilt_sha256"] == outcome.rebuilt_sha256  # type: ignore[index]


def test_an_unregistered_signer_and_bad_statements_are_refused(
    rb: AssayServer, authority: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    dists = reproducible_project(tmp_path, unique, "3.0")
    _publish(rb, unique, [dists.sdist, dists.wheel])
    # No rebuilders at all yet.
    with pytest.raises(RebuildError, match=r"403: .*no registered rebuilders"):
        _rebuild(rb, rb.simple, unique, "3.0", LocalSigner(authority, ALICE))
    _rebuilders(rb, unique, ALICE)
    with pytest.raises(RebuildError, match=rf"403: Rebuild refused: signed by {MALLORY} .* not a registered rebuilder"):
        _rebuild(rb, rb.simple, unique, "3.0", LocalSigner(authority, MALLORY))
    # The registered e-mail, but from another issuer.
    with pytest.raises(RebuildError, match="403"):
        _rebuild(rb, rb.simple, unique, "3.0", LocalSigner(authority, ALICE, issuer="https://other.example"))

    url = f"/integrity/{unique}/3.0/{dists.wheel.name}/rebuilds"
    sha = __import__("hashlib").sha256(dists.wheel.read_bytes()).hexdigest()
    predicate = {"outcome": "match", "buildDefinition": {"resolvedDependencies": []}}
    with rb.client() as http:
        # A sound signature by Alice over a statement for other bytes, or not a rebuild statement.
        other = authority.attest(dists.wheel.name, "0" * 64, _email(ALICE), PREDICATE_TYPE, predicate)
        r = http.post(url, json=other.model_dump(mode="json"))
        assert r.status_code == 400
        assert "not the index's file's" in r.json()["message"]
        wrong = authority.attest(dists.wheel.name, sha, _email(ALICE), "https://slsa.dev/provenance/v1", {})
        r = http.post(url, json=wrong.model_dump(mode="json"))
        assert r.status_code == 400
        assert "predicate type" in r.json()["message"]
        lying = authority.attest(dists.wheel.name, sha, _email(ALICE), PREDICATE_TYPE, predicate)
        r = http.post(url, json=lying.model_dump(mode="json"))
        assert r.status_code == 400
        assert "resolvedDependencies" in r.json()["message"]
        # Signed under another Sigstore: refused by the trust root.
        stranger = LocalSigstore(tmp_path / "stranger")
        foreign = stranger.attest(dists.wheel.name, sha, _email(ALICE), PREDICATE_TYPE, predicate)
        r = http.post(url, json=foreign.model_dump(mode="json"))
        assert r.status_code == 400
        assert "signature verification failed" in r.json()["message"]
        assert http.post(url, content=b"{", headers={"content-type": "application/json"}).status_code == 400
        assert http.post(url, json={"version": 1}).status_code == 400
        r = http.post(url, content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        # The sdist is the source, not a rebuild subject; an unknown file is 404.
        r = http.post(f"/integrity/{unique}/3.0/{dists.sdist.name}/rebuilds", json=lying.model_dump(mode="json"))
        assert r.status_code == 400
        assert "not a wheel" in r.json()["message"]
        assert http.get(f"/integrity/{unique}/3.0/nope-3.0-py3-none-any.whl/rebuilds").status_code == 404
        assert http.get(f"/integrity/{unique}/9.9/{dists.wheel.name}/rebuilds").status_code == 404
        # Nothing of the refusals was recorded.
        assert http.get(url).json() == {
            "filename": dists.wheel.name,
            "sha256": sha,
            "reproduced_by": 0,
            "mismatches": 0,
            "rebuilds": [],
        }


def _email(address: str):  # type: ignore[no-untyped-def]
    from tests.support.sigstore_authority import CertIdentity

    return CertIdentity.email(address, ISSUER)


def test_a_stage_needing_two_rebuilds_is_approved_only_after_two(
    rb: AssayServer, authority: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    rb.quick_user("olive")
    rb.cli("project", "create", unique, "--owner", "olive")
    rb.cli("project", "set", unique, "--releases", "staged")
    assert "rebuilds required 2" in rb.cli("project", "set", unique, "--rebuilds", "2").stdout
    _rebuilders(rb, unique, ALICE, BOB)
    uri = rb.cli("user", "totp", "enable", "olive").stdout.strip().splitlines()[0]
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    token = rb.quick_token("olive")
    dists = reproducible_project(tmp_path, unique, "4.0")
    with rb.client() as http:
        for f in (dists.sdist, dists.wheel):
            r = upload(http, f, token)
            assert r.status_code == 200, r.text
            preview = r.headers["assay-stage-preview"]
        # Staged files are not in the live Integrity API.
        assert http.get(f"/integrity/{unique}/4.0/{dists.wheel.name}/rebuilds").status_code == 404

    def approve() -> httpx.Response:
        with rb.client() as http:
            return http.post(f"/_/releases/{unique}/4.0/approve", json={"totp": totp.now()}, auth=("__token__", token))

    # Through the stage's preview index: its sdist, its wheel, its /rebuilds.
    report = _rebuild(rb, preview, unique, "4.0", LocalSigner(authority, ALICE))
    assert [o.outcome for o in report.outcomes] == ["match"]
    r = approve()
    assert r.status_code == 409, r.text
    assert "needs 2 independent rebuilds" in r.json()["message"]
    assert f"{dists.wheel.name}: reproduced by 1 of the 2" in r.json()["message"]
    # The same rebuilder twice is still one.
    _rebuild(rb, preview, unique, "4.0", LocalSigner(authority, ALICE))
    assert approve().status_code == 409
    _rebuild(rb, preview, unique, "4.0", LocalSigner(authority, BOB))
    r = approve()
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    # Live now, with the reports it had as a staged file.
    with rb.client() as http:
        doc = http.get(f"/integrity/{unique}/4.0/{dists.wheel.name}/rebuilds").json()
        assert doc["reproduced_by"] == 2
        # The stage is gone: so is its preview's endpoint.
        stage_path = preview.split("/stage/", 1)[1].split("/", 1)[0]
        gone = http.get(f"/stage/{stage_path}/integrity/{unique}/4.0/{dists.wheel.name}/rebuilds")
        assert gone.status_code == 404


def test_a_named_index_has_its_own_rebuilds(
    rb: AssayServer, authority: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    team = f"t{unique[-6:]}"
    rb.cli("index", "create", team)
    rb.cli("user", "create", "owner", check=False)
    dists = reproducible_project(tmp_path, unique, "5.0")
    token = rb.admin("token", "create", "--user", "owner", "--index", team).stdout.strip()
    with rb.client(index=team) as http:
        for f in (dists.sdist, dists.wheel):
            assert upload(http, f, token).status_code == 200
    _rebuilders(rb, unique, ALICE, index=team)
    report = _rebuild(rb, f"{rb.url}/{team}/simple/", unique, "5.0", LocalSigner(authority, ALICE))
    assert [o.outcome for o in report.outcomes] == ["match"]
    with rb.client() as http:
        assert http.get(f"/{team}/integrity/{unique}/5.0/{dists.wheel.name}/rebuilds").json()["reproduced_by"] == 1
        assert http.get(f"/integrity/{unique}/5.0/{dists.wheel.name}/rebuilds").status_code == 404
    # A private index: its reports are read, and submitted, with a read token of the index.
    private = f"p{unique[-6:]}"
    rb.cli("index", "create", private, "--private")
    private_token = rb.admin("token", "create", "--user", "owner", "--index", private).stdout.strip()
    with rb.client(index=private) as http:
        assert upload(http, dists.wheel, private_token).status_code == 200
        url = f"/integrity/{unique}/5.0/{dists.wheel.name}/rebuilds"
        assert http.get(url).status_code == 401
        assert http.post(url, json={}).status_code == 401
        assert http.get(url, auth=("__token__", private_token)).json()["reproduced_by"] == 0


def _verify(tmp: Path, authority: LocalSigstore, lock: Path, pins: dict[str, object]) -> dict[str, Any]:
    """``assay verify LOCK`` in this process, with ``pins`` as .provenance.toml."""
    pins_path = tmp / ".provenance.toml"
    pins_path.write_text(tomli_w.dumps({"packages": pins}))
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("PIP_", "UV_"))}
    env.update({"XDG_CACHE_HOME": str(tmp / "xdg-cache"), "XDG_STATE_HOME": str(tmp / "xdg-state")})
    options = ["--pins", str(pins_path), "--cache-dir", str(tmp / "cache")]
    options += ["--trust-root", str(authority.trusted_root_path), "--format", "json"]
    result = CliRunner().invoke(main, ["verify", *options, str(lock)], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    doc: dict[str, Any] = json.loads(result.stdout) if result.exit_code != 2 else {"error": result.output}
    doc["exit_code"] = result.exit_code
    return doc


def test_verify_pins_can_require_rebuilds(
    rb: AssayServer, authority: LocalSigstore, unique: str, tmp_path: Path
) -> None:
    """``rebuilt-by = [...]`` (and ``rebuilds = K``) in .provenance.toml: assay verify checks
    each of the index's reports itself and counts the pinned rebuilders that reproduced the
    wheel; the sdist is the source, not rebuilt."""
    dists = reproducible_project(tmp_path, unique, "6.0")
    _publish(rb, unique, [dists.sdist, dists.wheel])
    _rebuilders(rb, unique, ALICE, BOB)
    _rebuild(rb, rb.simple, unique, "6.0", LocalSigner(authority, ALICE))
    with rb.client() as http:
        urls = {u["filename"]: u for u in http.get(f"/pypi/{unique}/6.0/json").json()["urls"]}
    wheel, sdist = urls[dists.wheel.name], urls[dists.sdist.name]
    lock = tmp_path / "pylock.toml"
    package = Package(
        name=canonicalize_name(unique),
        version=Version("6.0"),
        index=rb.simple,
        wheels=[PackageWheel(name=wheel["filename"], url=wheel["url"], hashes={"sha256": wheel["digests"]["sha256"]})],
        sdist=PackageSdist(name=sdist["filename"], url=sdist["url"], hashes={"sha256": sdist["digests"]["sha256"]}),
    )
    pylock = Pylock(lock_version=Version("1.0"), created_by="tests", packages=[package])
    lock.write_text(tomli_w.dumps(pylock.to_dict()))
    alice = {"issuer": ISSUER, "email": ALICE}
    bob = {"issuer": ISSUER, "email": BOB}

    def verdicts(doc: dict[str, Any]) -> dict[str, str]:
        return {f["filename"]: f["verdict"] for f in doc["files"]}

    both = _verify(tmp_path, authority, lock, {unique: {"rebuilt-by": [alice, bob]}})
    assert both["exit_code"] == 1
    assert verdicts(both) == {wheel["filename"]: "not-reproduced", sdist["filename"]: "unattested"}
    reason = next(f["reason"] for f in both["files"] if f["filename"] == wheel["filename"])
    assert "reproduced by 1 of the 2 required" in reason

    one = _verify(tmp_path, authority, lock, {unique: {"rebuilt-by": [alice, bob], "rebuilds": 1}})
    assert one["exit_code"] == 0
    [entry] = [f for f in one["files"] if f["filename"] == wheel["filename"]]
    assert entry["verdict"] == "unattested"
    assert entry["reproduced_by"] == [f"{ALICE} ({ISSUER})"]
    assert f"reproduced by {ALICE}" in entry["reason"]

    # Bob did not rebuild it; Alice's report does not count for a pin naming Bob alone.
    only_bob = _verify(tmp_path, authority, lock, {unique: {"rebuilt-by": [bob]}})
    assert verdicts(only_bob)[wheel["filename"]] == "not-reproduced"
    # A bad pin is a usage error that says what is wrong.
    bad = _verify(tmp_path, authority, lock, {unique: {"rebuilt-by": [alice], "rebuilds": 3}})
    assert bad["exit_code"] == 2
    assert "rebuilds must be between 1 and 1" in bad["error"]
