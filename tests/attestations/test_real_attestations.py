"""PEP 740 on real attestations (shared/fixtures/pep740, verified under sigstore's production
root): accepted through the matching publisher, served as provenance that pypi-attestations'
own CLI verifies, and rejected, with nothing stored, whenever anything does not match."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import rfc8785
import sqlalchemy as sa
from uv import find_uv_bin

from assay.log import note, proof
from assay.storage.models import LogEntry
from tests.attestations.conftest import (
    AUDIENCE,
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    attestation_json,
    fixture_copy,
    mint,
    served_provenance,
)
from tests.support.dists import build_project
from tests.support.oidc_provider import OIDCProvider, github_actions_env, github_claims, gitlab_claims
from tests.support.server import AssayServer, client_environ
from tests.support.tls import TLS, tls_server
from tests.support.upload import upload

SDIST = "pypi_attestations-0.0.19.tar.gz"
REPO = "trailofbits/pypi-attestations"


def pypi_attestations_verify(
    tmp: Path, provenance: dict, dist: Path, repository: str
) -> subprocess.CompletedProcess[str]:  # type: ignore[type-arg]
    """The existing tool's offline check of a served provenance object."""
    prov_file = tmp / (dist.name + ".served.provenance")
    prov_file.write_text(json.dumps(provenance))
    # A cache dir of its own, so sigstore reads the production root embedded in its wheel.
    env = client_environ({"XDG_CACHE_HOME": str(tmp / "cache")})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pypi_attestations",
            "verify",
            "pypi",
            "--offline",
            "--provenance-file",
            str(prov_file),
            "--repository",
            repository,
            str(dist),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _register(server: AssayServer, *args: str) -> None:
    server.admin("publisher", "add", *args, "--owner", "owner")


