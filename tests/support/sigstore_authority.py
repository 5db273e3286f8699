"""A local Sigstore signing authority for tests.

This module is a **test stand-in** for the three public Sigstore services that
sign and log PEP 740 attestations: the Fulcio certificate authority, the
certificate-transparency (CT) log and the Rekor transparency log. The real
services cannot be reached from the test suite (nothing beyond 127.0.0.1), so
`LocalSigstore` plays all three roles in-process, under its own freshly
generated keys, and writes a Sigstore ``trusted_root.json`` describing them.

Everything it produces is cryptographically real and is checked by
sigstore-python's own offline verifier (``sigstore.verify.Verifier.verify_dsse``)
when that verifier is given this authority's trusted root; the same
attestations are rejected under Sigstore's public-good roots, or under the root
of any other `LocalSigstore` instance.

What it implements:

* Fulcio: a self-signed root CA and an intermediate CA (ECDSA P-384, SHA-384,
  shaped like Fulcio's), issuing 10-minute leaf certificates for a fresh
  ephemeral P-256 key per attestation, with KeyUsage digitalSignature, EKU
  codeSigning, the identity's SubjectAlternativeName, the Fulcio OIDC issuer
  extensions (legacy ``1.3.6.1.4.1.57264.1.1`` as raw bytes and v2 ``.1.8``)
  and the other Fulcio extensions (``.1.9`` to ``.1.22`` as DER UTF8String,
  GitHub's legacy ``.1.2`` to ``.1.6`` as raw bytes). `CertIdentity` has
  constructors that shape these exactly as Fulcio does for GitHub Actions,
  GitLab CI/CD, Google service accounts, CircleCI and plain e-mail identities.
* CT log: the leaf is first issued as an RFC 6962 precertificate (critical
  poison extension); a local CT log key signs a v1 SCT over the issuer key hash
  and the precertificate's TBSCertificate, and the final certificate carries
  that SCT in the embedded SCT list extension.
* Rekor: a DSSE envelope (``application/vnd.in-toto+json``) over an in-toto v1
  Statement with one subject, logged as a ``dsse``/``0.0.1`` entry in an
  in-memory append-only Merkle tree (RFC 6962 hashing), with an inclusion
  promise (signed entry timestamp) and an inclusion proof whose root is
  committed to by a checkpoint in the signed-note format Rekor v1 uses.
* The result is a `pypi_attestations.Attestation` (PEP 740 attestation object).

What it does not implement: no network API of any kind (no Fulcio, CT or Rekor
HTTP endpoints, no OIDC token exchange: the identity is simply asserted by the
caller), no TUF repository or trust-root distribution (the trusted root is a
plain file), no RFC 3161 timestamp authority, no Rekor v2 entries, no
consistency proofs, no persistence of the log across instances, and no key
rotation or revocation. The ``baseUrl``/``uri`` values in the trusted root are
``.invalid`` placeholders that nothing ever contacts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from pypi_attestations import Attestation, AttestationType
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier

__all__ = [
    "FULCIO_EXTENSION_OIDS",
    "CertIdentity",
    "LocalSigstore",
]

# --------------------------------------------------------------------------- #
# Fulcio certificate extensions
# --------------------------------------------------------------------------- #

_FULCIO_ARC = "1.3.6.1.4.1.57264.1"
_ISSUER_LEGACY_OID = x509.ObjectIdentifier(f"{_FULCIO_ARC}.1")
_ISSUER_V2_OID = x509.ObjectIdentifier(f"{_FULCIO_ARC}.8")

#: Fulcio v2 extensions (values are DER-encoded UTF8String), by short name.
_V2_EXTENSIONS: dict[str, int] = {
    "build_signer_uri": 9,
    "build_signer_digest": 10,
    "runner_environment": 11,
    "source_repository_uri": 12,
    "source_repository_digest": 13,
    "source_repository_ref": 14,
    "source_repository_identifier": 15,
    "source_repository_owner_uri": 16,
    "source_repository_owner_identifier": 17,
    "build_config_uri": 18,
    "build_config_digest": 19,
    "build_trigger": 20,
    "run_invocation_uri": 21,
    "source_repository_visibility_at_signing": 22,
}

#: Fulcio's deprecated GitHub-only extensions (values are raw bytes, no DER),
#: which Fulcio still writes into GitHub Actions certificates.
_LEGACY_RAW_EXTENSIONS: dict[str, int] = {
    "github_workflow_trigger": 2,
    "github_workflow_sha": 3,
    "github_workflow_name": 4,
    "github_workflow_repository": 5,
    "github_workflow_ref": 6,
}

#: Every short extension name `CertIdentity.extensions` accepts, with its OID.
FULCIO_EXTENSION_OIDS: Mapping[str, str] = {
    name: f"{_FULCIO_ARC}.{arc}"
    for name, arc in {**_LEGACY_RAW_EXTENSIONS, **_V2_EXTENSIONS}.items()
}

_GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_GITLAB_INSTANCE = "https://gitlab.com"
_GOOGLE_ISSUER = "https://accounts.google.com"
_CIRCLECI_ISSUER = "https://oidc.circleci.com"
_CIRCLECI_API = "https://circleci.com/api/v2"
# Fulcio's CircleCI template default is "https://app.circleci.com/" and its
# run-invocation template appends "/workflow/...", hence the double slash.
_CIRCLECI_APP = "https://app.circleci.com/"


def _stable_id(*parts: str) -> str:
    """A deterministic decimal identifier (repository/owner/run ids) from `parts`."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return str(int.from_bytes(digest[:4], "big") % 900_000_000 + 100_000_000)


