"""Tests for the local Sigstore authority: real verification by sigstore-python, no mocks."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pypi_attestations import (
    Attestation,
    AttestationType,
    CircleCIPublisher,
    GitHubPublisher,
    GitLabPublisher,
    GooglePublisher,
)
from sigstore.errors import VerificationError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier, policy

from tests.support.sigstore_authority import CertIdentity, LocalSigstore

FILENAME = "widget-1.0.tar.gz"
DIGEST = hashlib.sha256(b"widget 1.0 sdist").hexdigest()
DSSE_TYPE = "application/vnd.in-toto+json"
CIRCLE_PROJECT = "1b9d7e4c-2f3a-4c5d-8e6f-708192a3b4c5"
CIRCLE_PIPELINE = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> LocalSigstore:
    return LocalSigstore(tmp_path_factory.mktemp("sigstore"))


@pytest.fixture(scope="module")
def verifier(authority: LocalSigstore) -> Verifier:
    return authority.verifier()


def verify(verifier: Verifier, attestation: Attestation, identity: Any) -> dict[str, Any]:
    """What `Attestation.verify` does, but with the given verifier; returns the statement."""
    payload_type, payload = verifier.verify_dsse(attestation.to_bundle(), identity)
    assert payload_type == DSSE_TYPE
    statement: dict[str, Any] = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    return statement


def assert_subject(statement: dict[str, Any], name: str = FILENAME, digest: str = DIGEST) -> None:
    assert statement["subject"] == [{"name": name, "digest": {"sha256": digest}}]


def reload(attestation: Attestation) -> Attestation:
    """A deep, independent copy through the wire (JSON) form."""
    return Attestation.model_validate_json(attestation.model_dump_json())


def flip(data: bytes, index: int) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


def certificate(attestation: Attestation) -> x509.Certificate:
    return x509.load_der_x509_certificate(attestation.verification_material.certificate)


# --------------------------------------------------------------------------- #
# Trust root
# --------------------------------------------------------------------------- #


def test_trusted_root_file_loads(authority: LocalSigstore) -> None:
    assert authority.trusted_root_path.name == "trusted_root.json"
    raw = json.loads(authority.trusted_root_path.read_text())
    assert raw["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert len(raw["certificateAuthorities"][0]["certChain"]["certificates"]) == 2
    assert len(raw["ctlogs"]) == 1
    assert len(raw["tlogs"]) == 1
    root = TrustedRoot.from_file(str(authority.trusted_root_path))
    assert len(root.get_fulcio_certs()) == 2
    assert isinstance(authority.trusted_root(), TrustedRoot)
    for log in raw["tlogs"] + raw["ctlogs"]:
        start = datetime.fromisoformat(log["publicKey"]["validFor"]["start"])
        assert start < datetime.now(UTC)
        spki = base64.b64decode(log["publicKey"]["rawBytes"])
        assert base64.b64decode(log["logId"]["keyId"]) == hashlib.sha256(spki).digest()


# --------------------------------------------------------------------------- #
# Publishers accept what they should
# --------------------------------------------------------------------------- #


def test_github_attestation_verifies(authority: LocalSigstore, verifier: Verifier) -> None:
    attestation = authority.attest(
        FILENAME, DIGEST, CertIdentity.github("acme/widget", "release.yml")
    )
    publisher = GitHubPublisher(repository="acme/widget", workflow="release.yml")
    statement = verify(verifier, attestation, publisher._as_policy())
    assert_subject(statement)
    assert statement["predicateType"] == AttestationType.PYPI_PUBLISH_V1.value
    assert attestation.statement == statement
    # The wire form survives a round trip and still verifies.
    assert_subject(verify(verifier, reload(attestation), publisher._as_policy()))


@pytest.mark.parametrize(
    ("identity", "publisher"),
    [
        pytest.param(
            CertIdentity.gitlab("acme/tools/widget", ".gitlab-ci.yml"),
            GitLabPublisher(repository="acme/tools/widget", workflow_filepath=".gitlab-ci.yml"),
            id="gitlab",
        ),
        pytest.param(
            CertIdentity.gitlab("acme/widget", "ci/release.yml", ref="refs/tags/v1.0"),
            GitLabPublisher(repository="acme/widget", workflow_filepath="ci/release.yml"),
            id="gitlab-custom-path",
        ),
        pytest.param(
            CertIdentity.google("release@acme.iam.gserviceaccount.com"),
            GooglePublisher(email="release@acme.iam.gserviceaccount.com"),
            id="google",
        ),
        pytest.param(
            CertIdentity.circleci(
                CIRCLE_PROJECT, CIRCLE_PIPELINE, "github.com/acme/widget", "refs/heads/main"
            ),
            CircleCIPublisher(
                project_id=CIRCLE_PROJECT,
                pipeline_definition_id=CIRCLE_PIPELINE,
                vcs_origin="github.com/acme/widget",
                vcs_ref="refs/heads/main",
            ),
            id="circleci",
        ),
        pytest.param(
            CertIdentity.circleci(CIRCLE_PROJECT, CIRCLE_PIPELINE),
            CircleCIPublisher(project_id=CIRCLE_PROJECT, pipeline_definition_id=CIRCLE_PIPELINE),
            id="circleci-webhook",
        ),
    ],
)
def test_publisher_attestation_verifies(
    authority: LocalSigstore, verifier: Verifier, identity: CertIdentity, publisher: Any
) -> None:
    attestation = authority.attest(FILENAME, DIGEST, identity)
    assert_subject(verify(verifier, attestation, publisher._as_policy()))


def test_email_identity_verifies(authority: LocalSigstore, verifier: Verifier) -> None:
    identity = CertIdentity.email("dev@example.org", "https://idp.example.org")
    attestation = authority.attest(FILENAME, DIGEST, identity)
    statement = verify(
        verifier,
        attestation,
        policy.Identity(identity="dev@example.org", issuer="https://idp.example.org"),
    )
    assert_subject(statement)
    with pytest.raises(VerificationError):
        verify(verifier, attestation, policy.Identity(identity="dev@example.org", issuer="x"))


def test_github_enterprise_server(authority: LocalSigstore, verifier: Verifier) -> None:
    issuer = "https://ghe.example.com/_services/token"
    identity = CertIdentity.github("acme/widget", host="ghe.example.com", issuer=issuer)
    attestation = authority.attest(FILENAME, DIGEST, identity)
    enterprise_policy = policy.AllOf(
        [
            policy.OIDCIssuerV2(issuer),
            policy.OIDCIssuer(issuer),
            policy.OIDCSourceRepositoryURI("https://ghe.example.com/acme/widget"),
            policy.OIDCBuildConfigURI(
                "https://ghe.example.com/acme/widget/.github/workflows/release.yml@refs/tags/v1.0.0"
            ),
            policy.Identity(
                identity="https://ghe.example.com/acme/widget/.github/workflows/release.yml@refs/tags/v1.0.0",
                issuer=issuer,
            ),
        ]
    )
    assert_subject(verify(verifier, attestation, enterprise_policy))
    # The public GitHub publisher policy does not accept an enterprise certificate.
    with pytest.raises(VerificationError):
        verify(
            verifier,
            attestation,
            GitHubPublisher(repository="acme/widget", workflow="release.yml")._as_policy(),
        )


def test_self_managed_gitlab(authority: LocalSigstore, verifier: Verifier) -> None:
    identity = CertIdentity.gitlab("acme/widget", instance="https://gitlab.example.org")
    attestation = authority.attest(FILENAME, DIGEST, identity)
    self_managed = policy.AllOf(
        [
            policy.OIDCIssuerV2("https://gitlab.example.org"),
            policy.OIDCSourceRepositoryURI("https://gitlab.example.org/acme/widget"),
            policy.OIDCBuildConfigURI(
                "https://gitlab.example.org/acme/widget//.gitlab-ci.yml@refs/heads/main"
            ),
        ]
    )
    assert_subject(verify(verifier, attestation, self_managed))
    with pytest.raises(VerificationError):
        verify(
            verifier,
            attestation,
            GitLabPublisher(
                repository="acme/widget", workflow_filepath=".gitlab-ci.yml"
            )._as_policy(),
        )


def test_slsa_provenance_attestation(authority: LocalSigstore, verifier: Verifier) -> None:
    predicate = {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/tags/v1.0.0"}},
        },
        "runDetails": {"builder": {"id": "https://github.com/acme/widget"}},
    }
    attestation = authority.attest(
        FILENAME,
        DIGEST,
        CertIdentity.github("acme/widget"),
        predicate_type=AttestationType.SLSA_PROVENANCE_V1,
        predicate=predicate,
    )
    statement = verify(
        verifier,
        attestation,
        GitHubPublisher(repository="acme/widget", workflow="release.yml")._as_policy(),
    )
    assert_subject(statement)
    assert statement["predicateType"] == AttestationType.SLSA_PROVENANCE_V1.value
    assert statement["predicate"] == predicate


def test_attest_file(authority: LocalSigstore, verifier: Verifier, tmp_path: Path) -> None:
    wheel = tmp_path / "widget-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 not really a zip" * 1000)
    attestation = authority.attest_file(wheel, CertIdentity.github("acme/widget"))
    statement = verify(
        verifier,
        attestation,
        GitHubPublisher(repository="acme/widget", workflow="release.yml")._as_policy(),
    )
    assert_subject(statement, wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())


def test_backdated_signing_time(authority: LocalSigstore, verifier: Verifier) -> None:
    signed_at = datetime.now(UTC) - timedelta(hours=3)
    attestation = authority.attest(
        FILENAME, DIGEST, CertIdentity.github("acme/widget"), at=signed_at
    )
    leaf = certificate(attestation)
    assert leaf.not_valid_before_utc == signed_at.replace(microsecond=0)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)
    entry = attestation.verification_material.transparency_entries[0]
    assert int(entry["integratedTime"]) == int(signed_at.timestamp())
    verify(
        verifier,
        attestation,
        GitHubPublisher(repository="acme/widget", workflow="release.yml")._as_policy(),
    )
    with pytest.raises(ValueError, match="outside the CA validity"):
        authority.attest(
            FILENAME,
            DIGEST,
            CertIdentity.github("acme/widget"),
            at=datetime(2000, 1, 1, tzinfo=UTC),
        )


# --------------------------------------------------------------------------- #
# Rejections
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def github_attestation(authority: LocalSigstore) -> Attestation:
    return authority.attest(FILENAME, DIGEST, CertIdentity.github("acme/widget", "release.yml"))


GITHUB_POLICY = GitHubPublisher(repository="acme/widget", workflow="release.yml")


@pytest.mark.parametrize(
    "publisher",
    [
        GitHubPublisher(repository="acme/gadget", workflow="release.yml"),
        GitHubPublisher(repository="evil/widget", workflow="release.yml"),
        GitHubPublisher(repository="acme/widget", workflow="other.yml"),
        GitLabPublisher(repository="acme/widget", workflow_filepath=".gitlab-ci.yml"),
        GooglePublisher(email="acme/widget"),
        CircleCIPublisher(project_id=CIRCLE_PROJECT, pipeline_definition_id=CIRCLE_PIPELINE),
    ],
    ids=["other-repo", "other-owner", "other-workflow", "gitlab", "google", "circleci"],
)
def test_wrong_publisher_rejected(
    verifier: Verifier, github_attestation: Attestation, publisher: Any
) -> None:
    with pytest.raises(VerificationError):
        verify(verifier, github_attestation, publisher._as_policy())


def test_flipped_envelope_signature_rejected(
    verifier: Verifier, github_attestation: Attestation
) -> None:
    tampered = reload(github_attestation)
    signature = tampered.envelope.signature
    tampered.envelope.signature = flip(signature, len(signature) - 1)
    with pytest.raises(VerificationError, match="signature"):
        verify(verifier, tampered, GITHUB_POLICY._as_policy())


def test_tampered_statement_rejected(verifier: Verifier, github_attestation: Attestation) -> None:
    tampered = reload(github_attestation)
    tampered.envelope.statement = tampered.envelope.statement.replace(
        DIGEST.encode(), hashlib.sha256(b"something else").hexdigest().encode()
    )
    with pytest.raises(VerificationError):
        verify(verifier, tampered, GITHUB_POLICY._as_policy())


@pytest.mark.parametrize("where", ["san", "signature"])
def test_flipped_certificate_rejected(
    verifier: Verifier, github_attestation: Attestation, where: str
) -> None:
    tampered = reload(github_attestation)
    der = tampered.verification_material.certificate
    index = der.index(b"acme/widget") if where == "san" else len(der) - 1
    tampered.verification_material.certificate = flip(der, index)
    certificate(tampered)  # still well-formed DER: the rejection is cryptographic
    with pytest.raises(VerificationError):
        verify(verifier, tampered, policy.UnsafeNoOp())


def test_other_authority_rejects(tmp_path: Path, github_attestation: Attestation) -> None:
    other = LocalSigstore(tmp_path)
    with pytest.raises(VerificationError):
        verify(other.verifier(), github_attestation, GITHUB_POLICY._as_policy())


def test_public_good_root_rejects(github_attestation: Attestation) -> None:
    production = Verifier.production(offline=True)
    with pytest.raises(VerificationError):
        verify(production, github_attestation, GITHUB_POLICY._as_policy())


def test_inclusion_proof_is_checked(verifier: Verifier, github_attestation: Attestation) -> None:
    tampered = reload(github_attestation)
    entry = tampered.verification_material.transparency_entries[0]
    entry["inclusionProof"]["rootHash"] = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(VerificationError):
        verify(verifier, tampered, GITHUB_POLICY._as_policy())


# --------------------------------------------------------------------------- #
# Shape: the certificates and the log look like the real services' output
# --------------------------------------------------------------------------- #

# Extension OIDs, in order, of real Fulcio leaf certificates (GitHub Actions and
# GitLab CI/CD) taken from published PEP 740 attestations.
_COMMON_HEAD = ["2.5.29.15", "2.5.29.37", "2.5.29.14", "2.5.29.35", "2.5.29.17"]
_FULCIO = "1.3.6.1.4.1.57264.1."
_SCT = "1.3.6.1.4.1.11129.2.4.2"
REAL_GITHUB_OIDS = [
    *_COMMON_HEAD,
    *(_FULCIO + str(n) for n in (1, 2, 3, 4, 5, 6, *range(8, 23))),
    _SCT,
]
REAL_GITLAB_OIDS = [*_COMMON_HEAD, *(_FULCIO + str(n) for n in (1, *range(8, 23))), _SCT]


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        (CertIdentity.github("acme/widget"), REAL_GITHUB_OIDS),
        (CertIdentity.gitlab("acme/widget"), REAL_GITLAB_OIDS),
        (
            CertIdentity.google("a@b.example"),
            [*_COMMON_HEAD, _FULCIO + "1", _FULCIO + "8", _SCT],
        ),
    ],
    ids=["github", "gitlab", "google"],
)
def test_certificate_shape_matches_fulcio(
    authority: LocalSigstore, identity: CertIdentity, expected: list[str]
) -> None:
    leaf = certificate(authority.attest(FILENAME, DIGEST, identity))
    assert [ext.oid.dotted_string for ext in leaf.extensions] == expected
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == authority.intermediate_certificate.subject
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
    assert len(scts.value) == 1


def test_github_claims_match_fulcio_templates(authority: LocalSigstore) -> None:
    identity = CertIdentity.github("acme/widget", "publish.yml", ref="refs/tags/v2", sha="a" * 40)
    claims = authority.attest(FILENAME, DIGEST, identity).certificate_claims
    workflow_ref = "https://github.com/acme/widget/.github/workflows/publish.yml@refs/tags/v2"
    assert identity.san == workflow_ref
    assert claims[_FULCIO + "8"] == "https://token.actions.githubusercontent.com"
    assert claims[_FULCIO + "9"] == workflow_ref
    assert claims[_FULCIO + "12"] == "https://github.com/acme/widget"
    assert claims[_FULCIO + "13"] == "a" * 40
    assert claims[_FULCIO + "14"] == "refs/tags/v2"
    assert claims[_FULCIO + "16"] == "https://github.com/acme"
    assert claims[_FULCIO + "18"] == workflow_ref


def test_identity_validation() -> None:
    with pytest.raises(ValueError, match="unknown"):
        CertIdentity(san="a@b.example", issuer="https://i.example", extensions={"nope": "x"})
    with pytest.raises(ValueError, match="issuer"):
        CertIdentity(san="a@b.example", issuer="https://i.example", extensions={_FULCIO + "8": "x"})
    custom = CertIdentity.github("acme/widget", extra={"runner_environment": "self-hosted"})
    assert custom.extensions["runner_environment"] == "self-hosted"


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash, straight from the definition."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    left, right = _mth(leaves[:split]), _mth(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_log_is_an_rfc6962_merkle_tree(tmp_path: Path) -> None:
    authority = LocalSigstore(tmp_path)
    verifier = authority.verifier()
    attestations = [
        authority.attest(f"widget-1.0.{n}.tar.gz", DIGEST, CertIdentity.github("acme/widget"))
        for n in range(13)
    ]
    leaves = []
    for index, attestation in enumerate(attestations):
        entry = attestation.verification_material.transparency_entries[0]
        assert entry["logIndex"] == str(index)
        assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
        body = base64.b64decode(entry["canonicalizedBody"])
        leaves.append(hashlib.sha256(b"\x00" + body).digest())
        proof = entry["inclusionProof"]
        assert proof["treeSize"] == str(index + 1)
        assert base64.b64decode(proof["rootHash"]) == _mth(leaves)
        # Every earlier entry still verifies against its own (older) checkpoint.
        verify(verifier, attestation, GITHUB_POLICY._as_policy())
    assert authority.log_size == 13
    assert authority.log_root_hash() == _mth(leaves)


def test_concurrent_attestations(tmp_path: Path) -> None:
    authority = LocalSigstore(tmp_path)
    results: list[Attestation] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            attestation = authority.attest(FILENAME, DIGEST, CertIdentity.github("acme/widget"))
            with lock:
                results.append(attestation)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    indexes = sorted(
        int(a.verification_material.transparency_entries[0]["logIndex"]) for a in results
    )
    assert indexes == list(range(20))
    verifier = authority.verifier()
    for attestation in results:
        verify(verifier, attestation, GITHUB_POLICY._as_policy())