def _nothing_stored(server: AssayServer, project: str, filename: str) -> None:
    """No row (the project's pages do not list the file) and no blob of that name."""
    with server.client() as http:
        page = http.get(f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        if page.status_code == 200:
            assert filename not in [f["filename"] for f in page.json()["files"]]
        else:
            assert page.status_code == 404
    leftovers = [p for p in (server.data_dir / "files").rglob("*") if p.is_file() and filename in p.name]
    assert leftovers == []


@pytest.fixture(scope="module")
def published_sdist(prod_index: AssayServer, idp: OIDCProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pypi_attestations-0.0.19.tar.gz published by `assay publish` from a GitHub Actions job of
    trailofbits/pypi-attestations (the stand-in CI), with its publish and SLSA attestations."""
    tmp = tmp_path_factory.mktemp("published")
    dist, *_ = fixture_copy(tmp, SDIST, SDIST + ".publish.attestation", SDIST + ".slsa.attestation")
    _register(prod_index, "github", "--project", "pypi-attestations", "--repository", REPO, "--workflow", "release.yml")
    idp.github_job = {**github_claims(REPO, "release.yml"), "iss": GITHUB_ISSUER}
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(prod_index.ca_file)})
    result = subprocess.run(
        [sys.executable, "-m", "assay", "publish", "--repository-url", prod_index.upload_url, str(dist)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "with 2 attestation(s)" in result.stdout
    # Issue 13: the receipt is saved, and the output does not claim its signature was checked.
    assert f"saved the log receipt {SDIST}.tlog-proof" in result.stdout
    assert "signature NOT verified" in result.stdout
    return dist


def test_served_provenance_verifies_with_pypi_attestations(
    prod_index: AssayServer, published_sdist: Path, tmp_path: Path
) -> None:
    url, provenance = served_provenance(prod_index, "pypi-attestations", SDIST)
    assert url == f"{prod_index.url}/integrity/pypi-attestations/0.0.19/{SDIST}/provenance"
    (bundle,) = provenance["attestation_bundles"]
    # The publisher block is the index's record of the publisher, not what the client sent.
    assert bundle["publisher"] == {"kind": "GitHub", "repository": REPO, "workflow": "release.yml", "environment": None}
    assert len(bundle["attestations"]) == 2
    result = pypi_attestations_verify(tmp_path, provenance, published_sdist, f"https://github.com/{REPO}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr
    # And the same check with the wrong repository fails: the tool really checks.
    wrong = pypi_attestations_verify(tmp_path, provenance, published_sdist, "https://github.com/evil/repo")
    assert wrong.returncode != 0


def _log_entries(server: AssayServer, filename: str) -> list[dict]:  # type: ignore[type-arg]
    """The transparency log's entries about a file (issue 13), from the index's database."""
    with server.db().read() as session:
        rows = session.execute(sa.select(LogEntry.data).where(LogEntry.filename == filename).order_by(LogEntry.seq))
        return [json.loads(data) for data in rows.scalars()]


def test_the_log_entry_names_the_publisher_and_the_provenance(prod_index: AssayServer, published_sdist: Path) -> None:
    # Issue 13: a Trusted Publishing upload's entry carries the publisher's identity (not a
    # token id) and the digest of the provenance the Integrity API serves (RFC 8785 form).
    _, provenance = served_provenance(prod_index, "pypi-attestations", SDIST)
    (entry,) = _log_entries(prod_index, SDIST)
    assert entry["kind"] == "upload"
    assert entry["publisher"] == {"kind": "GitHub", "repository": REPO, "workflow": "release.yml", "environment": None}
    assert "token" not in entry
    assert entry["provenance_sha256"] == hashlib.sha256(rfc8785.dumps(provenance)).hexdigest()
    assert entry["sha256"] == hashlib.sha256(published_sdist.read_bytes()).hexdigest()


def test_assay_publish_saved_the_receipt_the_integrity_api_links(
    prod_index: AssayServer, published_sdist: Path
) -> None:
    # Issue 13 item 3: `assay publish` saved <dist>.tlog-proof beside the file; it proves the
    # file's upload entry (with the served provenance's digest) under a checkpoint signed by
    # the key `assay admin log key` prints; the Integrity API names the same receipt in a Link
    # header, leaving the PEP 740 provenance object as it is.
    saved = published_sdist.with_name(SDIST + proof.SUFFIX).read_bytes()
    receipt = proof.TlogProof.parse(saved)
    assert receipt.extra is not None
    # This server has no --base-url: its origin is its listening address (docs/log-format.md).
    origin = receipt.checkpoint.split(b"\n", 1)[0].decode()
    vkey = prod_index.admin("log", "key", "--base-url", f"https://{origin}").stdout.strip()
    receipt.verify(receipt.extra, [note.Ed25519Verifier.from_verifier_key(vkey)], origin)
    url, provenance = served_provenance(prod_index, "pypi-attestations", SDIST)
    entry = json.loads(receipt.extra)
    assert entry["filename"] == SDIST
    assert entry["sha256"] == hashlib.sha256(published_sdist.read_bytes()).hexdigest()
    assert entry["provenance_sha256"] == hashlib.sha256(rfc8785.dumps(provenance)).hexdigest()
    assert set(provenance) == {"version", "attestation_bundles"}  # PEP 740's object, nothing added
    with prod_index.client() as http:
        answer = http.get(url)
        link = answer.links["assay-log-receipt"]["url"]
        assert link.endswith(f"/{SDIST}.tlog-proof")
        assert "assay-rebuilds" not in answer.links  # rebuilds are of wheels
        served = http.get(link)
    assert served.status_code == 200, served.text
    assert proof.TlogProof.parse(served.content).extra == receipt.extra


def test_provenance_is_linked_from_every_read_api(prod_index: AssayServer, published_sdist: Path) -> None:
    expected = f"{prod_index.url}/integrity/pypi-attestations/0.0.19/{SDIST}/provenance"
    with prod_index.client() as http:
        html = http.get("/simple/pypi-attestations/").text
        assert f'data-provenance="{expected}"' in html
        meta = http.get("/simple/pypi-attestations/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        assert meta["meta"]["api-version"] >= "1.3"  # PEP 740 is API version 1.3
        api = http.get("/pypi/pypi-attestations/json").json()
        assert api["urls"][0]["provenance"] == expected
        # Integrity API status codes, as PyPI's.
        assert http.get(expected, headers={"Accept": "text/html"}).status_code == 406
        assert http.get(expected, headers={"Accept": "application/json"}).status_code == 200
        # RFC 9110 12.5.1 (issue 11): the most specific range decides, so a q=0 for the type
        # refuses it whatever */* says.
        refused = http.get(expected, headers={"Accept": "application/vnd.pypi.integrity.v1+json;q=0, */*"})
        assert refused.status_code == 406
        first = http.get(expected)
        # Issue 16: keyed with its project, so a CDN in front drops it on the project's change.
        assert set(first.headers["surrogate-key"].split()) == {"project:default/pypi-attestations", "index:default"}
        assert first.headers["cache-control"] == "public, no-cache"
        again = http.get(expected, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        missing = http.get("/integrity/pypi-attestations/0.0.19/pypi_attestations-0.0.19-py3-none-any.whl/provenance")
        assert missing.status_code == 404
        assert "No provenance available" in missing.json()["message"]


def test_a_weak_etag_revalidates_the_simple_page_and_the_provenance_alike(
    prod_index: AssayServer, published_sdist: Path
) -> None:
    """RFC 9110 13.1.2: If-None-Match compares weakly, on every read route (issue 11: the
    Integrity API compared strongly and answered a cache's W/"<etag>" with the whole body)."""
    provenance = f"/integrity/pypi-attestations/0.0.19/{SDIST}/provenance"
    with prod_index.client() as http:
        for path in ("/simple/pypi-attestations/", provenance):
            etag = http.get(path).headers["etag"]
            assert not etag.startswith("W/")
            for header in ("W/" + etag, f'"other", W/{etag}', "*"):
                again = http.get(path, headers={"If-None-Match": header})
                assert (path, header, again.status_code, again.content) == (path, header, 304, b"")
            assert http.get(path, headers={"If-None-Match": 'W/"other"'}).status_code == 200


def test_uv_publish_uploads_the_attestations_beside_the_file(
    prod_index: AssayServer, idp: OIDCProvider, tmp_path: Path
) -> None:
    # The GitLab fixture, through a GitLab publisher on gitlab.com, published with uv.
    name = "gitlab_oidc_project-0.0.3.tar.gz"
    dist, _ = fixture_copy(tmp_path, name, name + ".publish.attestation")
    _register(
        prod_index,
        "gitlab",
        "--project",
        "gitlab-oidc-project",
        "--repository",
        "facutuesca/gitlab-oidc-project",
        "--workflow",
        ".gitlab-ci.yml",
    )
    token = idp.token(AUDIENCE, gitlab_claims("facutuesca/gitlab-oidc-project", ".gitlab-ci.yml"), iss=GITLAB_ISSUER)
    from tests.support.oidc_provider import gitlab_ci_env

    env = client_environ({**gitlab_ci_env(AUDIENCE, token), "SSL_CERT_FILE": str(prod_index.ca_file)})
    result = subprocess.run(
        [
            find_uv_bin(),
            "publish",
            "--publish-url",
            prod_index.upload_url,
            "--trusted-publishing",
            "always",
            str(dist),
            str(dist) + ".publish.attestation",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, provenance = served_provenance(prod_index, "gitlab-oidc-project", name)
    assert provenance["attestation_bundles"][0]["publisher"]["kind"] == "GitLab"
    verified = pypi_attestations_verify(tmp_path, provenance, dist, "https://gitlab.com/facutuesca/gitlab-oidc-project")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _tp_upload(
    server: AssayServer, idp: OIDCProvider, repo: str, dist: Path, attestations: list[dict]
) -> httpx.Response:  # type: ignore[type-arg]
    token = mint(server, idp.token(AUDIENCE, github_claims(repo, "release.yml"), iss=GITHUB_ISSUER))
    with server.client() as http:
        return upload(http, dist, token, attestations=json.dumps(attestations))


def _flip(b64: str, index: int = 40) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


REJECTIONS = [
    "staging under production root",
    "for another file",
    "publisher with another repository",
    "modified envelope signature",
    "modified certificate",
    "modified statement",
    "empty array",
    "duplicate predicate",
    "not JSON",
    "three attestations",
]


@pytest.fixture(scope="module")
def reject_index(tmp_path_factory: pytest.TempPathFactory, tls: TLS, idp: OIDCProvider) -> Iterator[AssayServer]:
    """An index on which nothing is ever accepted: every upload below must be refused."""
    server = tls_server(tmp_path_factory.mktemp("reject-index"), tls).start()
    server.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
    server.ensure_user("owner")
    for project in ("pypi-attestations", "rfc8785"):
        server.admin("project", "create", project, "--owner", "owner")
    for project, repo in (
        ("pypi-attestations", REPO),
        ("pypi-attestations", "acme/other-repository"),
        ("rfc8785", REPO),
    ):
        server.admin(
            "publisher",
            "add",
            "github",
            "--project",
            project,
            "--repository",
            repo,
            "--workflow",
            "release.yml",
            "--owner",
            "owner",
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("case", REJECTIONS)
def test_bad_attestations_are_rejected_and_nothing_is_stored(
    reject_index: AssayServer, idp: OIDCProvider, tmp_path: Path, case: str
) -> None:
    publish = attestation_json(SDIST + ".publish.attestation")
    slsa = attestation_json(SDIST + ".slsa.attestation")
    dist = fixture_copy(tmp_path, SDIST)[0]
    repository = REPO
    attestations: list[dict] | str = [publish]  # type: ignore[type-arg]
    if case == "staging under production root":
        dist = fixture_copy(tmp_path, "rfc8785-0.1.2-py3-none-any.whl")[0]
        attestations = [attestation_json("rfc8785-0.1.2-py3-none-any.whl.publish.attestation")]
    elif case == "for another file":
        # A file of the same project and publisher, but not the one attested.
        dist = build_project(tmp_path, "pypi-attestations", "0.0.20").sdist
    elif case == "publisher with another repository":
        repository = "acme/other-repository"
    elif case == "modified envelope signature":
        publish["envelope"]["signature"] = _flip(publish["envelope"]["signature"])
    elif case == "modified certificate":
        publish["verification_material"]["certificate"] = _flip(publish["verification_material"]["certificate"], 300)
    elif case == "modified statement":
        publish["envelope"]["statement"] = _flip(publish["envelope"]["statement"], 10)
    elif case == "empty array":
        attestations = []
    elif case == "duplicate predicate":
        attestations = [publish, publish]
    elif case == "not JSON":
        attestations = "{not json"
    elif case == "three attestations":
        attestations = [publish, slsa, publish]
    token = mint(reject_index, idp.token(AUDIENCE, github_claims(repository, "release.yml"), iss=GITHUB_ISSUER))
    body = attestations if isinstance(attestations, str) else json.dumps(attestations)
    with reject_index.client() as http:
        response = upload(http, dist, token, attestations=body)
        assert response.status_code == 400, response.text
        assert response.text.startswith("Invalid attestations supplied during upload: ")
        for project in ("pypi-attestations", "rfc8785"):
            page = http.get(f"/simple/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
            assert page.json()["files"] == []
    stored = [p for p in (reject_index.data_dir / "files").rglob("*") if p.is_file()]
    assert stored == []  # no blob, and no staging leftover


def test_attestations_on_an_api_token_upload_are_refused_by_default(prod_index: AssayServer, tmp_path: Path) -> None:
    token = prod_index.token("owner")
    dist = build_project(tmp_path, "token-upload", "1.0").wheel
    with prod_index.client() as http:
        response = upload(
            http, dist, token, attestations=json.dumps([attestation_json(SDIST + ".publish.attestation")])
        )
    assert response.status_code == 400
    assert "only supported when using Trusted Publishing" in response.text
    _nothing_stored(prod_index, "token-upload", dist.name)


def test_backfill_import_of_mirrored_provenance(prod_index: AssayServer, tmp_path: Path) -> None:
    # The attested file arrives without provenance (an API-token upload by a mirror job), then
    # its provenance is imported; the import is verified exactly like an upload.
    name = "pypi_attestation_models-0.0.4a2.tar.gz"
    dist, attestation = fixture_copy(tmp_path, name, name + ".attestation")
    token = prod_index.token("owner")
    with prod_index.client() as http:
        assert upload(http, dist, token).status_code == 200
        assert http.get(f"/integrity/pypi-attestation-models/0.0.4a2/{name}/provenance").status_code == 404
    provenance = {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {
                    "kind": "GitHub",
                    "repository": "trailofbits/pypi-attestation-models",
                    "workflow": "release.yml",
                    "environment": None,
                },
                "attestations": [json.loads(attestation.read_text())],
            }
        ],
    }
    wrong = tmp_path / (name + ".provenance")
    bad_publisher = json.loads(json.dumps(provenance))
    bad_publisher["attestation_bundles"][0]["publisher"]["repository"] = "acme/impostor"
    wrong.write_text(json.dumps(bad_publisher))
    refused = prod_index.admin("provenance", "import", str(wrong), check=False)
    assert refused.returncode == 1
    assert "does not match" in refused.stderr

    good = tmp_path / "good" / (name + ".provenance")
    good.parent.mkdir()
    good.write_text(json.dumps(provenance))
    out = prod_index.admin("provenance", "import", str(good)).stdout
    assert "1 attestation(s)" in out
    _, served = served_provenance(prod_index, "pypi-attestation-models", name)
    assert served["attestation_bundles"][0]["publisher"]["repository"] == "trailofbits/pypi-attestation-models"
    assert '"action": "provenance:import"' in prod_index.admin("audit", "--json").stdout
    # Issue 13: the upload and then the import are in the log, the import with the digest of
    # the provenance now served.
    _, served_now = served_provenance(prod_index, "pypi-attestation-models", name)
    uploaded, imported = _log_entries(prod_index, name)
    assert (uploaded["kind"], uploaded["provenance_sha256"]) == ("upload", None)
    assert imported["kind"] == "provenance-import"
    assert imported["provenance_sha256"] == hashlib.sha256(rfc8785.dumps(served_now)).hexdigest()

    # The same provenance offered for another file of the index is refused (subject mismatch).
    other = prod_index.admin("provenance", "import", str(good), "--file", SDIST, check=False)
    assert other.returncode == 1


def test_uv_publish_of_the_real_sdist_with_publish_and_slsa_attestations(
    tmp_path: Path, tls: TLS, idp: OIDCProvider
) -> None:
    # The same file as published_sdist, this time with uv, on an index of its own (a filename
    # is accepted once per index).
    server = tls_server(tmp_path / "uv-index", tls).start()
    try:
        server.admin("issuer", "add", "--issuer", GITHUB_ISSUER, "--jwks", str(idp.jwks_path))
        server.ensure_user("owner")
        _register(server, "github", "--project", "pypi-attestations", "--repository", REPO, "--workflow", "release.yml")
        files = fixture_copy(tmp_path, SDIST, SDIST + ".publish.attestation", SDIST + ".slsa.attestation")
        idp.github_job = {**github_claims(REPO, "release.yml"), "iss": GITHUB_ISSUER}
        env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(server.ca_file)})
        result = subprocess.run(
            [
                find_uv_bin(),
                "publish",
                "--publish-url",
                server.upload_url,
                "--trusted-publishing",
                "always",
                *map(str, files),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        _, provenance = served_provenance(server, "pypi-attestations", SDIST)
        assert len(provenance["attestation_bundles"][0]["attestations"]) == 2
        verified = pypi_attestations_verify(tmp_path, provenance, files[0], f"https://github.com/{REPO}")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        server.stop()