def _stable_uuid(*parts: str) -> str:
    """A deterministic UUID-shaped identifier (CircleCI ids) from `parts`."""
    h = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _oid_for(name: str) -> x509.ObjectIdentifier:
    """The OID for a short extension name or a dotted OID string."""
    if name in FULCIO_EXTENSION_OIDS:
        return x509.ObjectIdentifier(FULCIO_EXTENSION_OIDS[name])
    if name[:1].isdigit():
        return x509.ObjectIdentifier(name)
    raise ValueError(f"unknown Fulcio extension name: {name!r}")


@dataclass(frozen=True)
class CertIdentity:
    """What a Fulcio certificate asserts about the workload.

    `san` is the SubjectAlternativeName: a URI (anything containing ``://``)
    or an e-mail address. `issuer` is the OIDC issuer, written to both the
    legacy extension ``1.3.6.1.4.1.57264.1.1`` (raw bytes) and the v2 extension
    ``.1.8`` (DER UTF8String). `extensions` holds the other Fulcio extensions
    by short name (see `FULCIO_EXTENSION_OIDS`); a dotted OID is also accepted
    as a key and is written as a DER UTF8String.
    """

    san: str
    issuer: str
    extensions: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in self.extensions:
            oid = _oid_for(name)
            if oid in (_ISSUER_LEGACY_OID, _ISSUER_V2_OID):
                raise ValueError("the OIDC issuer is set by CertIdentity.issuer")

    @classmethod
    def github(
        cls,
        repository: str,
        workflow: str = "release.yml",
        ref: str = "refs/tags/v1.0.0",
        sha: str = "0" * 40,
        host: str = "github.com",
        issuer: str = _GITHUB_ISSUER,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> CertIdentity:
        """A GitHub Actions workflow identity, shaped like Fulcio's GitHub certificates.

        `repository` is ``OWNER/NAME``; `workflow` is the file name under
        ``.github/workflows/``. For GitHub Enterprise Server pass its `host`
        and its `issuer`. `extra` overrides or adds extensions by short name
        (for example ``build_trigger``, ``runner_environment`` or
        ``source_repository_visibility_at_signing``).
        """
        url = f"https://{host}"
        owner = repository.split("/", 1)[0]
        workflow_ref = f"{repository}/.github/workflows/{workflow}@{ref}"
        run_id = _stable_id("run", host, repository, workflow, ref, sha)
        trigger = "push"
        extensions = {
            "github_workflow_trigger": trigger,
            "github_workflow_sha": sha,
            "github_workflow_name": workflow.rsplit(".", 1)[0],
            "github_workflow_repository": repository,
            "github_workflow_ref": ref,
            "build_signer_uri": f"{url}/{workflow_ref}",
            "build_signer_digest": sha,
            "runner_environment": "github-hosted",
            "source_repository_uri": f"{url}/{repository}",
            "source_repository_digest": sha,
            "source_repository_ref": ref,
            "source_repository_identifier": _stable_id("repo", host, repository),
            "source_repository_owner_uri": f"{url}/{owner}",
            "source_repository_owner_identifier": _stable_id("owner", host, owner),
            "build_config_uri": f"{url}/{workflow_ref}",
            "build_config_digest": sha,
            "build_trigger": trigger,
            "run_invocation_uri": f"{url}/{repository}/actions/runs/{run_id}/attempts/1",
            "source_repository_visibility_at_signing": "public",
        }
        extensions.update(extra or {})
        return cls(san=f"{url}/{workflow_ref}", issuer=issuer, extensions=extensions)

    @classmethod
    def gitlab(
        cls,
        repository: str,
        workflow_filepath: str = ".gitlab-ci.yml",
        ref: str = "refs/heads/main",
        sha: str = "0" * 40,
        instance: str = _GITLAB_INSTANCE,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> CertIdentity:
        """A GitLab CI/CD pipeline identity, shaped like Fulcio's GitLab certificates.

        `repository` is the project path (``NAMESPACE/PROJECT``, subgroups
        allowed); `workflow_filepath` the CI configuration file path. For a
        self-managed instance pass its URL as `instance`; it is also the issuer.
        """
        url = instance.rstrip("/")
        namespace = repository.rsplit("/", 1)[0]
        config_ref_uri = f"{url}/{repository}//{workflow_filepath}@{ref}"
        extensions = {
            "build_signer_uri": config_ref_uri,
            "build_signer_digest": sha,
            "runner_environment": "gitlab-hosted",
            "source_repository_uri": f"{url}/{repository}",
            "source_repository_digest": sha,
            "source_repository_ref": ref,
            "source_repository_identifier": _stable_id("project", url, repository),
            "source_repository_owner_uri": f"{url}/{namespace}",
            "source_repository_owner_identifier": _stable_id("namespace", url, namespace),
            "build_config_uri": config_ref_uri,
            "build_config_digest": sha,
            "build_trigger": "push",
            "run_invocation_uri": (
                f"{url}/{repository}/-/jobs/{_stable_id('job', url, repository, ref, sha)}"
            ),
            "source_repository_visibility_at_signing": "public",
        }
        extensions.update(extra or {})
        return cls(san=config_ref_uri, issuer=url, extensions=extensions)

    @classmethod
    def google(cls, email: str) -> CertIdentity:
        """A Google (service account) identity: e-mail SAN, issuer accounts.google.com."""
        return cls.email(email, _GOOGLE_ISSUER)

    @classmethod
    def circleci(
        cls,
        project_id: str,
        pipeline_definition_id: str,
        vcs_origin: str | None = None,
        vcs_ref: str | None = None,
        *,
        issuer: str = _CIRCLECI_ISSUER,
        extra: Mapping[str, str] | None = None,
    ) -> CertIdentity:
        """A CircleCI job identity, shaped like Fulcio's CircleCI certificates.

        `vcs_origin` (``github.com/ORG/REPO``, no scheme) and `vcs_ref`
        (``refs/heads/main``) become the source repository URI and ref when
        given, as in Fulcio's template (pipelines started by custom webhooks
        have neither).
        """
        signer_uri = (
            f"{_CIRCLECI_API}/projects/{project_id}/pipeline-definitions/{pipeline_definition_id}"
        )
        pipeline_id = _stable_uuid("pipeline", project_id, pipeline_definition_id)
        workflow_id = _stable_uuid("workflow", pipeline_id)
        job_id = _stable_uuid("job", workflow_id)
        extensions = {
            "build_signer_uri": signer_uri,
            "build_config_uri": f"{_CIRCLECI_API}/pipeline/{pipeline_id}/config",
            "run_invocation_uri": f"{_CIRCLECI_APP}/workflow/{workflow_id}/job/{job_id}",
        }
        if vcs_origin is not None:
            extensions["source_repository_uri"] = vcs_origin
        if vcs_ref is not None:
            extensions["source_repository_ref"] = vcs_ref
        extensions.update(extra or {})
        return cls(san=signer_uri, issuer=issuer, extensions=extensions)

    @classmethod
    def email(cls, address: str, issuer: str) -> CertIdentity:
        """A plain e-mail identity from `issuer` (no CI extensions, as Fulcio does)."""
        return cls(san=address, issuer=issuer, extensions={})

    def _x509_extensions(self) -> list[x509.Extension[x509.ExtensionType]]:
        """The SAN and Fulcio extensions, in Fulcio's order (SAN, then by OID)."""
        general_name: x509.GeneralName = (
            x509.UniformResourceIdentifier(self.san) if "://" in self.san else x509.RFC822Name(self.san)
        )
        values: dict[x509.ObjectIdentifier, bytes] = {
            _ISSUER_LEGACY_OID: self.issuer.encode(),
            _ISSUER_V2_OID: _der_utf8string(self.issuer),
        }
        for name, value in self.extensions.items():
            oid = _oid_for(name)
            raw = name in _LEGACY_RAW_EXTENSIONS
            values[oid] = value.encode() if raw else _der_utf8string(value)
        ordered = sorted(
            values, key=lambda oid: tuple(int(a) for a in oid.dotted_string.split("."))
        )
        result: list[x509.Extension[x509.ExtensionType]] = [
            x509.Extension(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
                True,  # the subject is empty, so the SAN is critical (RFC 5280)
                x509.SubjectAlternativeName([general_name]),
            )
        ]
        result.extend(
            x509.Extension(oid, False, x509.UnrecognizedExtension(oid, values[oid]))
            for oid in ordered
        )
        return result


# --------------------------------------------------------------------------- #
# Encoding helpers
# --------------------------------------------------------------------------- #


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_utf8string(value: str) -> bytes:
    data = value.encode()
    return b"\x0c" + _der_length(len(data)) + data


def _der_octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _der_read(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content offset, end offset) of the DER element at `offset` (low tags only)."""
    tag, first = data[offset], data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, offset + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    start = offset + 2 + count
    return tag, start, start + length


def _der_children(data: bytes, start: int, end: int) -> list[bytes]:
    children = []
    while start < end:
        _, _, child_end = _der_read(data, start)
        children.append(data[start:child_end])
        start = child_end
    return children


def _der_wrap(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


_POISON_OID_DER = b"\x06\x0a\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03"  # 1.3.6.1.4.1.11129.2.4.3


def _strip_poison(tbs_certificate: bytes) -> bytes:
    """The precertificate TBSCertificate with its CT poison extension removed.

    RFC 6962 section 3.2: the SCT for a precertificate signs this, and it is
    what a verifier rebuilds from the final certificate by removing the SCT
    list extension (cryptography's ``tbs_precertificate_bytes``).
    """
    _, start, end = _der_read(tbs_certificate, 0)
    fields = []
    for item in _der_children(tbs_certificate, start, end):
        if item[0] == 0xA3:  # [3] EXPLICIT Extensions
            _, seq_offset, _ = _der_read(item, 0)
            _, ext_start, ext_end = _der_read(item, seq_offset)
            kept = [
                extension
                for extension in _der_children(item, ext_start, ext_end)
                if extension[_der_read(extension, 0)[1] :][: len(_POISON_OID_DER)]
                != _POISON_OID_DER
            ]
            item = _der_wrap(0xA3, _der_wrap(0x30, b"".join(kept)))
        fields.append(item)
    return _der_wrap(0x30, b"".join(fields))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key ID: SHA-256 of the DER SubjectPublicKeyInfo (also Rekor's log ID)."""
    return hashlib.sha256(_spki_der(key)).digest()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SCT_LIST_OID = ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_IN_TOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
_CA_BACKDATE = timedelta(days=1)
_CA_LIFETIME = timedelta(days=3650)
_LEAF_LIFETIME = timedelta(minutes=10)


def _hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------- #
# The authority
# --------------------------------------------------------------------------- #


class LocalSigstore:
    """An in-process Fulcio + CT log + Rekor, with its own trust root.

    Creating one generates the keys (root and intermediate CA, CT log, Rekor)
    and writes ``directory / "trusted_root.json"``. `attest` then issues PEP 740
    attestations that `verifier()` accepts and that Sigstore's public-good
    verifier rejects. Instances are independent and thread-safe.
    """

    hostname = "rekor.local-sigstore.invalid"

    def __init__(self, directory: Path) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.valid_from: datetime = now - _CA_BACKDATE
        self.valid_until: datetime = now + _CA_LIFETIME
        suffix = secrets.token_hex(4)

        self._root_key = ec.generate_private_key(ec.SECP384R1())
        self._intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self._ct_key = ec.generate_private_key(ec.SECP256R1())
        self._rekor_key = ec.generate_private_key(ec.SECP256R1())

        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "local-sigstore.invalid"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"local-sigstore-{suffix}"),
            ]
        )
        intermediate_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "local-sigstore.invalid"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"local-sigstore-intermediate-{suffix}"),
            ]
        )
        root_ski = x509.SubjectKeyIdentifier.from_public_key(self._root_key.public_key())
        self.root_certificate: x509.Certificate = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self._root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.valid_from)
            .not_valid_after(self.valid_until)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(root_ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                critical=False,
            )
            .sign(self._root_key, hashes.SHA384())
        )
        intermediate_ski = x509.SubjectKeyIdentifier.from_public_key(
            self._intermediate_key.public_key()
        )
        self.intermediate_certificate: x509.Certificate = (
            x509.CertificateBuilder()
            .subject_name(intermediate_name)
            .issuer_name(root_name)
            .public_key(self._intermediate_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.valid_from)
            .not_valid_after(self.valid_until)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(intermediate_ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                critical=False,
            )
            .sign(self._root_key, hashes.SHA384())
        )
        self._intermediate_name = intermediate_name
        self._leaf_aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            intermediate_ski
        )
        self._issuer_key_hash = _key_id(self._intermediate_key.public_key())
        self._ct_log_id = _key_id(self._ct_key.public_key())
        self._rekor_log_id = _key_id(self._rekor_key.public_key())
        self._tree_id = secrets.randbits(63)

        # The Merkle log: every leaf hash, plus the roots of the perfect
        # subtrees covering the whole log, largest (leftmost) first. The
        # inclusion proof of a newly appended leaf is exactly those roots.
        self._lock = threading.Lock()
        self._leaf_hashes: list[bytes] = []
        self._frontier: list[tuple[int, bytes]] = []

        directory.mkdir(parents=True, exist_ok=True)
        self.trusted_root_path: Path = directory / "trusted_root.json"
        self.trusted_root_path.write_text(json.dumps(self.trusted_root_json(), indent=2) + "\n")

    # -- trust root ---------------------------------------------------------- #

    def trusted_root_json(self) -> dict[str, Any]:
        """This authority's trust root, in Sigstore's TrustedRoot JSON format."""
        start = _rfc3339(self.valid_from)

        def log_instance(url: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki_der(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(_key_id(key.public_key()))},
            }

        der = serialization.Encoding.DER
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log_instance(f"https://{self.hostname}", self._rekor_key)],
            "certificateAuthorities": [
                {
                    "subject": {
                        "organization": "local-sigstore.invalid",
                        "commonName": self.root_certificate.subject.get_attributes_for_oid(
                            NameOID.COMMON_NAME
                        )[0].value,
                    },
                    "uri": "https://fulcio.local-sigstore.invalid",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.intermediate_certificate.public_bytes(der))},
                            {"rawBytes": _b64(self.root_certificate.public_bytes(der))},
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [log_instance("https://ctfe.local-sigstore.invalid", self._ct_key)],
            "timestampAuthorities": [],
        }

    def trusted_root(self) -> TrustedRoot:
        """The trust root, loaded by sigstore from `trusted_root_path`."""
        return TrustedRoot.from_file(str(self.trusted_root_path))

    def verifier(self) -> Verifier:
        """A sigstore verifier that trusts this authority (and nothing else)."""
        return Verifier(trusted_root=self.trusted_root())

    @property
    def log_size(self) -> int:
        """How many entries the transparency log holds."""
        with self._lock:
            return len(self._leaf_hashes)

    def log_root_hash(self) -> bytes:
        """The RFC 6962 Merkle tree hash of the whole log (SHA-256 of "" when empty)."""
        with self._lock:
            return self._root_from_frontier()

    # -- issuance ------------------------------------------------------------ #

    def attest(
        self,
        filename: str,
        sha256: str,
        identity: CertIdentity,
        predicate_type: str = AttestationType.PYPI_PUBLISH_V1.value,
        predicate: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> Attestation:
        """Sign and log an attestation that `filename` has SHA-256 hex digest `sha256`.

        The statement has exactly one subject ``{name: filename, digest:
        {sha256}}`` and the given `predicate_type` and `predicate`. Neither the
        name nor the digest is validated, so tests can attest malformed ones.
        `at` (default: now) is the signing time: the certificate's notBefore,
        the SCT time and the log's integrated time; it must lie within the CA
        validity (from one day before this instance was created).
        """
        moment = (at or datetime.now(UTC)).astimezone(UTC)
        signed_at = moment.replace(microsecond=0)
        if not self.valid_from <= signed_at <= self.valid_until - _LEAF_LIFETIME:
            raise ValueError(f"signing time {signed_at} is outside the CA validity")

        # Fulcio: an ephemeral key and a short-lived certificate for it.
        signing_key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._issue_certificate(signing_key.public_key(), identity, moment)

        # The client: a DSSE envelope over an in-toto statement.
        statement = json.dumps(
            {
                "_type": _IN_TOTO_STATEMENT_V1,
                "subject": [{"name": filename, "digest": {"sha256": sha256}}],
                "predicateType": predicate_type,
                "predicate": predicate,
            },
            separators=(",", ":"),
        ).encode()
        pae = b"DSSEv1 %d %s %d %s" % (
            len(_DSSE_PAYLOAD_TYPE),
            _DSSE_PAYLOAD_TYPE.encode(),
            len(statement),
            statement,
        )
        signature = signing_key.sign(pae, ec.ECDSA(hashes.SHA256()))

        # Rekor: log it.
        entry = self._log_dsse(statement, signature, certificate, int(signed_at.timestamp()))
        return Attestation.model_validate(
            {
                "version": 1,
                "verification_material": {
                    "certificate": _b64(certificate.public_bytes(serialization.Encoding.DER)),
                    "transparency_entries": [entry],
                },
                "envelope": {"statement": _b64(statement), "signature": _b64(signature)},
            }
        )

    def attest_file(
        self,
        path: Path,
        identity: CertIdentity,
        predicate_type: str = AttestationType.PYPI_PUBLISH_V1.value,
        predicate: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> Attestation:
        """`attest` for a file on disk: its name and the SHA-256 of its contents."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return self.attest(
            path.name, digest.hexdigest(), identity, predicate_type, predicate, at=at
        )

    # -- Fulcio and the CT log ------------------------------------------------ #

    def _issue_certificate(
        self, public_key: ec.EllipticCurvePublicKey, identity: CertIdentity, moment: datetime
    ) -> x509.Certificate:
        not_before = moment.replace(microsecond=0)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self._intermediate_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + _LEAF_LIFETIME)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._leaf_aki, critical=False)
        )
        for extension in identity._x509_extensions():
            builder = builder.add_extension(extension.value, critical=extension.critical)

        # RFC 6962 section 3.1: the precertificate is the certificate-to-be with
        # a critical poison extension where the SCT list will go; the SCT signs
        # its TBSCertificate minus the poison, which is byte for byte the final
        # certificate's TBSCertificate minus the SCT list (what verifiers rebuild).
        precertificate = builder.add_extension(x509.PrecertPoison(), critical=True).sign(
            self._intermediate_key, hashes.SHA384()
        )
        tbs_precertificate = _strip_poison(precertificate.tbs_certificate_bytes)
        sct = self._sign_sct(tbs_precertificate, moment)
        sct_list = struct.pack("!HH", len(sct) + 2, len(sct)) + sct
        certificate = builder.add_extension(
            x509.UnrecognizedExtension(_SCT_LIST_OID, _der_octet_string(sct_list)),
            critical=False,
        ).sign(self._intermediate_key, hashes.SHA384())
        if certificate.tbs_precertificate_bytes != tbs_precertificate:  # pragma: no cover
            raise RuntimeError("precertificate and certificate TBS differ")
        return certificate

    def _sign_sct(self, tbs_precertificate: bytes, moment: datetime) -> bytes:
        """A v1 SCT (RFC 6962 section 3.2) for a precert entry, TLS-encoded."""
        timestamp_ms = int(moment.timestamp() * 1000)
        extensions = b""
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp_ms, 1)  # v1, certificate_timestamp, precert_entry
            + self._issuer_key_hash
            + len(tbs_precertificate).to_bytes(3, "big")
            + tbs_precertificate
            + struct.pack("!H", len(extensions))
            + extensions
        )
        signature = self._ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B32sQH", 0, self._ct_log_id, timestamp_ms, len(extensions))
            + extensions
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )

    # -- Rekor ------------------------------------------------------------------ #

    def _log_dsse(
        self,
        statement: bytes,
        signature: bytes,
        certificate: x509.Certificate,
        integrated_time: int,
    ) -> dict[str, Any]:
        """Append a dsse/0.0.1 entry; return it as a protobuf-JSON TransparencyLogEntry."""
        envelope: dict[str, Any] = {
            "payload": _b64(statement),
            "payloadType": _DSSE_PAYLOAD_TYPE,
            "signatures": [{"keyid": "", "sig": _b64(signature)}],
        }
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(statement).hexdigest(),
                    },
                    "signatures": [{"signature": _b64(signature), "verifier": _b64(pem)}],
                },
            }
        )
        leaf_hash = hashlib.sha256(_LEAF_PREFIX + body).digest()
        log_id_hex = self._rekor_log_id.hex()

        with self._lock:
            log_index = len(self._leaf_hashes)
            # The audit path of the last leaf of a tree of size n + 1 is the
            # list of perfect-subtree roots of the first n leaves, nearest first.
            proof = [node for _, node in reversed(self._frontier)]
            self._append_leaf(leaf_hash)
            tree_size = log_index + 1
            root_hash = self._root_from_frontier()

        promise = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": log_id_hex,
                "logIndex": log_index,
            }
        )
        signed_entry_timestamp = self._rekor_key.sign(promise, ec.ECDSA(hashes.SHA256()))
        note = f"{self.hostname} - {self._tree_id}\n{tree_size}\n{_b64(root_hash)}\n"
        note_signature = self._rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = (
            f"{note}\n\u2014 {self.hostname} {_b64(self._rekor_log_id[:4] + note_signature)}\n"
        )
        return {
            "logIndex": str(log_index),
            "logId": {"keyId": _b64(self._rekor_log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(signed_entry_timestamp)},
            "inclusionProof": {
                "logIndex": str(log_index),
                "rootHash": _b64(root_hash),
                "treeSize": str(tree_size),
                "hashes": [_b64(node) for node in proof],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }

    def _append_leaf(self, leaf_hash: bytes) -> None:
        self._leaf_hashes.append(leaf_hash)
        size, node = 1, leaf_hash
        while self._frontier and self._frontier[-1][0] == size:
            _, left = self._frontier.pop()
            size, node = size * 2, _hash_children(left, node)
        self._frontier.append((size, node))

    def _root_from_frontier(self) -> bytes:
        if not self._frontier:
            return hashlib.sha256(b"").digest()
        _, root = self._frontier[-1]
        for _, left in reversed(self._frontier[:-1]):
            root = _hash_children(left, root)
        return root


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
