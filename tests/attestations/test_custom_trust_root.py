"""Fresh attestations from the local Sigstore authority, on an index configured with its trust
root: the path an organisation running its own Sigstore takes, for every publisher kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from uv import find_uv_bin

from assay.attestations.trust import load_trust_root
from assay.attestations.verify import parse_attestation, verify_attestation
from assay.publishers import from_publisher
from tests.attestations.conftest import AUDIENCE, GITHUB_ISSUER, mint, served_provenance
from tests.support.dists import build_project, sha256
from tests.support.oidc_provider import (
    OIDCProvider,
    buildkite_claims,
    circleci_claims,
    forgejo_claims,
    github_actions_env,
    github_claims,
    gitlab_claims,
    google_claims,
)
from tests.support.server import AssayServer, client_environ
from tests.support.sigstore_authority import CertIdentity, LocalSigstore
from tests.support.upload import upload


def test_uv_publish_with_fresh_attestations(
    local_index: AssayServer, local_sigstore: LocalSigstore, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    local_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--owner",
        "owner",
        "--repository",
        "acme/fresh",
        "--workflow",
        "release.yml",
    )
    built = build_project(tmp_path, unique, "1.0")
    identity = CertIdentity.github("acme/fresh", "release.yml")
    attestation = local_sigstore.attest_file(built.wheel, identity)
    beside = built.wheel.with_name(built.wheel.name + ".publish.attestation")
    beside.write_text(attestation.model_dump_json())
    idp.github_job = {**github_claims("acme/fresh", "release.yml"), "iss": GITHUB_ISSUER}
    env = client_environ({**github_actions_env(idp), "SSL_CERT_FILE": str(local_index.ca_file)})
    result = subprocess.run(
        [
            find_uv_bin(),
            "publish",
            "--publish-url",
            local_index.upload_url,
            "--trusted-publishing",
            "always",
            str(built.wheel),
            str(beside),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    _, provenance = served_provenance(local_index, unique, built.wheel.name)
    (bundle,) = provenance["attestation_bundles"]
    # The served object verifies under the custom root, for the published file.
    trust = load_trust_root(local_sigstore.trusted_root_path)
    for doc in bundle["attestations"]:
        verify_attestation(
            parse_attestation(doc),
            filename=built.wheel.name,
            sha256=sha256(built.wheel),
            policy=from_publisher(bundle["publisher"]).policy(),
            trust=trust,
        )


def _publish_attested(
    server: AssayServer,
    idp: OIDCProvider,
    dist: Path,
    token_claims: dict,
    attestation_json: str,  # type: ignore[type-arg]
) -> tuple[int, str]:
    token = mint(server, idp.token(AUDIENCE, token_claims))
    with server.client() as http:
        response = upload(http, dist, token, attestations=f"[{attestation_json}]")
    return response.status_code, response.text


@pytest.mark.parametrize(
    "kind", ["github-enterprise", "gitlab-self-managed", "forgejo", "google", "circleci", "oidc", "buildkite"]
)
def test_every_publisher_kind_attests_under_a_custom_root(
    local_index: AssayServer, local_sigstore: LocalSigstore, idp: OIDCProvider, kind: str, tmp_path: Path
) -> None:
    project = f"kind-{kind}"
    built = build_project(tmp_path, project, "1.0")
    issuer = idp.issuer
    if kind == "github-enterprise":
        args = ["--repository", "acme/ghes", "--workflow", "release.yml", "--instance", "https://ghe.example"]
        claims = github_claims("acme/ghes", "release.yml")
        good = CertIdentity.github("acme/ghes", "release.yml", host="ghe.example", issuer=issuer)
        bad = CertIdentity.github("acme/ghes", "other.yml", host="ghe.example", issuer=issuer)
    elif kind == "gitlab-self-managed":
        args = ["--repository", "grp/app", "--workflow", ".gitlab-ci.yml"]
        claims = gitlab_claims("grp/app", ".gitlab-ci.yml", instance_host=idp.authority)
        # A self-managed GitLab is its own issuer; its certificates name the instance.
        good = CertIdentity.gitlab("grp/app", ".gitlab-ci.yml", instance=issuer)
        bad = CertIdentity.gitlab("grp/other", ".gitlab-ci.yml", instance=issuer)
    elif kind == "forgejo":
        args = ["--repository", "acme/fj", "--workflow", "release.yml", "--instance", "https://codeberg.example"]
        claims = forgejo_claims("acme/fj", "release.yml")
        good = CertIdentity(
            san="https://codeberg.example/acme/fj/.forgejo/workflows/release.yml@refs/tags/v1.0.0",
            issuer=issuer,
            extensions={
                "source_repository_uri": "https://codeberg.example/acme/fj",
                "source_repository_ref": "refs/tags/v1.0.0",
                "source_repository_digest": "0" * 40,
                "build_config_uri": "https://codeberg.example/acme/fj/.forgejo/workflows/release.yml@refs/tags/v1.0.0",
            },
        )
        bad = CertIdentity.github("acme/fj", "release.yml", host="codeberg.example", issuer="https://other.example")
    elif kind == "google":
        args = ["--email", "ci@acme.iam.example"]
        claims = google_claims("ci@acme.iam.example")
        # Google's issuer in certificates is accounts.google.com, whatever the token stand-in is.
        good = CertIdentity.google("ci@acme.iam.example")
        bad = CertIdentity.google("intruder@acme.iam.example")
    elif kind == "circleci":
        args = ["--project-id", "proj-1", "--pipeline-definition-id", "pipe-1"]
        claims = circleci_claims("proj-1", "pipe-1")
        good = CertIdentity.circleci("proj-1", "pipe-1")
        bad = CertIdentity.circleci("proj-1", "pipe-2")
    elif kind == "buildkite":
        # The local provider stands in for https://agent.buildkite.com (passed as --issuer, as
        # for a self-hosted forge); Fulcio's Buildkite certificates carry the issuer and the SAN
        # https://buildkite.com/ORG/PIPELINE (assay.publishers.buildkite).
        args = ["--organization", "acme", "--pipeline", "release"]
        claims = buildkite_claims("acme", "release")
        good = CertIdentity(san="https://buildkite.com/acme/release", issuer=issuer, extensions={})
        bad = CertIdentity(san="https://buildkite.com/acme/other", issuer=issuer, extensions={})
    else:
        args = ["--claim", "sub=deploy:acme/*", "--subject", "https://ci.acme.example/pipelines/*"]
        claims = {"sub": "deploy:acme/app"}
        good = CertIdentity(san="https://ci.acme.example/pipelines/release", issuer=issuer, extensions={})
        bad = CertIdentity(san="https://ci.other.example/pipelines/release", issuer=issuer, extensions={})
    kind_name = {"gitlab-self-managed": "gitlab"}.get(kind, kind)
    local_index.admin(
        "publisher", "add", kind_name, "--project", project, "--issuer", issuer, "--owner", "owner", *args
    )

    wrong = local_sigstore.attest_file(built.sdist, bad).model_dump_json()
    status, text = _publish_attested(local_index, idp, built.sdist, claims, wrong)
    assert status == 400, text
    assert "Invalid attestations" in text

    right = local_sigstore.attest_file(built.sdist, good).model_dump_json()
    status, text = _publish_attested(local_index, idp, built.sdist, claims, right)
    assert status == 200, text
    _, provenance = served_provenance(local_index, project, built.sdist.name)
    block = provenance["attestation_bundles"][0]["publisher"]
    assert from_publisher(block).policy() is not None
    if kind == "buildkite":
        assert block == {"kind": "Buildkite", "issuer": issuer, "organization": "acme", "pipeline": "release"}


def test_a_signed_statement_nested_too_deeply_is_refused_cleanly(
    local_index: AssayServer, local_sigstore: LocalSigstore, idp: OIDCProvider, tmp_path: Path
) -> None:
    # Issue 10, item 3: the statement is signed, but by anyone with a Sigstore identity; its
    # json.loads recursed past the interpreter's limit (a 500 with a RecursionError).
    project = "deep-statement"
    built = build_project(tmp_path, project, "1.0")
    args = ["--claim", "sub=deploy:acme/*", "--subject", "https://ci.acme.example/pipelines/*"]
    local_index.admin(
        "publisher", "add", "oidc", "--project", project, "--issuer", idp.issuer, "--owner", "owner", *args
    )
    identity = CertIdentity(san="https://ci.acme.example/pipelines/release", issuer=idp.issuer, extensions={})
    deep: list[object] = []
    for _ in range(3000):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)  # for json.dumps of the statement, in this process only
    try:
        attestation = local_sigstore.attest_file(built.sdist, identity, predicate={"deep": deep}).model_dump_json()
    finally:
        sys.setrecursionlimit(limit)
    status, text = _publish_attested(local_index, idp, built.sdist, {"sub": "deploy:acme/app"}, attestation)
    assert status == 400, text
    assert "the signed statement is not an in-toto statement: JSON nested more than 64 levels deep" in text
    log = "\n".join(local_index.log)
    assert "Traceback" not in log
    assert "RecursionError" not in log

def test_oidc_subject_pattern_star_stays_within_one_segment(
    local_index: AssayServer, local_sigstore: LocalSigstore, idp: OIDCProvider, tmp_path: Path
) -> None:
    # Issue 10, item 5: the subject pattern's * no longer crosses / (fnmatch's did), so a
    # certificate for a deeper path under the pinned one is refused; ** is how to allow that.
    project = "subject-segments"
    built = build_project(tmp_path, project, "1.0")
    args = ["--claim", "sub=deploy:segments/app", "--subject", "https://ci.acme.example/pipelines/*"]
    local_index.admin(
        "publisher", "add", "oidc", "--project", project, "--issuer", idp.issuer, "--owner", "owner", *args
    )
    claims = {"sub": "deploy:segments/app"}
    deeper = CertIdentity(san="https://ci.acme.example/pipelines/evil/release", issuer=idp.issuer, extensions={})
    status, text = _publish_attested(
        local_index, idp, built.sdist, claims, local_sigstore.attest_file(built.sdist, deeper).model_dump_json()
    )
    assert status == 400, text
    assert "does not match" in text, text
    one = CertIdentity(san="https://ci.acme.example/pipelines/release", issuer=idp.issuer, extensions={})
    status, text = _publish_attested(
        local_index, idp, built.sdist, claims, local_sigstore.attest_file(built.sdist, one).model_dump_json()
    )
    assert status == 200, text


def test_oidc_certificate_issuer_with_a_trailing_slash_is_the_publishers_issuer(
    local_index: AssayServer, local_sigstore: LocalSigstore, idp: OIDCProvider, tmp_path: Path
) -> None:
    # Issue 10, item 9: Fulcio copies the token's iss into the certificate; an issuer whose
    # real iss ends in "/" is stored without it, and its attestations must still match.
    project = "issuer-slash"
    built = build_project(tmp_path, project, "1.0")
    args = ["--claim", "sub=deploy:slash/app", "--subject", "https://ci.acme.example/slash/*"]
    local_index.admin(
        "publisher", "add", "oidc", "--project", project, "--issuer", idp.issuer, "--owner", "owner", *args
    )
    claims = {"sub": "deploy:slash/app"}
    other = CertIdentity(san="https://ci.acme.example/slash/r", issuer=idp.issuer + ".evil/", extensions={})
    status, text = _publish_attested(
        local_index, idp, built.sdist, claims, local_sigstore.attest_file(built.sdist, other).model_dump_json()
    )
    assert status == 400, text
    slash = CertIdentity(san="https://ci.acme.example/slash/r", issuer=idp.issuer + "/", extensions={})
    status, text = _publish_attested(
        local_index, idp, built.sdist, claims, local_sigstore.attest_file(built.sdist, slash).model_dump_json()
    )
    assert status == 200, text


def test_production_root_refuses_a_custom_roots_attestation(
    prod_index: AssayServer, local_sigstore: LocalSigstore, idp: OIDCProvider, unique: str, tmp_path: Path
) -> None:
    prod_index.admin(
        "publisher",
        "add",
        "github",
        "--project",
        unique,
        "--owner",
        "owner",
        "--repository",
        "acme/elsewhere",
        "--workflow",
        "release.yml",
    )
    built = build_project(tmp_path, unique, "1.0")
    attestation = local_sigstore.attest_file(built.wheel, CertIdentity.github("acme/elsewhere", "release.yml"))
    token = mint(prod_index, idp.token(AUDIENCE, github_claims("acme/elsewhere"), iss=GITHUB_ISSUER))
    with prod_index.client() as http:
        response = upload(
            http, built.wheel, token, attestations=json.dumps([json.loads(attestation.model_dump_json())])
        )
    assert response.status_code == 400
    assert "signature verification failed" in response.text


def test_token_upload_attestations_when_enabled(tmp_path: Path, local_sigstore: LocalSigstore, unique: str) -> None:
    server = AssayServer(
        tmp_path, args=["--sigstore-trust-root", str(local_sigstore.trusted_root_path), "--token-upload-attestations"]
    ).start()
    try:
        server.ensure_user("owner")
        server.admin("project", "create", unique, "--owner", "owner")
        server.admin(
            "publisher", "add", "github", "--project", unique, "--repository", "acme/tok", "--workflow", "release.yml"
        )
        token = server.token("owner")
        built = build_project(tmp_path, unique, "1.0")
        good = local_sigstore.attest_file(built.wheel, CertIdentity.github("acme/tok", "release.yml"))
        bad = local_sigstore.attest_file(built.sdist, CertIdentity.github("acme/nope", "release.yml"))
        with server.client() as http:
            refused = upload(http, built.sdist, token, attestations=f"[{bad.model_dump_json()}]")
            assert refused.status_code == 400
            accepted = upload(http, built.wheel, token, attestations=f"[{good.model_dump_json()}]")
            assert accepted.status_code == 200, accepted.text
            listed = http.get(f"/simple/{unique}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        assert [f["provenance"] is not None for f in listed["files"]] == [True]
    finally:
        server.stop()
